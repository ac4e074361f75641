-- Version 4: a job's state is one of the states Conveyor knows (job.States).
-- A row with any other state was never due, never dead and showed in the
-- statistics as a state of its own, forever.

-- The whole step holds the table's lock, so no row with an unknown state
-- can be committed between the dead-lettering below and the check that
-- validates every row.
LOCK TABLE {{schema}}.jobs IN ACCESS EXCLUSIVE MODE;

-- Rows already written with an unknown state become dead letters with the
-- reason, as a corrupt row found at reserve does, instead of failing the
-- migration. The trigger logs their count deltas like any update's.
UPDATE {{schema}}.jobs SET
    state = 'dead',
    finished_at = now(),
    lease_token = NULL,
    lease_expires_at = NULL,
    errors = (CASE WHEN jsonb_typeof(errors) = 'array' THEN errors ELSE '[]' END) || jsonb_build_array(jsonb_build_object(
        'attempt', CASE WHEN jsonb_typeof(errors) = 'array' THEN jsonb_array_length(errors) ELSE 0 END + 1,
        'at', now(),
        'error', format('corrupt job record: state %s is not a job state', to_jsonb(left(state, 64))::text)))
    WHERE state NOT IN ('pending', 'scheduled', 'running', 'retrying', 'done', 'dead', 'cancelled');

ALTER TABLE {{schema}}.jobs ADD CONSTRAINT jobs_state_known
    CHECK (state IN ('pending', 'scheduled', 'running', 'retrying', 'done', 'dead', 'cancelled'));
