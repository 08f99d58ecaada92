-- Every NOTIFY makes Postgres serialise the commits of all notifying transactions of the server on
-- one lock held through the WAL flush (PreCommit_Notify in async.c): with the outbox trigger
-- notifying on every insert, the platform's commits queued behind that lock (measured with
-- tools/loadgen: ~40 backends waiting on "Lock: object" at COMMIT, a few hundred sagas per second).
-- The services wake their own relay in-process after every commit that enqueues an event, so their
-- connections opt out with the startup option longship.outbox_notify=off (libs/runtime sets it);
-- any other writer (psql, a script, a tool) still notifies, and the relay's poll stays the fallback.
CREATE OR REPLACE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('longship.outbox_notify', true) IS DISTINCT FROM 'off' THEN
        PERFORM pg_notify('outbox', '');
    END IF;
    RETURN NULL;
END $$;
