-- The operator's admin key of `sandtable serve`, stored as its sha256; the
-- key itself is printed once by `sandtable admin rotate-key` and never
-- stored. The table holds one row at most.
CREATE TABLE sandtable.admin_key (
    id         boolean PRIMARY KEY DEFAULT true CHECK (id),
    key_hash   bytea NOT NULL,
    rotated_at timestamptz NOT NULL DEFAULT now()
);

-- Creating a tenant grants the tenant roles' group every catalog table.
-- Row-level security without a policy still leaves those roles no row of
-- this table to read, and none to insert or update. The host's own role
-- owns the table and is not subject to it.
ALTER TABLE sandtable.admin_key ENABLE ROW LEVEL SECURITY;
