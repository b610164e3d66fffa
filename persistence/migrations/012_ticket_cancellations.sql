-- A ticket may be given back on its own while its sale stands (the inventory's CancelTickets: a refund of part
-- of an order), so a ticket's status no longer always equals its sale's (001_core.sql). ``sale_status`` now
-- follows the sale (ON UPDATE CASCADE, as ``status`` did); ``status`` is the ticket's own: cancelled when the
-- ticket or its sale is, and never live again. The live seat and unit indexes (tickets_live_seat_idx,
-- tickets_live_unit_idx) cover live tickets only, so a given-back ticket's seat or unit can be sold again.
ALTER TABLE tickets ADD COLUMN sale_status text;
UPDATE tickets SET sale_status = status;
ALTER TABLE tickets ALTER COLUMN sale_status SET NOT NULL, ALTER COLUMN sale_status SET DEFAULT 'live';
ALTER TABLE tickets DROP CONSTRAINT tickets_event_id_status_sale_id_org_id_fkey;
ALTER TABLE tickets ADD CONSTRAINT tickets_sale_fkey FOREIGN KEY (event_id, sale_status, sale_id, org_id)
    REFERENCES sales (event_id, status, id, org_id) ON UPDATE CASCADE;
ALTER TABLE tickets ADD CONSTRAINT tickets_live_only_in_live_sale_check
    CHECK (status = 'cancelled' OR sale_status = 'live');

-- Runs on the cascade from sales too: cancelling a sale still cancels its tickets, which frees their seats.
CREATE FUNCTION tickets_status_forward() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.sale_status = 'cancelled' THEN
        NEW.status := 'cancelled';
    END IF;
    IF OLD.status = 'cancelled' AND NEW.status <> 'cancelled' THEN
        RAISE EXCEPTION 'ticket % is cancelled and cannot be live again', OLD.id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'tickets_status_forward';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER tickets_status_forward BEFORE UPDATE ON tickets
    FOR EACH ROW EXECUTE FUNCTION tickets_status_forward();

-- A rebuild reads the tickets live sales gave back (persistence/inventory/sales.py load_cancelled_tickets): few,
-- so a partial index spares it a second pass over every ticket of the event.
CREATE INDEX tickets_given_back_idx ON tickets (event_id, sale_id, ordinal)
    WHERE status = 'cancelled' AND sale_status = 'live';
