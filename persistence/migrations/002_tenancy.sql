-- Tenancy, identity and access: users, memberships and their roles, API key kinds and expiry, sessions,
-- invitations, the hash-chained audit log, and row-level security on every tenant table.
--
-- Roles. The platform never queries as the (super)user in its URL: every pooled connection does
-- SET ROLE voelgoed_app, which row-level security applies to. Each transaction names its org with
-- set_config('voelgoed.org_id', org, true) (persistence/tenancy.py); a query that forgot to, or that names
-- another org, sees no row of this org. The one way round it is SET LOCAL ROLE voelgoed_platform (BYPASSRLS),
-- taken only by persistence.tenancy.unscoped() for work that is cross-org by nature: finding the org of a
-- presented API key, session or invitation, logging in, recovering an inventory by event id.
-- Roles are cluster-wide, so creating them tolerates another database having made them first.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'voelgoed_app') THEN
        CREATE ROLE voelgoed_app NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'voelgoed_platform') THEN
        CREATE ROLE voelgoed_platform NOLOGIN BYPASSRLS;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;
-- The migrating user (the URL's) must be able to become both; a superuser already can.
DO $$
BEGIN
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        EXECUTE format('GRANT voelgoed_app, voelgoed_platform TO %I', current_user);
    END IF;
END
$$;
GRANT USAGE ON SCHEMA public TO voelgoed_app, voelgoed_platform;

-- Permissions and roles repeat engine/access/rules.py.
ALTER TABLE api_keys DROP CONSTRAINT api_keys_scopes_check;
ALTER TABLE api_keys
    ADD CONSTRAINT api_keys_scopes_check CHECK (
        scopes <@ ARRAY['events:read', 'events:write', 'inventory:read', 'inventory:hold', 'inventory:confirm',
                        'orders:read', 'scans:write', 'reports:read', 'keys:manage', 'members:manage',
                        'audit:read']::text[]
        AND array_position(scopes, NULL) IS NULL),
    ADD COLUMN kind text NOT NULL DEFAULT 'secret' CHECK (kind IN ('secret', 'publishable')),
    ADD COLUMN expires_at timestamptz,
    -- who made it: "user:<id>", "key:<id>" or "system:<what>"
    ADD COLUMN created_by text CHECK (char_length(created_by) BETWEEN 1 AND 200),
    -- a publishable key sits in browsers: it may only look and buy
    ADD CONSTRAINT api_keys_publishable_scopes_check CHECK (
        kind = 'secret'
        OR scopes <@ ARRAY['inventory:read', 'inventory:hold', 'inventory:confirm']::text[]),
    ADD CONSTRAINT api_keys_expiry_check CHECK (expires_at IS NULL OR expires_at > created_at),
    -- child tables (sessions made by a key, audit) can prove the key is the org's
    ADD CONSTRAINT api_keys_org_id_key UNIQUE (org_id, id);

-- People. Not a tenant table: one person may belong to several orgs, and logging in (by e-mail) happens before
-- any org is known. Nothing in it is org data; memberships (below) are.
CREATE TABLE users (
    id             text PRIMARY KEY CHECK (id ~ '^usr_[0-9a-f]{32}$'),
    -- stored lower-cased; the address's own case is not significant for us
    email          text NOT NULL UNIQUE CHECK (char_length(email) BETWEEN 3 AND 254 AND email = lower(email)),
    -- argon2id in PHC string form; NULL until an invited person sets a password
    password_hash  text CHECK (password_hash LIKE '$argon2id$%'),
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE memberships (
    org_id      text NOT NULL REFERENCES orgs (id),
    user_id     text NOT NULL REFERENCES users (id),
    role        text NOT NULL CHECK (role IN ('owner', 'admin', 'box_office', 'scanner', 'analyst')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    -- NULL while pending: an org may invite anyone, but only the person joins (by accepting that org's
    -- invitation with their own password); nobody logs in to an org where they are pending
    accepted_at timestamptz CHECK (accepted_at >= created_at),
    PRIMARY KEY (org_id, user_id)
);
CREATE INDEX memberships_user_idx ON memberships (user_id);

-- An invitation to one org, for one person: "vi_<id>_<secret>", only the hash stored. Accepting it (the token
-- plus the person's own password) makes the membership active. Only the invitation that created the account
-- (creates_user) may set its first password: every other org's inviter sees its own token, so letting that token
-- set the one password of a shared account would hand the account, and its other orgs, to that inviter.
CREATE TABLE invitations (
    id           text PRIMARY KEY CHECK (id ~ '^inv_[0-9a-f]{32}$'),
    org_id       text NOT NULL,
    user_id      text NOT NULL,
    secret_hash  bytea NOT NULL CHECK (octet_length(secret_hash) = 32),
    creates_user boolean NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    accepted_at  timestamptz,
    CHECK (expires_at > created_at),
    FOREIGN KEY (org_id, user_id) REFERENCES memberships (org_id, user_id) ON DELETE CASCADE
);

-- A person's login to one org: the refresh token's hash (rotated on every refresh) and its lifetime.
-- Access tokens are signed and short-lived; they name the session, so revoking it ends them too.
CREATE TABLE sessions (
    id            text PRIMARY KEY CHECK (id ~ '^ses_[0-9a-f]{32}$'),
    org_id        text NOT NULL,
    user_id       text NOT NULL,
    refresh_hash  bytea NOT NULL CHECK (octet_length(refresh_hash) = 32),
    -- the secret the last refresh replaced: presenting it again is reuse (a copy is about); any other wrong
    -- secret is a guess, refused without ending the session (a session id alone is not a credential)
    previous_refresh_hash  bytea CHECK (octet_length(previous_refresh_hash) = 32),
    created_at    timestamptz NOT NULL DEFAULT now(),
    refreshed_at  timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    revoked_at    timestamptz,
    CHECK (expires_at > created_at),
    FOREIGN KEY (org_id, user_id) REFERENCES memberships (org_id, user_id) ON DELETE CASCADE
);
CREATE INDEX sessions_member_idx ON sessions (org_id, user_id);

-- The audit log: append-only, one hash chain per org. Entry n stores the hash of entry n-1 (32 zero bytes for
-- the first) and its own hash over that and its content (engine/audit_chain.py defines both), so changing,
-- removing or reordering an entry breaks the chain from there on; `voelgoed audit verify ORG` finds where.
CREATE TABLE audit_log (
    org_id       text NOT NULL REFERENCES orgs (id),
    seq          bigint NOT NULL CHECK (seq >= 1),
    at           timestamptz NOT NULL,
    actor_type   text NOT NULL CHECK (actor_type IN ('user', 'key', 'system')),
    actor_id     text NOT NULL CHECK (char_length(actor_id) BETWEEN 1 AND 200),
    action       text NOT NULL CHECK (action ~ '^[a-z_]+(\.[a-z_]+)+$' AND char_length(action) <= 64),
    object_type  text NOT NULL CHECK (char_length(object_type) BETWEEN 1 AND 64),
    object_id    text NOT NULL CHECK (char_length(object_id) BETWEEN 1 AND 200),
    ip           text CHECK (char_length(ip) <= 64),
    before       jsonb,
    after        jsonb,
    prev_hash    bytea NOT NULL CHECK (octet_length(prev_hash) = 32),
    hash         bytea NOT NULL CHECK (octet_length(hash) = 32),
    PRIMARY KEY (org_id, seq)
);
CREATE INDEX audit_log_actor_idx ON audit_log (org_id, actor_id, seq);
CREATE INDEX audit_log_action_idx ON audit_log (org_id, action, seq);
CREATE INDEX audit_log_object_idx ON audit_log (org_id, object_id, seq);
CREATE INDEX audit_log_at_idx ON audit_log (org_id, at);

-- The newest entry of each org's chain; appending locks this row, so an org's entries get gapless sequence
-- numbers in commit order.
CREATE TABLE audit_heads (
    org_id  text PRIMARY KEY REFERENCES orgs (id),
    seq     bigint NOT NULL CHECK (seq >= 0),
    hash    bytea NOT NULL CHECK (octet_length(hash) = 32)
);

-- Append-only, for everyone, the owner included (privileges alone would not stop the owner).
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

-- Privileges: what the platform's roles may do, table by table.
GRANT SELECT, INSERT ON orgs TO voelgoed_app, voelgoed_platform;
GRANT SELECT, INSERT, UPDATE ON api_keys, events, sales, tickets, sessions, invitations, audit_heads
    TO voelgoed_app, voelgoed_platform;
-- users is shared by every org a person belongs to: an org may see its members' addresses and add a new person
-- (with a password only from the CLI's operator; an invitation adds none), but never read a password hash or
-- change anyone's address or password. Logging in reads the hash, and accepting an account's first
-- invitation writes it, as voelgoed_platform (persistence.tenancy.unscoped).
GRANT SELECT (id, email, created_at), INSERT (id, email, password_hash) ON users TO voelgoed_app;
GRANT SELECT, INSERT, UPDATE ON users TO voelgoed_platform;
GRANT SELECT, INSERT ON seats, ticket_types TO voelgoed_app, voelgoed_platform;
GRANT SELECT, INSERT, UPDATE, DELETE ON memberships TO voelgoed_app, voelgoed_platform;
GRANT SELECT, INSERT ON audit_log TO voelgoed_app, voelgoed_platform;

-- Row-level security: every tenant table shows and accepts only the rows of the transaction's org.
-- users: an org sees its members (pending ones too: it invited them) only; anyone may add a person (an
-- invitation does); nobody updates under voelgoed_app (no privilege, so no policy), and logging in by e-mail
-- goes through voelgoed_platform.
ALTER TABLE users ENABLE ROW LEVEL SECURITY;
CREATE POLICY members_of_org ON users FOR SELECT
    USING (EXISTS (SELECT FROM memberships m
                   WHERE m.user_id = users.id AND m.org_id = current_setting('voelgoed.org_id', true)));
CREATE POLICY anyone_adds ON users FOR INSERT WITH CHECK (true);

ALTER TABLE orgs ENABLE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON orgs
    USING (id = current_setting('voelgoed.org_id', true))
    WITH CHECK (id = current_setting('voelgoed.org_id', true));

DO $$
DECLARE
    tenant_table text;
BEGIN
    FOREACH tenant_table IN ARRAY ARRAY['api_keys', 'events', 'seats', 'ticket_types', 'sales', 'tickets',
                                        'memberships', 'invitations', 'sessions', 'audit_log', 'audit_heads']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', tenant_table);
        EXECUTE format(
            'CREATE POLICY org_isolation ON %I '
            'USING (org_id = current_setting(''voelgoed.org_id'', true)) '
            'WITH CHECK (org_id = current_setting(''voelgoed.org_id'', true))',
            tenant_table);
    END LOOP;
END
$$;
