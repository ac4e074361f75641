DROP TABLE IF EXISTS {{schema}}.jobs;
DROP FUNCTION IF EXISTS {{schema}}.jobs_changed();
DROP TABLE IF EXISTS {{schema}}.job_counts;
DROP TABLE IF EXISTS {{schema}}.queues;
