-- Version 5: a long job's notes (progress, checkpoint, log lines: job.Notes
-- as JSON), written under the job's lease (notes.go). A statement-level
-- trigger deletes them with their jobs, one statement per DELETE, so that
-- pruning many jobs pays no per-row foreign-key check.
CREATE TABLE {{schema}}.job_notes (
    id    text  PRIMARY KEY, -- the job's
    notes jsonb NOT NULL
);

CREATE FUNCTION {{schema}}.job_notes_gone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM {{schema}}.job_notes n USING old_rows o WHERE n.id = o.id;
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_deleted_notes AFTER DELETE ON {{schema}}.jobs
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION {{schema}}.job_notes_gone();
