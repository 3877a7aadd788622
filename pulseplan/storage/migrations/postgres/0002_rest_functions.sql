-- Functions the Supabase REST backend calls over PostgREST (docs/supabase-rest.md).
--
-- PostgREST turns table requests into one statement each, but some of PulsePlan's writes need
-- SQL it cannot express: an upsert that bumps `version = version + 1` on replace, a lease-lock
-- take (INSERT ... ON CONFLICT ... DO UPDATE ... WHERE), the sweeper's claim with
-- FOR UPDATE SKIP LOCKED, and a count per status. Each is one function called as
-- POST /rest/v1/rpc/<name>; PostgREST runs it in the request's transaction, as the request's
-- role. The PostgreSQL backend does not use them (it sends the same SQL directly).
--
-- SECURITY INVOKER (the default, spelled out): a function runs with the caller's rights, so
-- row-level security and grants apply exactly as for a table request. Called with a user's JWT
-- (role `authenticated`), the upsert can only write that user's row (the policy's WITH CHECK);
-- called with the service key (role `service_role`, BYPASSRLS) it serves background jobs.
-- `search_path` is pinned to '' and every name is schema-qualified, so objects another role
-- creates earlier on a search path can never stand in for ours. The tables are the ones
-- 0001_initial created in `public`, the schema PostgREST exposes.
--
-- Templating as in 0001_initial: $$$$ reaches PostgreSQL as $$, and function bodies use
-- parameter names, never positional references (string.Template would reject them).

-- Insert, or replace the tokens of, the (user_id, provider) row; the same statement as
-- PostgresStorage.upsert_connection. Returns the stored row (version 1 means created).
CREATE OR REPLACE FUNCTION public.pulseplan_upsert_connection(
    p_user_id       uuid,
    p_provider      text,
    p_access_token  text,
    p_refresh_token text,
    p_expires_at    timestamptz,
    p_scopes        text[],
    p_email         text,
    p_metadata      jsonb,
    p_now           timestamptz
)
RETURNS SETOF public.$connections_table
LANGUAGE sql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$$$
    INSERT INTO public.$connections_table AS c (id, user_id, provider, access_token,
        refresh_token, expires_at, scopes, email, metadata, created_at, updated_at)
    VALUES (pg_catalog.gen_random_uuid(), p_user_id, p_provider, p_access_token, p_refresh_token, p_expires_at,
        p_scopes, p_email, p_metadata, p_now, p_now)
    ON CONFLICT (user_id, provider) DO UPDATE SET
        access_token = EXCLUDED.access_token,
        refresh_token = EXCLUDED.refresh_token,
        expires_at = EXCLUDED.expires_at,
        scopes = EXCLUDED.scopes,
        email = EXCLUDED.email,
        metadata = EXCLUDED.metadata,
        updated_at = EXCLUDED.updated_at,
        status = 'active',
        status_reason = NULL,
        refresh_failures = 0,
        next_refresh_at = NULL,
        version = c.version + 1
    RETURNING c.*
$$$$;

-- Lease up to p_limit due connections to p_owner until p_claim_until (the sweeper), skipping
-- rows another sweeper has locked; the same statement as PostgresStorage.
CREATE OR REPLACE FUNCTION public.pulseplan_claim_due_connections(
    p_owner       text,
    p_claim_until timestamptz,
    p_horizon     timestamptz,
    p_now         timestamptz,
    p_limit       integer
)
RETURNS SETOF public.$connections_table
LANGUAGE sql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$$$
    WITH due AS MATERIALIZED (
        SELECT d.id FROM public.$connections_table AS d
        WHERE d.status = 'active' AND d.refresh_token IS NOT NULL
          AND d.expires_at IS NOT NULL AND d.expires_at <= p_horizon
          AND (d.next_refresh_at IS NULL OR d.next_refresh_at <= p_now)
          AND (d.claim_until IS NULL OR d.claim_until <= p_now)
        ORDER BY d.expires_at LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    )
    UPDATE public.$connections_table AS c SET claim_owner = p_owner, claim_until = p_claim_until
    FROM due WHERE c.id = due.id
    RETURNING c.*
$$$$;

-- Take the lease lock p_name for p_owner unless another owner holds an unexpired lease.
CREATE OR REPLACE FUNCTION public.pulseplan_acquire_lock(
    p_name       text,
    p_owner      text,
    p_expires_at timestamptz,
    p_now        timestamptz
)
RETURNS boolean
LANGUAGE sql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$$$
    WITH taken AS (
        INSERT INTO public.pulseplan_locks AS l (name, owner, expires_at)
        VALUES (p_name, p_owner, p_expires_at)
        ON CONFLICT (name) DO UPDATE SET owner = EXCLUDED.owner,
            expires_at = EXCLUDED.expires_at
        WHERE l.expires_at <= p_now OR l.owner = EXCLUDED.owner
        RETURNING l.owner
    )
    SELECT EXISTS (SELECT 1 FROM taken)
$$$$;

-- Row counts per status (metrics): PostgREST's aggregates are off by default on Supabase.
CREATE OR REPLACE FUNCTION public.pulseplan_connection_counts()
RETURNS TABLE (status text, n bigint)
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = ''
AS $$$$
    SELECT c.status, count(*) FROM public.$connections_table AS c GROUP BY c.status
$$$$;

-- PostgreSQL lets PUBLIC execute a new function, and Supabase's default privileges add anon,
-- authenticated and service_role: take all of it back, then grant what each caller needs.
REVOKE ALL ON FUNCTION
    public.pulseplan_upsert_connection(uuid, text, text, text, timestamptz, text[], text,
        jsonb, timestamptz),
    public.pulseplan_claim_due_connections(text, timestamptz, timestamptz, timestamptz, integer),
    public.pulseplan_acquire_lock(text, text, timestamptz, timestamptz),
    public.pulseplan_connection_counts()
FROM PUBLIC;

DO $$$$
DECLARE
    grantee text;
BEGIN
    FOREACH grantee IN ARRAY ARRAY['anon', 'authenticated', 'service_role'] LOOP
        IF to_regrole(grantee) IS NOT NULL THEN
            EXECUTE format(
                'REVOKE ALL ON FUNCTION '
                'public.pulseplan_upsert_connection(uuid, text, text, text, timestamptz, '
                'text[], text, jsonb, timestamptz), '
                'public.pulseplan_claim_due_connections(text, timestamptz, timestamptz, '
                'timestamptz, integer), '
                'public.pulseplan_acquire_lock(text, text, timestamptz, timestamptz), '
                'public.pulseplan_connection_counts() FROM %I', grantee);
        END IF;
    END LOOP;
    IF to_regrole('service_role') IS NOT NULL THEN
        -- The service key's role: background jobs, flows, locks, metrics.
        GRANT EXECUTE ON FUNCTION
            public.pulseplan_upsert_connection(uuid, text, text, text, timestamptz,
                text[], text, jsonb, timestamptz),
            public.pulseplan_claim_due_connections(text, timestamptz, timestamptz, timestamptz,
                integer),
            public.pulseplan_acquire_lock(text, text, timestamptz, timestamptz),
            public.pulseplan_connection_counts()
        TO service_role;
    END IF;
    IF to_regrole('authenticated') IS NOT NULL THEN
        -- A user's own request stores their connection; RLS limits it to their row.
        GRANT EXECUTE ON FUNCTION
            public.pulseplan_upsert_connection(uuid, text, text, text, timestamptz,
                text[], text, jsonb, timestamptz)
        TO authenticated;
    END IF;
END
$$$$;
