-- PulsePlan schema for the embedded SQLite backend. Times are UTC ISO-8601 strings with a
-- fixed width ("2026-11-26T01:02:03.000004Z") so that text order is time order.

CREATE TABLE IF NOT EXISTS $connections_table (
    id                TEXT PRIMARY KEY,
    user_id           TEXT NOT NULL,
    provider          TEXT NOT NULL,
    access_token      TEXT NOT NULL,           -- ciphertext
    refresh_token     TEXT,                    -- ciphertext
    expires_at        TEXT,
    scopes            TEXT NOT NULL DEFAULT '[]',
    email             TEXT,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    status            TEXT NOT NULL DEFAULT 'active'
                      CHECK (status IN ('active', 'needs_reauth', 'error')),
    status_reason     TEXT,
    metadata          TEXT NOT NULL DEFAULT '{}',
    version           INTEGER NOT NULL DEFAULT 1,
    last_refreshed_at TEXT,
    next_refresh_at   TEXT,
    refresh_failures  INTEGER NOT NULL DEFAULT 0,
    claim_owner       TEXT,
    claim_until       TEXT,
    UNIQUE (user_id, provider)
);

CREATE INDEX IF NOT EXISTS ${connections_table}_due
    ON $connections_table (status, expires_at);

CREATE TABLE IF NOT EXISTS pulseplan_oauth_flows (
    key        TEXT PRIMARY KEY,              -- SHA-256 of the state, never the state itself
    payload    TEXT NOT NULL,
    expires_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS pulseplan_locks (
    name       TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    expires_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS pulseplan_audit (
    id          TEXT PRIMARY KEY,
    occurred_at TEXT NOT NULL,
    actor_type  TEXT NOT NULL,
    actor_id    TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    provider    TEXT,
    action      TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    request_id  TEXT,
    detail      TEXT
);

CREATE INDEX IF NOT EXISTS pulseplan_audit_user ON pulseplan_audit (user_id, occurred_at);

CREATE TABLE IF NOT EXISTS pulseplan_agents (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,             -- HMAC of the secret; the secret is never kept
    providers   TEXT,                             -- JSON list, or NULL for every provider
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
);

-- A revoked agent's name may be reused; two active agents may not share one.
CREATE UNIQUE INDEX IF NOT EXISTS pulseplan_agents_active_name
    ON pulseplan_agents (name) WHERE revoked_at IS NULL;
