-- Resource pools shared by every process on this database, and what the
-- operator allow-lists for outbound HTTP.

-- The shared state of one pool. Times are microseconds since 1970 on the
-- database's clock, which every process reads in the same statement that
-- changes the state, so that processes need no common clock of their own.
--
-- `request_tat_us` is the end of the last leased block of request slots:
-- a lease of n slots starts at the later of it and now (less the burst
-- tolerance, and not before `paused_until_us`) and moves it n slots on.
-- `token_tat_us` is the same for tokens, charged after each response.
CREATE TABLE sandtable.pools (
    tenant_id           bigint NOT NULL REFERENCES sandtable.tenants (id) ON DELETE CASCADE,
    name                text NOT NULL,
    requests_per_minute integer NOT NULL CHECK (requests_per_minute > 0),
    burst               integer NOT NULL CHECK (burst > 0),
    tokens_per_minute   bigint CHECK (tokens_per_minute > 0),
    origin              text NOT NULL,
    request_tat_us      bigint NOT NULL,
    token_tat_us        bigint NOT NULL DEFAULT 0,
    paused_until_us     bigint NOT NULL DEFAULT 0,
    updated_us          bigint NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

-- What every process spent of each pool, summed per minute.
CREATE TABLE sandtable.pool_stats (
    tenant_id bigint NOT NULL REFERENCES sandtable.tenants (id) ON DELETE CASCADE,
    name      text NOT NULL,
    minute    timestamptz NOT NULL,
    requests  bigint NOT NULL,
    tokens    bigint NOT NULL,
    waits     bigint NOT NULL,
    wait_us   bigint NOT NULL,
    throttled bigint NOT NULL,
    denied    bigint NOT NULL,
    PRIMARY KEY (tenant_id, name, minute)
);

-- Outbound hosts granted to a plugin by name, for all its versions: an
-- exact `host:port`, or a pattern whose host starts with `*.` for any name
-- under a domain (`*.example.com:443`) or whose port is `*` (`127.0.0.1:*`).
CREATE TABLE sandtable.plugin_hosts (
    tenant_id bigint NOT NULL REFERENCES sandtable.tenants (id) ON DELETE CASCADE,
    plugin    text NOT NULL,
    pattern   text NOT NULL,
    PRIMARY KEY (tenant_id, plugin, pattern)
);
