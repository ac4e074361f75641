DROP TRIGGER IF EXISTS jobs_deleted_notes ON {{schema}}.jobs;
DROP FUNCTION IF EXISTS {{schema}}.job_notes_gone();
DROP TABLE IF EXISTS {{schema}}.job_notes;
