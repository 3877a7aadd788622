-- PulsePlan schema for PostgreSQL and Supabase Postgres (docs/postgres.md).
--
-- Applied by `pulseplan migrate` in one transaction holding pg_advisory_xact_lock, so two
-- processes migrating at once take turns; the lock ends with the transaction, which keeps it
-- safe behind a transaction-mode pooler.
--
-- Templating: $connections_table is the configured table name; because of that (Python's
-- string.Template) a PL/pgSQL body is quoted with $$$$, which reaches PostgreSQL as $$.
--
-- Row-level security: enabled on every table. The connecting role owns the tables and is not
-- filtered (ENABLE without FORCE), which is what background jobs need; role `authenticated`
-- (what PulsePlan switches to for a user's request, like PostgREST) sees only rows where
-- auth.uid() = user_id. Tables with no policy for a role are closed to it. The policies and
-- grants are created only when the Supabase pieces (role `authenticated`, auth.uid()) exist;
-- on a plain PostgreSQL without them the tables stay service-only and the backend turns its
-- RLS scoping off (reported by `pulseplan check` and a warning). This migration never creates
-- roles or the auth schema: on Supabase they belong to the platform. auth.uid() is Supabase's
-- (supabase/auth migrations/tenant/20211202183645_update_auth_uid.up.sql): the `sub` of
-- current_setting('request.jwt.claims', true)::jsonb, after the legacy request.jwt.claim.sub.

CREATE TABLE $connections_table (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id           uuid NOT NULL,
    provider          text NOT NULL,
    access_token      text NOT NULL,            -- ciphertext
    refresh_token     text,                     -- ciphertext
    expires_at        timestamptz,
    scopes            text[] NOT NULL DEFAULT '{}',
    email             text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    status            text NOT NULL DEFAULT 'active'
                      CHECK (status IN ('active', 'needs_reauth', 'error')),
    status_reason     text,
    metadata          jsonb NOT NULL DEFAULT '{}',
    version           integer NOT NULL DEFAULT 1,   -- write fence, bumped on every write
    last_refreshed_at timestamptz,
    next_refresh_at   timestamptz,
    refresh_failures  integer NOT NULL DEFAULT 0,
    claim_owner       text,                     -- background sweeper lease
    claim_until       timestamptz,
    UNIQUE (user_id, provider)
);

-- The sweeper's query: active rows with a refresh token, earliest expiry first.
CREATE INDEX ${connections_table}_due ON $connections_table (expires_at)
    WHERE status = 'active' AND refresh_token IS NOT NULL;

CREATE TABLE pulseplan_oauth_flows (
    key        text PRIMARY KEY,               -- SHA-256 of the state, never the state itself
    payload    text NOT NULL,
    expires_at timestamptz NOT NULL
);

CREATE TABLE pulseplan_locks (
    name       text PRIMARY KEY,
    owner      text NOT NULL,
    expires_at timestamptz NOT NULL
);

CREATE TABLE pulseplan_audit (
    id          uuid PRIMARY KEY,
    occurred_at timestamptz NOT NULL,
    actor_type  text NOT NULL,
    actor_id    text NOT NULL,
    user_id     uuid NOT NULL,
    provider    text,
    action      text NOT NULL,
    outcome     text NOT NULL,
    request_id  text,
    detail      text
);

CREATE INDEX pulseplan_audit_user ON pulseplan_audit (user_id, occurred_at DESC);

CREATE TABLE pulseplan_agents (
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    secret_hash text NOT NULL UNIQUE,           -- HMAC of the secret; the secret is never kept
    providers   text[],                         -- NULL: every provider
    created_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);

-- A revoked agent's name may be reused; two active agents may not share one.
CREATE UNIQUE INDEX pulseplan_agents_active_name
    ON pulseplan_agents (name) WHERE revoked_at IS NULL;

ALTER TABLE $connections_table ENABLE ROW LEVEL SECURITY;
ALTER TABLE pulseplan_oauth_flows ENABLE ROW LEVEL SECURITY;
ALTER TABLE pulseplan_locks ENABLE ROW LEVEL SECURITY;
ALTER TABLE pulseplan_audit ENABLE ROW LEVEL SECURITY;
ALTER TABLE pulseplan_agents ENABLE ROW LEVEL SECURITY;
ALTER TABLE pulseplan_migrations ENABLE ROW LEVEL SECURITY;

DO $$$$
BEGIN
    -- Supabase grants anon and authenticated every privilege on new tables in `public` (its
    -- default privileges) and exposes them over its Data API: take them back, then grant only
    -- what a user-scoped PulsePlan query needs. TRUNCATE is not subject to RLS, so it goes too.
    IF to_regrole('anon') IS NOT NULL THEN
        REVOKE ALL ON $connections_table, pulseplan_oauth_flows, pulseplan_locks,
            pulseplan_audit, pulseplan_agents, pulseplan_migrations FROM anon;
    END IF;
    IF to_regrole('service_role') IS NOT NULL THEN
        -- Supabase's service_role has BYPASSRLS; granting keeps it usable for operators.
        GRANT ALL ON $connections_table, pulseplan_oauth_flows, pulseplan_locks,
            pulseplan_audit, pulseplan_agents, pulseplan_migrations TO service_role;
    END IF;
    IF to_regrole('authenticated') IS NULL OR to_regprocedure('auth.uid()') IS NULL THEN
        RETURN;  -- plain PostgreSQL: service-only tables, RLS scoping off in the backend
    END IF;
    REVOKE ALL ON $connections_table, pulseplan_oauth_flows, pulseplan_locks,
        pulseplan_audit, pulseplan_agents, pulseplan_migrations FROM authenticated;
    GRANT SELECT, INSERT, UPDATE, DELETE ON $connections_table TO authenticated;
    GRANT SELECT ON pulseplan_audit TO authenticated;
    -- `(SELECT auth.uid())` is auth.uid() evaluated once per statement instead of once per
    -- row (supabase.com/docs/guides/database/postgres/row-level-security, "Call functions
    -- with select"); the rule is auth.uid() = user_id.
    CREATE POLICY ${connections_table}_owner ON $connections_table
        FOR ALL TO authenticated
        USING ((SELECT auth.uid()) = user_id)
        WITH CHECK ((SELECT auth.uid()) = user_id);
    CREATE POLICY pulseplan_audit_owner ON pulseplan_audit
        FOR SELECT TO authenticated
        USING ((SELECT auth.uid()) = user_id);
END
$$$$;
