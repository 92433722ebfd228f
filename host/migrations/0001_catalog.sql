-- The catalog: tenants, plugins and what the operator granted them.
-- Every row carries a tenant, and each tenant's tables live in a schema of
-- its own, so that adding tenants needs no migration.

CREATE SCHEMA IF NOT EXISTS sandtable;

CREATE TABLE sandtable.tenants (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    schema_name text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

INSERT INTO sandtable.tenants (name, schema_name) VALUES ('default', 'tenant_default');
CREATE SCHEMA IF NOT EXISTS tenant_default;

-- One row per catalog version of a plugin. Versions count 1, 2, 3 ... per
-- name; adding a name with new content makes the next version and keeps
-- the old ones.
CREATE TABLE sandtable.plugins (
    tenant_id      bigint NOT NULL REFERENCES sandtable.tenants (id) ON DELETE CASCADE,
    name           text NOT NULL,
    version        integer NOT NULL CHECK (version > 0),
    sha256         text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    component      bytea NOT NULL,
    size_bytes     bigint NOT NULL,
    plugin_version text NOT NULL,
    description    jsonb NOT NULL,
    added_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, name, version),
    UNIQUE (tenant_id, name, sha256)
);

-- The last catalog version given out per name, so that a version number
-- is never given to other content, even after the version was removed.
CREATE TABLE sandtable.plugin_names (
    tenant_id    bigint NOT NULL REFERENCES sandtable.tenants (id) ON DELETE CASCADE,
    name         text NOT NULL,
    last_version integer NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

-- Read-only directories granted to a plugin by name, for all its versions.
CREATE TABLE sandtable.plugin_directories (
    tenant_id  bigint NOT NULL REFERENCES sandtable.tenants (id) ON DELETE CASCADE,
    plugin     text NOT NULL,
    guest_path text NOT NULL,
    host_path  text NOT NULL,
    PRIMARY KEY (tenant_id, plugin, guest_path)
);

-- Per-function aggregates of guest calls, one row per minute, summed over
-- every process that wrote to it. `faults` counts faulted calls by class in
-- the order fuel_exhausted, deadline_exceeded, memory_limit, stack_overflow,
-- guest_trap, guest_error, invalid_output. `latency_us_buckets` counts calls
-- by instantiate plus guest time, in buckets whose upper bounds (us) are 10,
-- 25, 50, 100, 250, 500, 1e3, 2.5e3, 5e3, 1e4, 2.5e4, 5e4, 1e5, 2.5e5, 5e5,
-- 1e6, 2.5e6, 5e6, 1e7, then one for slower calls.
CREATE TABLE sandtable.function_stats (
    tenant_id          bigint NOT NULL REFERENCES sandtable.tenants (id) ON DELETE CASCADE,
    plugin             text NOT NULL,
    version            integer NOT NULL,
    function           text NOT NULL,
    minute             timestamptz NOT NULL,
    calls              bigint NOT NULL,
    rows               bigint NOT NULL,
    guest_us           bigint NOT NULL,
    faults             bigint[] NOT NULL,
    latency_us_buckets bigint[] NOT NULL,
    PRIMARY KEY (tenant_id, plugin, version, function, minute)
);
