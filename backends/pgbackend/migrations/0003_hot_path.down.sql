CREATE OR REPLACE FUNCTION {{schema}}.jobs_changed() RETURNS trigger LANGUAGE plpgsql AS $$
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
        PERFORM pg_notify({{channel}}, 'f:' || queue || ':' || string_agg(id, ',')) FROM (
            SELECT n.queue, n.id, (row_number() OVER (PARTITION BY n.queue) - 1) / 100 AS chunk
            FROM new_rows n JOIN old_rows o USING (seq)
            WHERE n.state IN ('done', 'dead', 'cancelled') AND o.state NOT IN ('done', 'dead', 'cancelled')) f
            GROUP BY queue, chunk;
    END IF;
    RETURN NULL;
END
$$;

CREATE TABLE {{schema}}.job_counts_v1 (
    queue text    NOT NULL,
    state text    NOT NULL,
    shard integer NOT NULL,
    n     bigint  NOT NULL,
    PRIMARY KEY (queue, state, shard)
);
INSERT INTO {{schema}}.job_counts_v1 (queue, state, shard, n) SELECT queue, state, 0, n FROM {{schema}}.job_totals;
DROP VIEW {{schema}}.job_totals;
DROP TABLE {{schema}}.job_counts;
DROP TABLE {{schema}}.job_count_log;
ALTER TABLE {{schema}}.job_counts_v1 RENAME TO job_counts;
ALTER INDEX {{schema}}.job_counts_v1_pkey RENAME TO job_counts_pkey;

DROP INDEX {{schema}}.jobs_by_state;
CREATE INDEX jobs_by_state ON {{schema}}.jobs (queue, state, seq);

ALTER TABLE {{schema}}.jobs
    DROP CONSTRAINT jobs_pkey,
    ADD CONSTRAINT jobs_pkey PRIMARY KEY (seq),
    ADD CONSTRAINT jobs_id_key UNIQUE (id);

ALTER TABLE {{schema}}.jobs
    ALTER COLUMN id TYPE text COLLATE "default",
    ALTER COLUMN queue TYPE text COLLATE "default",
    ALTER COLUMN state TYPE text COLLATE "default";
