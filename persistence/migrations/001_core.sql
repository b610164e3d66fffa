-- Core schema: tenants, API keys, events with their seats and ticket types, sales and tickets.
--
-- Postgres is the last line of defence against oversell, so the invariants live here as well as in the engine:
-- a seat has at most one live ticket, GA units are numbered 1..capacity and each is sold at most once, every
-- child row names its org and event and cannot disagree with its parent (composite foreign keys), and a
-- ticket's status always equals its sale's (ON UPDATE CASCADE).
-- The numeric bounds repeat engine/limits.py; tests/integration/test_pg_schema.py checks they agree.

CREATE TABLE orgs (
    id          text PRIMARY KEY CHECK (id ~ '^org_[0-9a-f]{32}$'),
    name        text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id            text PRIMARY KEY CHECK (id ~ '^key_[0-9a-f]{32}$'),
    org_id        text NOT NULL REFERENCES orgs (id),
    name          text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    -- the public part of "vk_<prefix>_<secret>": how a presented key finds its row
    prefix        text NOT NULL UNIQUE CHECK (prefix ~ '^[0-9a-f]{12}$'),
    -- sha256 of the secret; the secret itself is never stored
    secret_hash   bytea NOT NULL CHECK (octet_length(secret_hash) = 32),
    scopes        text[] NOT NULL CHECK (
                      scopes <@ ARRAY['events:read', 'events:write', 'inventory:read', 'inventory:hold',
                                      'inventory:confirm', 'keys:manage']::text[]
                      AND array_position(scopes, NULL) IS NULL),
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz,
    last_used_at  timestamptz
);
CREATE INDEX api_keys_org_idx ON api_keys (org_id, created_at);

CREATE TABLE events (
    id                     text PRIMARY KEY CHECK (id ~ '^evt_[0-9a-f]{32}$'),
    org_id                 text NOT NULL REFERENCES orgs (id),
    name                   text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    starts_at              timestamptz NOT NULL,
    hold_ttl_s             integer NOT NULL CHECK (hold_ttl_s BETWEEN 1 AND 3600),
    max_tickets_per_buyer  integer NOT NULL CHECK (max_tickets_per_buyer BETWEEN 1 AND 100),
    status                 text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'on_sale')),
    seating                jsonb CHECK (seating IS NULL OR jsonb_typeof(seating) = 'object'),
    seat_count             integer NOT NULL DEFAULT 0 CHECK (seat_count BETWEEN 0 AND 100000),
    dedicated              boolean NOT NULL DEFAULT false,
    -- bumped by each new incarnation of the event's inventory; sale writes carry it (fencing)
    inventory_epoch        bigint NOT NULL DEFAULT 0 CHECK (inventory_epoch >= 0),
    created_at             timestamptz NOT NULL DEFAULT now(),
    published_at           timestamptz,
    CHECK ((status = 'draft') = (published_at IS NULL)),
    -- lets child tables carry org_id and prove it matches their event
    UNIQUE (org_id, id)
);

