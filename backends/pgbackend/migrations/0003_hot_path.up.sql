-- Version 3: cheaper writes where every job passes (reserve, complete).
-- Measured on the burn-down benchmark (docs/benchmarks.md); each change
-- below removes work from every job or every statement.

-- Keys compare bytewise. Under a libc collation every comparison of an ID
-- or queue name in an index went through strcoll.
ALTER TABLE {{schema}}.jobs
    ALTER COLUMN id TYPE text COLLATE "C",
    ALTER COLUMN queue TYPE text COLLATE "C",
    ALTER COLUMN state TYPE text COLLATE "C";

-- The ID is the primary key, and seq keeps only its place in the reserve
-- order (jobs_due) and in paged lists (jobs_by_state): one index fewer to
-- write each time a job changes state. Reserve finds its rows by ctid.
ALTER TABLE {{schema}}.jobs
    DROP CONSTRAINT jobs_pkey,
    DROP CONSTRAINT jobs_id_key,
    ADD CONSTRAINT jobs_pkey PRIMARY KEY (id);

-- Running jobs are listed from jobs_leases, so reserving a job writes no
-- entry here.
DROP INDEX {{schema}}.jobs_by_state;
CREATE INDEX jobs_by_state ON {{schema}}.jobs (queue, state, seq) WHERE state <> 'running';

-- Counts: the triggers append deltas to job_count_log, and the janitor
-- folds the log into job_counts. Every statement used to upsert the same
-- few counter rows, and those upserts cost more than the job rows' own
-- updates. Readers sum both tables through job_totals.
CREATE TABLE {{schema}}.job_count_log (
    queue text COLLATE "C" NOT NULL,
    state text COLLATE "C" NOT NULL,
    n     bigint NOT NULL
);
CREATE TABLE {{schema}}.job_counts_v3 (
    queue text COLLATE "C" NOT NULL,
    state text COLLATE "C" NOT NULL,
    n     bigint NOT NULL,
    PRIMARY KEY (queue, state)
);
INSERT INTO {{schema}}.job_counts_v3 (queue, state, n)
    SELECT queue, state, sum(n) FROM {{schema}}.job_counts GROUP BY queue, state;
DROP TABLE {{schema}}.job_counts;
ALTER TABLE {{schema}}.job_counts_v3 RENAME TO job_counts;
ALTER INDEX {{schema}}.job_counts_v3_pkey RENAME TO job_counts_pkey;
CREATE VIEW {{schema}}.job_totals AS
    SELECT queue, state, sum(n)::bigint AS n FROM (
        SELECT queue, state, n FROM {{schema}}.job_counts
        UNION ALL
        SELECT queue, state, n FROM {{schema}}.job_count_log) c
    GROUP BY queue, state;

-- Notifications no longer join old rows to new ones (the planner has no
-- statistics on transition tables and chose nested loops, quadratic in the
-- batch). An update that leaves a job pending or finished announces it
-- again; events are hints, so that costs a listener one re-check.
CREATE OR REPLACE FUNCTION {{schema}}.jobs_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO {{schema}}.job_count_log (queue, state, n)
            SELECT queue, state, count(*) FROM new_rows GROUP BY queue, state;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO {{schema}}.job_count_log (queue, state, n)
            SELECT queue, state, -count(*) FROM old_rows GROUP BY queue, state;
        RETURN NULL; -- a delete has no new_rows, so nothing to announce below
    ELSE
        INSERT INTO {{schema}}.job_count_log (queue, state, n)
            SELECT queue, state, sum(d) FROM (
                SELECT queue, state, -1 AS d FROM old_rows
                UNION ALL
                SELECT queue, state, 1 FROM new_rows
            ) x GROUP BY queue, state HAVING sum(d) <> 0;
        -- Finished jobs, 100 IDs a message (a payload holds 8000 bytes).
        PERFORM pg_notify({{channel}}, 'f:' || queue || ':' || string_agg(id, ',')) FROM (
            SELECT queue, id, (row_number() OVER (PARTITION BY queue) - 1) / 100 AS chunk
            FROM new_rows WHERE state IN ('done', 'dead', 'cancelled')) f
            GROUP BY queue, chunk;
    END IF;
    -- Inserts and updates: jobs that are due now.
    PERFORM pg_notify({{channel}}, 'a:' || queue)
        FROM (SELECT DISTINCT queue FROM new_rows WHERE state = 'pending') q;
    RETURN NULL;
END
$$;
