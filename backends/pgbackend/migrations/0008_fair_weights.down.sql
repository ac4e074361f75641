ALTER TABLE {{schema}}.fair_groups DROP COLUMN IF EXISTS turn;
