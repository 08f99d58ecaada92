-- Dead letters: events a consumer gave up on (after ConsumerSpec::max_deliver failed deliveries, or
-- at once when the bytes are not an event envelope), kept where the admin API lists, redrives and
-- discards them (src/dead_letter.rs). Written by the consumer runner before it terminates the
-- delivery, so a dead letter is never only in NATS. One row per consumer and event: the same event
-- dead-lettered again (a lost terminate, a redelivery) updates its row.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

CREATE TABLE dead_letter (
    id                uuid PRIMARY KEY,         -- UUID v7: time-ordered, the paging key (newest first)
    consumer          text NOT NULL,            -- the durable consumer that gave up
    event_id          uuid,                     -- the envelope's id (null: not an envelope)
    event_type        text,
    subject           text NOT NULL,            -- where it was published (with the prefix)
    tenant_id         text,                     -- the envelope's tenant (null: not an envelope)
    deliveries        bigint NOT NULL,
    error             text NOT NULL,            -- the handler's last error (at most 512 characters)
    payload           bytea NOT NULL,           -- the message body as delivered
    headers           jsonb NOT NULL DEFAULT '{}',
    dead_lettered_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX dead_letter_event ON dead_letter (consumer, event_id) WHERE event_id IS NOT NULL;
CREATE INDEX dead_letter_tenant ON dead_letter (tenant_id, id);

GRANT SELECT, INSERT, UPDATE, DELETE ON dead_letter TO longship_app;

-- The rule of the platform's queue tables: the application role sees its tenant's rows only; the
-- worker role (consumers, the admin API) works across tenants.
ALTER TABLE dead_letter ENABLE ROW LEVEL SECURITY;
ALTER TABLE dead_letter FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON dead_letter
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY background_work ON dead_letter TO longship_worker
    USING (true) WITH CHECK (true);
