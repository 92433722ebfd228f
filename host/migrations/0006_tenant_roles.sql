-- Tenants that log in as their own Postgres role. The host creates the
-- role and the tenant's schema, owned by the role, when it creates the
-- tenant. Row-level security limits such a role to its own tenant's rows of
-- the catalog. The role that owns the catalog (the host's own) is not
-- subject to these policies.

ALTER TABLE sandtable.tenants
    ADD COLUMN role_name     text UNIQUE,
    -- The password that the host logs in with as the tenant's role. Only
    -- the catalog's owner can read it.
    ADD COLUMN role_password text,
    -- The sha256 of the tenant's API key.
    ADD COLUMN key_hash      bytea UNIQUE;

-- The tenant whose role the session logged in as, or null. It reads the
-- tenants as their owner, and `session_user` is the login role even here.
CREATE FUNCTION sandtable.session_tenant()
RETURNS bigint
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog
AS $$
    SELECT id FROM sandtable.tenants WHERE role_name = session_user
$$;

ALTER TABLE sandtable.tenants ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_tenant ON sandtable.tenants
    USING (id = sandtable.session_tenant());

-- The catalog tables that carry a tenant.
ALTER TABLE sandtable.plugins ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_tenant ON sandtable.plugins
    USING (tenant_id = sandtable.session_tenant());
ALTER TABLE sandtable.plugin_names ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_tenant ON sandtable.plugin_names
    USING (tenant_id = sandtable.session_tenant());
ALTER TABLE sandtable.plugin_directories ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_tenant ON sandtable.plugin_directories
    USING (tenant_id = sandtable.session_tenant());
ALTER TABLE sandtable.function_stats ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_tenant ON sandtable.function_stats
    USING (tenant_id = sandtable.session_tenant());
ALTER TABLE sandtable.tables ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_tenant ON sandtable.tables
    USING (tenant_id = sandtable.session_tenant());
ALTER TABLE sandtable.column_spec_plugins ENABLE ROW LEVEL SECURITY;
-- A row's column spec must be the tenant's own too, so that no tenant
-- attaches rows to another's spec, or learns from a key which specs exist.
CREATE POLICY own_tenant ON sandtable.column_spec_plugins
    USING (tenant_id = sandtable.session_tenant())
    WITH CHECK (tenant_id = sandtable.session_tenant()
                AND column_id IN (SELECT id FROM sandtable.columns));
ALTER TABLE sandtable.snapshots ENABLE ROW LEVEL SECURITY;
-- A snapshot must name the tenant's own table too: a snapshot keeps its
-- table from being dropped, and its foreign key would tell which table ids
-- exist.
CREATE POLICY own_tenant ON sandtable.snapshots
    USING (tenant_id = sandtable.session_tenant())
    WITH CHECK (tenant_id = sandtable.session_tenant()
                AND table_id IN (SELECT id FROM sandtable.tables));
ALTER TABLE sandtable.pools ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_tenant ON sandtable.pools
    USING (tenant_id = sandtable.session_tenant());
ALTER TABLE sandtable.pool_stats ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_tenant ON sandtable.pool_stats
    USING (tenant_id = sandtable.session_tenant());
ALTER TABLE sandtable.plugin_hosts ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_tenant ON sandtable.plugin_hosts
    USING (tenant_id = sandtable.session_tenant());

-- The catalog tables keyed by a table or a column, which belong to the
-- tenant of that table. The subqueries read `tables` and `columns` under
-- their own policies. A policy without WITH CHECK checks new rows with its
-- USING expression.
ALTER TABLE sandtable.table_versions ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_tenant ON sandtable.table_versions
    USING (table_id IN (SELECT id FROM sandtable.tables));
ALTER TABLE sandtable.columns ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_tenant ON sandtable.columns
    USING (table_id IN (SELECT id FROM sandtable.tables));
ALTER TABLE sandtable.indexes ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_tenant ON sandtable.indexes
    USING (table_id IN (SELECT id FROM sandtable.tables))
    WITH CHECK (table_id IN (SELECT id FROM sandtable.tables)
                AND column_id IN (SELECT id FROM sandtable.columns)
                AND source_column IN (SELECT id FROM sandtable.columns));
ALTER TABLE sandtable.column_specs ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_tenant ON sandtable.column_specs
    USING (column_id IN (SELECT id FROM sandtable.columns));
