-- The transactional outbox: events written in the same transaction as the state change they
-- announce, published by the relay (src/outbox.rs). The trigger wakes relays of other processes;
-- every NOTIFY makes Postgres serialise the commits of all notifying transactions of the server on
-- one lock held through the WAL flush (PreCommit_Notify in async.c): with the outbox trigger
-- notifying on every insert, the platform's commits queued behind that lock (measured with
-- tools/loadgen: ~40 backends waiting on "Lock: object" at COMMIT, a few hundred sagas per second).
-- The services wake their own relay in-process after every commit that enqueues an event, so their
-- connections opt out with the startup option longship.outbox_notify=off (libs/runtime sets it);
-- any other writer (psql, a script, a tool) still notifies, and the relay's poll stays the fallback.
CREATE TABLE outbox (
    seq             bigserial PRIMARY KEY,
    id              uuid NOT NULL UNIQUE,
    tenant_id       text NOT NULL,
    event_type      text NOT NULL,
    schema_version  int NOT NULL DEFAULT 1,
    payload         jsonb NOT NULL,
    traceparent     text,
    occurred_at     timestamptz NOT NULL DEFAULT now(),
    published_at    timestamptz
);
CREATE INDEX outbox_pending ON outbox (seq) WHERE published_at IS NULL;
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('longship.outbox_notify', true) IS DISTINCT FROM 'off' THEN
        PERFORM pg_notify('outbox', '');
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

-- Consumer deduplication: a handler's writes and its inbox row commit together (src/consumer.rs).
CREATE TABLE inbox (
    consumer    text NOT NULL,
    event_id    uuid NOT NULL,
    tenant_id   text NOT NULL,
    handled_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

GRANT SELECT, INSERT, UPDATE, DELETE ON outbox, inbox TO longship_app;
GRANT USAGE ON SEQUENCE outbox_seq_seq TO longship_app;
