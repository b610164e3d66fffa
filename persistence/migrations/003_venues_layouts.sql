-- Venues and their seating layouts; events made on a layout; several seated ticket types per event (by zone).
--
-- A layout never changes once made (no UPDATE or DELETE is granted): events made on it copy its seats, in its
-- index order, into seats (seat_index = the layout seat's), so the layout's seat i draws the event's seat i.
-- The rules are engine/catalog/layouts.py's; these constraints are the last line behind them.

CREATE TABLE venues (
    id          text PRIMARY KEY CHECK (id ~ '^ven_[0-9a-f]{32}$'),
    org_id      text NOT NULL REFERENCES orgs (id),
    name        text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    timezone    text NOT NULL CHECK (char_length(timezone) BETWEEN 1 AND 64),
    address     text CHECK (char_length(address) BETWEEN 1 AND 500),
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, id)
);
CREATE INDEX venues_org_idx ON venues (org_id, created_at, id);

CREATE TABLE layouts (
    id          text PRIMARY KEY CHECK (id ~ '^lay_[0-9a-f]{32}$'),
    org_id      text NOT NULL,
    venue_id    text NOT NULL,
    name        text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    seat_count  integer NOT NULL CHECK (seat_count BETWEEN 1 AND 100000),
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, id),
    FOREIGN KEY (org_id, venue_id) REFERENCES venues (org_id, id)
);
CREATE INDEX layouts_venue_idx ON layouts (org_id, venue_id, created_at);

CREATE TABLE layout_zones (
    org_id      text NOT NULL,
    layout_id   text NOT NULL,
    position    integer NOT NULL CHECK (position BETWEEN 0 AND 49),
    code        text NOT NULL CHECK (code ~ '^[A-Za-z0-9_-]{1,32}$'),
    name        text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    PRIMARY KEY (layout_id, code),
    UNIQUE (layout_id, position),
    FOREIGN KEY (org_id, layout_id) REFERENCES layouts (org_id, id)
);

CREATE TABLE layout_seats (
    org_id      text NOT NULL,
    layout_id   text NOT NULL,
    seat_index  integer NOT NULL CHECK (seat_index BETWEEN 0 AND 99999),
    section     text NOT NULL CHECK (section ~ '^[A-Za-z0-9]{1,32}$'),
    row_label   text NOT NULL CHECK (row_label ~ '^[A-Za-z0-9]{1,32}$'),
    number      integer NOT NULL CHECK (number BETWEEN 1 AND 9999999),
    x           double precision NOT NULL CHECK (x BETWEEN -1000000 AND 1000000),
    y           double precision NOT NULL CHECK (y BETWEEN -1000000 AND 1000000),
    zone        text,
    attributes  text[] NOT NULL DEFAULT '{}' CHECK (
        attributes <@ ARRAY['accessible', 'restricted_view', 'companion', 'not_for_sale']::text[]
        AND array_position(attributes, NULL) IS NULL),
    PRIMARY KEY (layout_id, seat_index),
    -- a seat id ("{section}-{row}-{number}") appears once in a layout
    UNIQUE (layout_id, section, row_label, number),
    FOREIGN KEY (org_id, layout_id) REFERENCES layouts (org_id, id),
    FOREIGN KEY (layout_id, zone) REFERENCES layout_zones (layout_id, code)
);

-- An event made on a layout names it; its seats are the layout's, copied.
ALTER TABLE events ADD COLUMN layout_id text;
ALTER TABLE events ADD CONSTRAINT events_layout_fkey FOREIGN KEY (org_id, layout_id) REFERENCES layouts (org_id, id);
ALTER TABLE events ADD CONSTRAINT events_layout_or_seating_check CHECK (layout_id IS NULL OR seating IS NULL);

-- Several seated ticket types per event (each a zone's seats): each seat names the type selling it, NULL for a
-- seat nobody sells (blocked), and a seated ticket must be its seat's type.
DROP INDEX ticket_types_one_seated_idx;
ALTER TABLE ticket_types ADD COLUMN zone text CHECK (zone ~ '^[A-Za-z0-9_-]{1,32}$');
ALTER TABLE ticket_types ADD CONSTRAINT ticket_types_zone_kind_check CHECK (zone IS NULL OR kind = 'seated');
CREATE UNIQUE INDEX ticket_types_zone_idx ON ticket_types (event_id, zone) WHERE zone IS NOT NULL;
ALTER TABLE seats ADD COLUMN ticket_type text;
UPDATE seats s SET ticket_type = t.code
    FROM ticket_types t WHERE t.event_id = s.event_id AND t.kind = 'seated';
ALTER TABLE seats ADD CONSTRAINT seats_ticket_type_fkey
    FOREIGN KEY (event_id, ticket_type) REFERENCES ticket_types (event_id, code);
ALTER TABLE seats ADD CONSTRAINT seats_event_seat_type_key UNIQUE (event_id, seat_id, ticket_type);
ALTER TABLE tickets ADD CONSTRAINT tickets_seat_type_fkey
    FOREIGN KEY (event_id, seat_id, ticket_type) REFERENCES seats (event_id, seat_id, ticket_type);
-- the new key implies the seat exists in the event: the old one would only cost a sale a second index probe
ALTER TABLE tickets DROP CONSTRAINT tickets_event_id_seat_id_fkey;

GRANT SELECT, INSERT ON venues, layouts, layout_zones, layout_seats TO voelgoed_app, voelgoed_platform;

-- Every tenant table from here on is isolated the way 002_tenancy.sql isolates its own: row-level security and
-- one policy, a row visible and writable only inside its org's transaction (persistence/tenancy.py).
CREATE FUNCTION isolate_by_org(VARIADIC tenant_tables text[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    tenant_table text;
BEGIN
    FOREACH tenant_table IN ARRAY tenant_tables
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
REVOKE ALL ON FUNCTION isolate_by_org(text[]) FROM PUBLIC;

SELECT isolate_by_org('venues', 'layouts', 'layout_zones', 'layout_seats');
