-- Version 8: weighted fair queuing (ReserveParams.Weights). How many jobs
-- a group has taken of the turn it is in, below its weight; its serving
-- number (served) is now that of its last finished turn.
ALTER TABLE {{schema}}.fair_groups ADD COLUMN turn integer NOT NULL DEFAULT 0;
