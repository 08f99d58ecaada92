-- Durable sagas: one row per saga; the step log is a JSON array so a transition is one row update.
-- `version` is the definition the saga started with (it always runs and compensates with it);
-- `current_step`, `attempts` and `last_error` summarise the step log for operators (src/admin.rs).
CREATE TABLE saga (
    id               uuid PRIMARY KEY,
    saga_type        text NOT NULL,
    version          int NOT NULL DEFAULT 1 CHECK (version >= 1),
    tenant_id        text NOT NULL,
    status           text NOT NULL CHECK (status IN ('RUNNING', 'COMPENSATING', 'COMPLETED', 'COMPENSATED')),
    data             jsonb NOT NULL,
    steps            jsonb NOT NULL,
    step_index       int NOT NULL DEFAULT 0,
    failure_reason   text,
    deadline         timestamptz NOT NULL,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    locked_by        text,
    locked_until     timestamptz,
    traceparent      text,
    current_step     text,
    attempts         int NOT NULL DEFAULT 0,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX saga_due ON saga (next_attempt_at) WHERE status IN ('RUNNING', 'COMPENSATING');

-- Every transition's events, written by the statement that records the transition (no round trip
-- of its own): what happened, to which step and attempt, why, and who did it (`engine` or an
-- operator's JWT subject).
CREATE TABLE saga_history (
    saga_id  uuid NOT NULL,
    seq      bigint GENERATED ALWAYS AS IDENTITY,
    at       timestamptz NOT NULL DEFAULT now(),
    state    text NOT NULL,
    step     text,
    attempt  int,
    error    text,
    actor    text NOT NULL,
    PRIMARY KEY (saga_id, seq)
);

GRANT SELECT, INSERT, UPDATE, DELETE ON saga, saga_history TO longship_app;
