-- The event lifecycle: every status, the moves between them (repeating engine/catalog/lifecycle.py's table), the
-- sale schedule and presales the catalog timer acts on, a revision that orders every change of an event's meta,
-- sales marked for refund when an event is cancelled, capacity changes on a live GA ticket type, and the timer's
-- fencing lease.

-- Statuses and moves. The trigger accepts exactly the moves some mover may make (lifecycle.stored_moves());
-- tests/integration/test_lifecycle_store.py checks the two agree, pair by pair.
ALTER TABLE events DROP CONSTRAINT events_status_check;
-- (status = 'draft') = (published_at IS NULL) no longer holds: a draft can be cancelled without being published.
ALTER TABLE events DROP CONSTRAINT events_check;
ALTER TABLE events
    ADD CONSTRAINT events_status_check CHECK (
        status IN ('draft', 'published', 'on_sale', 'paused', 'sold_out', 'closed', 'cancelled')),
    ADD CONSTRAINT events_published_at_check CHECK (
        CASE status WHEN 'draft' THEN published_at IS NULL WHEN 'cancelled' THEN true
        ELSE published_at IS NOT NULL END),
    ADD COLUMN sale_opens_at timestamptz,
    ADD COLUMN sale_closes_at timestamptz,
    -- [{"code", "opens_at", "closes_at", "buyer_ids"?}]: checked by engine/catalog/presales.py before it is written
    ADD COLUMN presales jsonb NOT NULL DEFAULT '[]'::jsonb,
    -- bumped by every change of what the event's meta says (status, schedule, limits, capacities): a writer of the
    -- Redis meta keeps the newest, and the inventory applies only a newer status than it has
    ADD COLUMN revision bigint NOT NULL DEFAULT 0 CHECK (revision >= 0),
    ADD CONSTRAINT events_sale_window_check CHECK (sale_closes_at > sale_opens_at),
    ADD CONSTRAINT events_presales_check CHECK (
        jsonb_typeof(presales) = 'array' AND jsonb_array_length(presales) <= 10);

CREATE OR REPLACE FUNCTION events_forward_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status <> OLD.status AND NOT ((OLD.status || '>' || NEW.status) = ANY (ARRAY[
        'draft>published', 'draft>cancelled', 'draft>on_sale',
        'published>on_sale', 'published>draft', 'published>cancelled',
        'on_sale>paused', 'on_sale>closed', 'on_sale>cancelled', 'on_sale>sold_out',
        'paused>on_sale', 'paused>closed', 'paused>cancelled',
        'sold_out>on_sale', 'sold_out>closed', 'sold_out>cancelled'])) THEN
        RAISE EXCEPTION 'event % cannot move from % to %', OLD.id, OLD.status, NEW.status
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.inventory_epoch < OLD.inventory_epoch THEN
        RAISE EXCEPTION 'event % inventory epoch cannot go back from % to %', OLD.id, OLD.inventory_epoch,
            NEW.inventory_epoch USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.revision < OLD.revision THEN
        RAISE EXCEPTION 'event % revision cannot go back from % to %', OLD.id, OLD.revision, NEW.revision
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;
DROP TRIGGER events_forward_only ON events;
CREATE TRIGGER events_forward_only BEFORE UPDATE OF status, inventory_epoch, revision ON events
    FOR EACH ROW EXECUTE FUNCTION events_forward_only();

-- What the catalog timer scans (every org's events with a timed move pending), on restart and periodically.
CREATE INDEX events_timed_idx ON events (org_id, id)
    WHERE status IN ('published', 'on_sale', 'paused', 'sold_out')
      AND (sale_opens_at IS NOT NULL OR sale_closes_at IS NOT NULL OR jsonb_array_length(presales) > 0);

-- Cancelling an event marks each of its live sales for refund (the checkout issue refunds them).
ALTER TABLE sales
    ADD COLUMN refund_requested_at timestamptz,
    ADD CONSTRAINT sales_refund_requested_check CHECK (refund_requested_at IS NULL OR refund_requested_at >= created_at);

-- Capacity on a live GA type: it may shrink below units already issued (down to held + sold), so a ticket's unit
-- is bounded by units_max, the highest capacity the type ever had (only ever grows), instead of the capacity.
-- The ticket keeps its copy in its `capacity` column, now following units_max (ON UPDATE CASCADE).
ALTER TABLE ticket_types ADD COLUMN units_max integer;
UPDATE ticket_types SET units_max = capacity;
ALTER TABLE ticket_types
    ALTER COLUMN units_max SET NOT NULL,
    ADD CONSTRAINT ticket_types_units_max_check CHECK (units_max >= capacity AND units_max <= 1000000),
    ADD CONSTRAINT ticket_types_event_id_code_units_max_key UNIQUE (event_id, code, units_max);
ALTER TABLE tickets
    DROP CONSTRAINT tickets_event_id_ticket_type_capacity_fkey,
    ADD CONSTRAINT tickets_event_id_ticket_type_units_max_fkey FOREIGN KEY (event_id, ticket_type, capacity)
        REFERENCES ticket_types (event_id, code, units_max) ON UPDATE CASCADE;

CREATE FUNCTION ticket_types_units_grow_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.units_max < OLD.units_max THEN
        RAISE EXCEPTION 'ticket type %/% units_max cannot go back from % to %', OLD.event_id, OLD.code,
            OLD.units_max, NEW.units_max USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.kind <> 'ga' AND NEW.capacity <> OLD.capacity THEN
        RAISE EXCEPTION 'a seated ticket type''s capacity is its seat count' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER ticket_types_units_grow_only BEFORE UPDATE OF capacity, units_max ON ticket_types
    FOR EACH ROW EXECUTE FUNCTION ticket_types_units_grow_only();
GRANT UPDATE (capacity, units_max) ON ticket_types TO voelgoed_app, voelgoed_platform;

-- The catalog timer's fencing lease (platform-wide, no org's data): each incarnation of the timer takes the next
-- epoch, and each of its writes locks this row FOR SHARE and checks its epoch is still the current one.
CREATE TABLE catalog_timer_leases (
    name      text PRIMARY KEY CHECK (char_length(name) BETWEEN 1 AND 200),
    epoch     bigint NOT NULL CHECK (epoch >= 1),
    taken_at  timestamptz NOT NULL DEFAULT now()
);
GRANT SELECT, INSERT, UPDATE ON catalog_timer_leases TO voelgoed_app, voelgoed_platform;

-- A new ticket type's units_max starts at its capacity (writers need not name it).
CREATE FUNCTION ticket_types_units_max_default() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.units_max := coalesce(NEW.units_max, NEW.capacity);
    RETURN NEW;
END
$$;
CREATE TRIGGER ticket_types_units_max_default BEFORE INSERT ON ticket_types
    FOR EACH ROW EXECUTE FUNCTION ticket_types_units_max_default();