-- Fencing and recovery rely on these never going backwards: an on-sale event stays on sale (its inventory
-- owns sales), and an inventory epoch only grows (a zombie incarnation's old epoch never becomes current again).
CREATE FUNCTION events_forward_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status = 'on_sale' AND NEW.status <> 'on_sale' THEN
        RAISE EXCEPTION 'event % is on sale and cannot go back to %', OLD.id, NEW.status
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.inventory_epoch < OLD.inventory_epoch THEN
        RAISE EXCEPTION 'event % inventory epoch cannot go back from % to %', OLD.id, OLD.inventory_epoch,
            NEW.inventory_epoch USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER events_forward_only BEFORE UPDATE OF status, inventory_epoch ON events
    FOR EACH ROW EXECUTE FUNCTION events_forward_only();

CREATE TABLE seats (
    org_id      text NOT NULL,
    event_id    text NOT NULL,
    seat_id     text NOT NULL CHECK (char_length(seat_id) BETWEEN 1 AND 128),
    -- position in the availability bitmap
    seat_index  integer NOT NULL CHECK (seat_index BETWEEN 0 AND 99999),
    PRIMARY KEY (event_id, seat_id),
    UNIQUE (event_id, seat_index),
    FOREIGN KEY (org_id, event_id) REFERENCES events (org_id, id)
);

CREATE TABLE ticket_types (
    org_id       text NOT NULL,
    event_id     text NOT NULL,
    code         text NOT NULL CHECK (char_length(code) BETWEEN 1 AND 32),
    -- creation order, which is the order the inventory and the API list the types in
    position     integer NOT NULL CHECK (position BETWEEN 0 AND 19),
    kind         text NOT NULL CHECK (kind IN ('ga', 'seated')),
    -- seated: the number of seats; ga: units are numbered 1..capacity
    capacity     integer NOT NULL CHECK (capacity BETWEEN 0 AND 1000000),
    price_minor  bigint NOT NULL CHECK (price_minor >= 0),
    currency     char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    PRIMARY KEY (event_id, code),
    UNIQUE (event_id, position),
    -- targets of the tickets' foreign keys: a ticket must agree with its type's kind and GA capacity
    UNIQUE (event_id, code, kind),
    UNIQUE (event_id, code, capacity),
    FOREIGN KEY (org_id, event_id) REFERENCES events (org_id, id)
);
-- the inventory has at most one seated ticket type per event
CREATE UNIQUE INDEX ticket_types_one_seated_idx ON ticket_types (event_id) WHERE kind = 'seated';

CREATE TABLE sales (
    id          text PRIMARY KEY,
    org_id      text NOT NULL,
    event_id    text NOT NULL,
    -- one hold makes at most one sale
    hold_id     text NOT NULL UNIQUE,
    buyer_id    text NOT NULL CHECK (char_length(buyer_id) BETWEEN 1 AND 128),
    order_ref   text NOT NULL CHECK (char_length(order_ref) BETWEEN 1 AND 200),
    -- the inventory epoch the sale was written under
    epoch       bigint NOT NULL CHECK (epoch >= 1),
    status      text NOT NULL DEFAULT 'live' CHECK (status IN ('live', 'cancelled')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    cancelled_at timestamptz,
    CHECK ((status = 'live') = (cancelled_at IS NULL)),
    -- ids derive from each other (engine/ids.py): the hold names its event, the sale names its hold
    CHECK (hold_id ~ '^hld_[0-9a-f]{52}$'),
    CHECK (substr(hold_id, 5, 32) = substr(event_id, 5)),
    CHECK (id = 'sal_' || substr(hold_id, 5)),
    FOREIGN KEY (org_id, event_id) REFERENCES events (org_id, id)
);
-- target of the tickets' foreign key, and the access path of load_sales (event_id, status = 'live').
-- No other index starts with event_id or org_id: the foreign key's cached generic plan must not pick one
-- and scan the whole event per ticket (seen: 1.3 ms per ticket with an (org_id, event_id) index beside it).
CREATE UNIQUE INDEX sales_event_status_idx ON sales (event_id, status, id, org_id);

CREATE TABLE tickets (
    id           text PRIMARY KEY,
    org_id       text NOT NULL,
    event_id     text NOT NULL,
    sale_id      text NOT NULL,
    -- 1-based position in the sale: the order the seats or units were sold in
    ordinal      integer NOT NULL CHECK (ordinal BETWEEN 1 AND 100),
    ticket_type  text NOT NULL,
    seat_id      text,
    unit         integer,
    -- the GA type's capacity, copied so the check below can bound the unit; the FK proves it is the real one
    capacity     integer,
    kind         text NOT NULL GENERATED ALWAYS AS (CASE WHEN seat_id IS NULL THEN 'ga' ELSE 'seated' END) STORED,
    status       text NOT NULL DEFAULT 'live' CHECK (status IN ('live', 'cancelled')),
    CHECK ((seat_id IS NULL) <> (unit IS NULL)),
    CHECK ((unit IS NULL) = (capacity IS NULL)),
    CHECK (unit BETWEEN 1 AND capacity),
    CHECK (id = 'tkt_' || substr(sale_id, 5) || '_' || ordinal),
    -- the ticket's org, event and status are its sale's; cancelling the sale cancels its tickets
    FOREIGN KEY (event_id, status, sale_id, org_id) REFERENCES sales (event_id, status, id, org_id)
        ON UPDATE CASCADE,
    FOREIGN KEY (event_id, seat_id) REFERENCES seats (event_id, seat_id),
    FOREIGN KEY (event_id, ticket_type, kind) REFERENCES ticket_types (event_id, code, kind),
    FOREIGN KEY (event_id, ticket_type, capacity) REFERENCES ticket_types (event_id, code, capacity)
);
-- zero oversell: one live ticket per seat, one live ticket per GA unit
CREATE UNIQUE INDEX tickets_live_seat_idx ON tickets (event_id, seat_id)
    WHERE status = 'live' AND seat_id IS NOT NULL;
CREATE UNIQUE INDEX tickets_live_unit_idx ON tickets (event_id, ticket_type, unit)
    WHERE status = 'live' AND unit IS NOT NULL;
-- load_sales joins tickets to sales; the cascade from sales finds a sale's tickets
CREATE INDEX tickets_sale_idx ON tickets (sale_id, ordinal);
