-- Tables, their columns and versions, and snapshots.
--
-- Each user table is a Postgres table `t_<id>` in its tenant's schema, with
-- one column `c_<id>` per catalog column (plus `c_<id>_et` and `c_<id>_em`,
-- the error type and message, for a computed column) and three system
-- columns: `_rowid`, which stays the same across a row's versions, and
-- `_v_min` and `_v_max`, the write that added the row version and the write
-- that replaced or deleted it (the largest bigint while it is live).
--
-- Writes are numbered by the table's sequence `t_<id>_writes`, in the order
-- they start. A write that commits becomes the table's next version, and
-- writes commit in the order of their numbers, so the rows of version V
-- are those with `_v_min <= W < _v_max`, where W is V's write number.

CREATE TABLE sandtable.tables (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id  bigint NOT NULL REFERENCES sandtable.tenants (id) ON DELETE CASCADE,
    name       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);

-- One row per committed version. Version 0 is the table's creation.
CREATE TABLE sandtable.table_versions (
    table_id     bigint NOT NULL REFERENCES sandtable.tables (id) ON DELETE CASCADE,
    version      bigint NOT NULL CHECK (version >= 0),
    write_id     bigint NOT NULL,
    operation    text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    rows_added   bigint NOT NULL DEFAULT 0,
    rows_changed bigint NOT NULL DEFAULT 0,
    rows_removed bigint NOT NULL DEFAULT 0,
    detail       jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (table_id, version),
    UNIQUE (table_id, write_id)
);

-- Columns in table order. A column added by write W exists in the versions
-- from W's on.
CREATE TABLE sandtable.columns (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    table_id    bigint NOT NULL REFERENCES sandtable.tables (id) ON DELETE CASCADE,
    name        text NOT NULL,
    position    integer NOT NULL,
    data_type   text NOT NULL,
    computed    boolean NOT NULL,
    added_write bigint NOT NULL,
    UNIQUE (table_id, name),
    UNIQUE (table_id, position)
);

-- The expression of a computed column, with its plugins pinned to catalog
-- versions, for the writes `write_from <= W < write_to`. An upgrade closes
-- one spec and opens the next.
CREATE TABLE sandtable.column_specs (
    column_id  bigint NOT NULL REFERENCES sandtable.columns (id) ON DELETE CASCADE,
    write_from bigint NOT NULL,
    write_to   bigint NOT NULL DEFAULT 9223372036854775807,
    expression jsonb NOT NULL,
    PRIMARY KEY (column_id, write_from)
);

-- The plugin versions a spec calls. The foreign key keeps a version that
-- any spec uses from being removed.
CREATE TABLE sandtable.column_spec_plugins (
    column_id  bigint NOT NULL,
    write_from bigint NOT NULL,
    tenant_id  bigint NOT NULL,
    plugin     text NOT NULL,
    version    integer NOT NULL,
    PRIMARY KEY (column_id, write_from, plugin, version),
    FOREIGN KEY (column_id, write_from)
        REFERENCES sandtable.column_specs (column_id, write_from) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, plugin, version)
        REFERENCES sandtable.plugins (tenant_id, name, version)
);

-- A snapshot names one version of a table. Tables and snapshots share one
-- namespace per tenant, so that `select` takes either.
CREATE TABLE sandtable.snapshots (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id  bigint NOT NULL REFERENCES sandtable.tenants (id) ON DELETE CASCADE,
    name       text NOT NULL,
    table_id   bigint NOT NULL REFERENCES sandtable.tables (id),
    version    bigint NOT NULL,
    write_id   bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);

-- Takes the next write number of a table's sequence, and holds a
-- transaction-level advisory lock keyed by (table, write) until the caller's
-- transaction ends. The session-level lock (table, 0) around the two makes
-- them one step for every other writer of the table: a write that sees
-- number N given out also finds N's lock taken, until N's transaction ends.
CREATE FUNCTION sandtable.begin_write(table_id bigint, sequence regclass)
RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
    write_id bigint;
BEGIN
    PERFORM pg_advisory_lock(table_id::integer, 0);
    BEGIN
        write_id := nextval(sequence);
        IF write_id > 2147483647 THEN
            RAISE EXCEPTION 'table % has used up its 2147483647 write numbers', table_id;
        END IF;
        PERFORM pg_advisory_xact_lock(table_id::integer, write_id::integer);
    EXCEPTION WHEN OTHERS THEN
        PERFORM pg_advisory_unlock(table_id::integer, 0);
        RAISE;
    END;
    PERFORM pg_advisory_unlock(table_id::integer, 0);
    RETURN write_id;
END;
$$;
