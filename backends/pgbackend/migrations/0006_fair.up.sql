-- Version 6: fair queuing (ReserveFair, fair.go). Each job's group (its
-- tenant, JobInsert.Group), an index that walks one group's due jobs in
-- Reserve's order, and the ring: a row per group a queue has had, with the
-- serving number of its last job (0: never served). A group's row stays
-- when its jobs are gone, so it keeps its place in the ring.
ALTER TABLE {{schema}}.jobs ADD COLUMN grp text COLLATE "C" NOT NULL DEFAULT '';

CREATE INDEX jobs_fair ON {{schema}}.jobs (queue, grp, priority DESC, run_at, seq)
    WHERE state IN ('pending', 'scheduled', 'retrying');

CREATE TABLE {{schema}}.fair_groups (
    queue  text COLLATE "C" NOT NULL,
    grp    text COLLATE "C" NOT NULL,
    served bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (queue, grp)
);

-- The jobs already there are each queue's group ''.
INSERT INTO {{schema}}.fair_groups (queue, grp)
    SELECT DISTINCT queue, '' FROM {{schema}}.jobs;
