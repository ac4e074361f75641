-- Rows dead-lettered by the up step stay dead letters.
ALTER TABLE {{schema}}.jobs DROP CONSTRAINT IF EXISTS jobs_state_known;
