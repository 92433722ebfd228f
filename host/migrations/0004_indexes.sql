-- Embedding indexes, and columns that a later write drops.
--
-- An embedding index is a computed vector column, filled by an embedding
-- function from a source column, with an HNSW index (pgvector) over its
-- Postgres column. The HNSW index holds every row version, so a search
-- filters to the version it reads.

-- A column dropped by write W exists in the versions before W's; the
-- Postgres column stays for them. Names are unique among live columns
-- only, so that a dropped column's name can be used again.
ALTER TABLE sandtable.columns
    ADD COLUMN dropped_write bigint NOT NULL DEFAULT 9223372036854775807,
    DROP CONSTRAINT columns_table_id_name_key;
CREATE UNIQUE INDEX columns_live_name ON sandtable.columns (table_id, name)
    WHERE dropped_write = 9223372036854775807;

-- An index exists in the versions whose write W has
-- `added_write <= W < dropped_write`. The Postgres index `t_<table>_i_<id>`
-- exists while the index is live.
CREATE TABLE sandtable.indexes (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    table_id      bigint NOT NULL REFERENCES sandtable.tables (id) ON DELETE CASCADE,
    name          text NOT NULL,
    column_id     bigint NOT NULL REFERENCES sandtable.columns (id) ON DELETE CASCADE,
    source_column bigint NOT NULL REFERENCES sandtable.columns (id) ON DELETE CASCADE,
    metric        text NOT NULL CHECK (metric IN ('cosine', 'l2', 'ip')),
    added_write   bigint NOT NULL,
    dropped_write bigint NOT NULL DEFAULT 9223372036854775807
);
CREATE UNIQUE INDEX indexes_live_name ON sandtable.indexes (table_id, name)
    WHERE dropped_write = 9223372036854775807;
