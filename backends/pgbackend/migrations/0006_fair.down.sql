DROP TABLE IF EXISTS {{schema}}.fair_groups;
DROP INDEX IF EXISTS {{schema}}.jobs_fair;
ALTER TABLE {{schema}}.jobs DROP COLUMN IF EXISTS grp;
