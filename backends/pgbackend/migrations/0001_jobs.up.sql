-- Version 1: the jobs table, queue settings, maintained counts.
-- {{schema}} is replaced with the configured schema name (quoted).
CREATE TABLE {{schema}}.jobs (
    seq              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id               text        NOT NULL UNIQUE,
    queue            text        NOT NULL,
    task             text        NOT NULL,
    payload          bytea       NOT NULL DEFAULT '',
    headers          jsonb,
    priority         integer     NOT NULL DEFAULT 0,
    state            text        NOT NULL,
    run_at           timestamptz NOT NULL,
    created_at       timestamptz NOT NULL,
    started_at       timestamptz,
    finished_at      timestamptz,
    deliveries       integer     NOT NULL DEFAULT 0,
    max_deliveries   integer     NOT NULL DEFAULT 0,
    timeout_ms       bigint      NOT NULL DEFAULT 0,
    retry_policy     text        NOT NULL DEFAULT '',
    unique_key       text,
    unique_until     timestamptz,
    errors           jsonb       NOT NULL DEFAULT '[]',
    result           bytea,
    lease_token      text,
    lease_expires_at timestamptz,
    cancel_requested boolean     NOT NULL DEFAULT false,
    worker           text
);

-- Reserve walks this partial index in reserve order; it holds only waiting
-- jobs, so it stays small however many finished jobs the table keeps.
CREATE INDEX jobs_due ON {{schema}}.jobs (queue, priority DESC, run_at, seq)
    WHERE state IN ('pending', 'scheduled', 'retrying');
-- Expired leases, found by the heartbeat column.
CREATE INDEX jobs_leases ON {{schema}}.jobs (queue, lease_expires_at) WHERE state = 'running';
-- Paged lists by state.
CREATE INDEX jobs_by_state ON {{schema}}.jobs (queue, state, seq);
CREATE INDEX jobs_unique ON {{schema}}.jobs (unique_key, seq) WHERE unique_key IS NOT NULL;
-- Retention pruning.
CREATE INDEX jobs_finished ON {{schema}}.jobs (finished_at) WHERE state IN ('done', 'dead', 'cancelled');

CREATE TABLE {{schema}}.queues (
    name   text PRIMARY KEY,
    paused boolean NOT NULL DEFAULT false
);

-- Job counts per queue and state, kept by the statement triggers below, so
-- statistics never count rows. Each statement adds its deltas to one of 16
-- shard rows picked at random, so concurrent writers rarely wait on the
-- same row; readers sum the shards.
CREATE TABLE {{schema}}.job_counts (
    queue text    NOT NULL,
    state text    NOT NULL,
    shard integer NOT NULL,
    n     bigint  NOT NULL,
    PRIMARY KEY (queue, state, shard)
);

CREATE FUNCTION {{schema}}.jobs_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    pick integer := floor(random() * 16)::integer;
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO {{schema}}.job_counts AS c (queue, state, shard, n)
            SELECT queue, state, pick, count(*) FROM new_rows GROUP BY queue, state ORDER BY queue, state
            ON CONFLICT (queue, state, shard) DO UPDATE SET n = c.n + excluded.n;
        PERFORM pg_notify({{channel}}, 'a:' || queue)
            FROM (SELECT DISTINCT queue FROM new_rows WHERE state = 'pending') q;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO {{schema}}.job_counts AS c (queue, state, shard, n)
            SELECT queue, state, pick, -count(*) FROM old_rows GROUP BY queue, state ORDER BY queue, state
            ON CONFLICT (queue, state, shard) DO UPDATE SET n = c.n + excluded.n;
    ELSE
        INSERT INTO {{schema}}.job_counts AS c (queue, state, shard, n)
            SELECT queue, state, pick, sum(d) FROM (
                SELECT queue, state, -1 AS d FROM old_rows
                UNION ALL
                SELECT queue, state, 1 FROM new_rows
            ) x GROUP BY queue, state HAVING sum(d) <> 0 ORDER BY queue, state
            ON CONFLICT (queue, state, shard) DO UPDATE SET n = c.n + excluded.n;
        PERFORM pg_notify({{channel}}, 'a:' || queue) FROM (
            SELECT DISTINCT n.queue FROM new_rows n JOIN old_rows o USING (seq)
            WHERE n.state = 'pending' AND o.state <> 'pending') q;
        -- Finished jobs, 100 IDs a message (a payload holds 8000 bytes).
        PERFORM pg_notify({{channel}}, 'f:' || queue || ':' || string_agg(id, ',')) FROM (
            SELECT n.queue, n.id, (row_number() OVER (PARTITION BY n.queue) - 1) / 100 AS chunk
            FROM new_rows n JOIN old_rows o USING (seq)
            WHERE n.state IN ('done', 'dead', 'cancelled') AND o.state NOT IN ('done', 'dead', 'cancelled')) f
            GROUP BY queue, chunk;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_inserted AFTER INSERT ON {{schema}}.jobs
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {{schema}}.jobs_changed();
CREATE TRIGGER jobs_updated AFTER UPDATE ON {{schema}}.jobs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {{schema}}.jobs_changed();
CREATE TRIGGER jobs_deleted AFTER DELETE ON {{schema}}.jobs
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION {{schema}}.jobs_changed();
