-- Checkout's scopes (engine/access/rules.py): refunding orders, reading the ledger, paying the organizer out.
-- A checkout itself needs inventory:confirm (it is the paid way to confirm a hold), so publishable keys keep
-- the buying scopes only.
ALTER TABLE api_keys DROP CONSTRAINT api_keys_scopes_check;
ALTER TABLE api_keys
    ADD CONSTRAINT api_keys_scopes_check CHECK (
        scopes <@ ARRAY['events:read', 'events:write', 'inventory:read', 'inventory:hold', 'inventory:confirm',
                        'orders:read', 'orders:refund', 'ledger:read', 'payouts:write', 'scans:write',
                        'reports:read', 'keys:manage', 'members:manage', 'audit:read']::text[]
        AND array_position(scopes, NULL) IS NULL);
