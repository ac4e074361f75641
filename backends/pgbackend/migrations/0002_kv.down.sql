DROP TABLE IF EXISTS {{schema}}.kv;
