-- Version 2: the KVStore, coordination state (scheduler entries, leader
-- lease). A deleted or expired key keeps its row and version, so versions
-- only grow.
CREATE TABLE {{schema}}.kv (
    key        text        PRIMARY KEY,
    value      bytea       NOT NULL,
    version    bigint      NOT NULL,
    expires_at timestamptz
);
