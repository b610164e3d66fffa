-- Tickets: each org's signing keys for QR payloads, and each event's revocation list with its version.
--
-- engine/tickets/ decides (key states, the payload, sealing); these tables defend what must never break even with
-- a buggy writer: a key's status only moves forward (active -> retiring -> retired), an org has at most one
-- active key, only the active key keeps its private half (sealed: AES-256-GCM under the master key,
-- engine/tickets/sealing.py; the plain private key is never stored), and a revocation is never withdrawn.

CREATE TABLE ticket_keys (
    org_id              text NOT NULL REFERENCES orgs (id),
    -- engine/tickets/keys.py: 3 bytes in every payload, unique within the org
    kid                 text NOT NULL CHECK (kid ~ '^[0-9a-f]{6}$'),
    alg                 text NOT NULL DEFAULT 'Ed25519' CHECK (alg = 'Ed25519'),
    public_key          bytea NOT NULL CHECK (octet_length(public_key) = 32),
    status              text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'retiring', 'retired')),
    -- the 32-byte seed sealed (+16 bytes of GCM tag), its nonce, and which master sealed it; erased on rotation
    private_key_sealed  bytea CHECK (octet_length(private_key_sealed) = 48),
    private_key_nonce   bytea CHECK (octet_length(private_key_nonce) = 12),
    master_id           text CHECK (master_id ~ '^[0-9a-f]{16}$'),
    created_at          timestamptz NOT NULL DEFAULT now(),
    retiring_at         timestamptz CHECK (retiring_at >= created_at),
    retired_at          timestamptz CHECK (retired_at >= retiring_at),
    PRIMARY KEY (org_id, kid),
    CHECK ((status = 'active') = (private_key_sealed IS NOT NULL)),
    CHECK ((private_key_sealed IS NULL) = (private_key_nonce IS NULL)
           AND (private_key_sealed IS NULL) = (master_id IS NULL)),
    CHECK ((status = 'active') = (retiring_at IS NULL)),
    CHECK ((status = 'retired') = (retired_at IS NOT NULL))
);
CREATE UNIQUE INDEX ticket_keys_one_active_idx ON ticket_keys (org_id) WHERE status = 'active';

-- A key moves forward one step at a time and nothing but its status (and the erasure of its private half) changes.
CREATE FUNCTION ticket_keys_forward_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT ((OLD.status = 'active' AND NEW.status = 'retiring')
            OR (OLD.status = 'retiring' AND NEW.status = 'retired'))
       OR (NEW.org_id, NEW.kid, NEW.alg, NEW.public_key, NEW.created_at)
          IS DISTINCT FROM (OLD.org_id, OLD.kid, OLD.alg, OLD.public_key, OLD.created_at) THEN
        RAISE EXCEPTION 'ticket key % cannot go from % to %', OLD.kid, OLD.status, NEW.status
            USING ERRCODE = 'check_violation', CONSTRAINT = 'ticket_keys_forward_only';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER ticket_keys_forward_only BEFORE UPDATE ON ticket_keys
    FOR EACH ROW EXECUTE FUNCTION ticket_keys_forward_only();

-- One row per event with revocations: its version, bumped by every change, so a scanner asks for what changed since.
CREATE TABLE ticket_revocation_lists (
    org_id      text NOT NULL,
    event_id    text NOT NULL PRIMARY KEY,
    version     bigint NOT NULL CHECK (version >= 1),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (org_id, event_id) REFERENCES events (org_id, id)
);

-- A revoked ticket, with the list version that revoked it. Never updated or deleted (no privilege to).
CREATE TABLE ticket_revocations (
    org_id      text NOT NULL,
    event_id    text NOT NULL REFERENCES ticket_revocation_lists (event_id),
    ticket_id   text NOT NULL REFERENCES tickets (id),
    version     bigint NOT NULL CHECK (version >= 1),
    revoked_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, ticket_id),
    -- a ticket id embeds its event's (engine/ids.py): a revocation names a ticket of its own event
    CHECK (starts_with(ticket_id, 'tkt_' || substr(event_id, 5))),
    FOREIGN KEY (org_id, event_id) REFERENCES events (org_id, id)
);
CREATE INDEX ticket_revocations_version_idx ON ticket_revocations (event_id, version);

-- A revocation carries its list's current version: bump the list, then insert (persistence/tickets.py), so
-- "everything after version V" is exactly what changed since a scanner last had V.
CREATE FUNCTION ticket_revocations_current_version() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    current bigint;
BEGIN
    SELECT version INTO current FROM ticket_revocation_lists WHERE event_id = NEW.event_id;
    -- no list (or another org's, hidden by RLS): the foreign key or the policy refuses the row
    IF FOUND AND current <> NEW.version THEN
        RAISE EXCEPTION 'a revocation of % must carry its list''s current version %', NEW.event_id, current
            USING ERRCODE = 'check_violation', CONSTRAINT = 'ticket_revocations_current_version';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER ticket_revocations_current_version BEFORE INSERT ON ticket_revocations
    FOR EACH ROW EXECUTE FUNCTION ticket_revocations_current_version();

-- Privileges: keys are made and moved forward, lists bumped, revocations only ever added.
GRANT SELECT, INSERT, UPDATE ON ticket_keys, ticket_revocation_lists TO voelgoed_app, voelgoed_platform;
GRANT SELECT, INSERT ON ticket_revocations TO voelgoed_app, voelgoed_platform;

SELECT isolate_by_org('ticket_keys', 'ticket_revocation_lists', 'ticket_revocations');  -- 003_venues_layouts.sql
