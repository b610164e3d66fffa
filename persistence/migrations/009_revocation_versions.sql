-- A revocation list's version only ever moves up by one (persistence/tickets.py bumps it, then adds the
-- revocations carrying it). A scanner asks for "everything after the version I have": a version lowered or
-- reset would hide later revocations from it, and a revoked ticket would still be let in offline.
CREATE FUNCTION ticket_revocation_lists_forward() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.org_id <> OLD.org_id OR NEW.event_id <> OLD.event_id OR NEW.version <> OLD.version + 1 THEN
        RAISE EXCEPTION 'the revocation list of % moves from version % to % only', OLD.event_id, OLD.version,
            OLD.version + 1
            USING ERRCODE = 'check_violation', CONSTRAINT = 'ticket_revocation_lists_forward';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER ticket_revocation_lists_forward BEFORE UPDATE ON ticket_revocation_lists
    FOR EACH ROW EXECUTE FUNCTION ticket_revocation_lists_forward();
