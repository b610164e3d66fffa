-- Pricing: each event's price rules (tiers, fees, tax), its promo codes, and every use taken of a promo code.
--
-- engine/catalog/pricing.py decides prices; these tables keep what it decides from, and defend what must never
-- break even with a buggy writer: one currency per event, tiers in order, a fee is an amount or a percentage,
-- and a promo code never has more live uses than max_uses (overall) or max_uses_per_buyer (one buyer), however
-- many gateway processes take uses at once (trigger promo_uses_within_limits, below). The numeric bounds repeat
-- engine/limits.py and engine/catalog/pricing.py.

-- Every price of an event is in its ticket types' one currency: tiers point at (type, currency).
ALTER TABLE ticket_types ADD CONSTRAINT ticket_types_event_code_currency_key UNIQUE (event_id, code, currency);

-- One row per event: the version of its price list (bumped by every change, so caches keep the newest; the
-- UPDATE also serializes changes of one event) and its tax, if any.
CREATE TABLE price_lists (
    org_id        text NOT NULL,
    event_id      text NOT NULL PRIMARY KEY,
    version       bigint NOT NULL DEFAULT 1 CHECK (version >= 1),
    tax_code      text CHECK (char_length(tax_code) BETWEEN 1 AND 32),
    tax_rate_bp   integer CHECK (tax_rate_bp BETWEEN 0 AND 10000),
    tax_included  boolean,
    CHECK ((tax_code IS NULL) = (tax_rate_bp IS NULL) AND (tax_code IS NULL) = (tax_included IS NULL)),
    FOREIGN KEY (org_id, event_id) REFERENCES events (org_id, id)
);

-- A ticket type's price tiers: the first whose `until` is still ahead applies (position order = `until` order).
CREATE TABLE price_tiers (
    org_id        text NOT NULL,
    event_id      text NOT NULL,
    ticket_type   text NOT NULL,
    position      integer NOT NULL CHECK (position BETWEEN 0 AND 9),
    until         timestamptz NOT NULL,
    price_minor   bigint NOT NULL CHECK (price_minor BETWEEN 0 AND 1000000000000),
    currency      char(3) NOT NULL,
    PRIMARY KEY (event_id, ticket_type, position),
    UNIQUE (event_id, ticket_type, until),
    FOREIGN KEY (event_id, ticket_type, currency) REFERENCES ticket_types (event_id, code, currency),
    FOREIGN KEY (org_id, event_id) REFERENCES events (org_id, id)
);

-- Tiers are ordered by time as well as by position.
CREATE FUNCTION price_tiers_in_order() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT FROM price_tiers t
               WHERE t.event_id = NEW.event_id AND t.ticket_type = NEW.ticket_type
                 AND ((t.position < NEW.position AND t.until >= NEW.until)
                      OR (t.position > NEW.position AND t.until <= NEW.until))) THEN
        RAISE EXCEPTION 'price tiers of % must have increasing until', NEW.ticket_type
            USING ERRCODE = 'check_violation', CONSTRAINT = 'price_tiers_in_order';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER price_tiers_in_order BEFORE INSERT ON price_tiers
    FOR EACH ROW EXECUTE FUNCTION price_tiers_in_order();

CREATE TABLE event_fees (
    org_id        text NOT NULL,
    event_id      text NOT NULL,
    code          text NOT NULL CHECK (char_length(code) BETWEEN 1 AND 32),
    position      integer NOT NULL CHECK (position BETWEEN 0 AND 9),
    per           text NOT NULL CHECK (per IN ('ticket', 'order')),
    amount_minor  bigint CHECK (amount_minor BETWEEN 0 AND 1000000000000),
    percent_bp    integer CHECK (percent_bp BETWEEN 0 AND 10000),
    CHECK ((amount_minor IS NULL) <> (percent_bp IS NULL)),
    PRIMARY KEY (event_id, code),
    UNIQUE (event_id, position),
    FOREIGN KEY (org_id, event_id) REFERENCES events (org_id, id)
);

-- Codes are stored upper-cased: buyers type them in any case.
CREATE TABLE promo_codes (
    org_id              text NOT NULL,
    event_id            text NOT NULL,
    code                text NOT NULL CHECK (code ~ '^[A-Z0-9_-]{1,32}$'),
    percent_off_bp      integer CHECK (percent_off_bp BETWEEN 1 AND 10000),
    amount_off_minor    bigint CHECK (amount_off_minor BETWEEN 1 AND 1000000000000),
    max_uses            integer CHECK (max_uses BETWEEN 1 AND 1000000),
    max_uses_per_buyer  integer CHECK (max_uses_per_buyer BETWEEN 1 AND 1000000),
    valid_from          timestamptz,
    valid_until         timestamptz CHECK (valid_until > valid_from),
    -- NULL: every ticket type of the event
    ticket_types        text[] CHECK (cardinality(ticket_types) BETWEEN 1 AND 20
                                      AND array_position(ticket_types, NULL) IS NULL),
    created_at          timestamptz NOT NULL DEFAULT now(),
    CHECK ((percent_off_bp IS NULL) <> (amount_off_minor IS NULL)),
    PRIMARY KEY (event_id, code),
    UNIQUE (org_id, event_id, code),
    FOREIGN KEY (org_id, event_id) REFERENCES events (org_id, id)
);

-- A use of a promo code, taken (by checkout, for an order: use_id is the order's id) and live until released.
CREATE TABLE promo_uses (
    -- unique per event (an order id, given by checkout): a use id of another org or event never collides
    use_id       text NOT NULL CHECK (char_length(use_id) BETWEEN 1 AND 128),
    org_id       text NOT NULL,
    event_id     text NOT NULL,
    code         text NOT NULL,
    buyer_id     text NOT NULL CHECK (char_length(buyer_id) BETWEEN 1 AND 128),
    taken_at     timestamptz NOT NULL DEFAULT now(),
    released_at  timestamptz CHECK (released_at >= taken_at),
    PRIMARY KEY (event_id, use_id),
    FOREIGN KEY (org_id, event_id, code) REFERENCES promo_codes (org_id, event_id, code)
);
CREATE INDEX promo_uses_live_idx ON promo_uses (event_id, code, buyer_id) WHERE released_at IS NULL;

-- The limits, whoever writes: a new use locks its promo code's row (so the takers of one code queue here, across
-- every process) and then counts the live uses, which in READ COMMITTED include every use committed before the
-- lock was granted. A use beyond max_uses or max_uses_per_buyer is refused.
CREATE FUNCTION promo_uses_within_limits() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    promo  promo_codes%ROWTYPE;
    total  bigint;
    mine   bigint;
BEGIN
    SELECT * INTO promo FROM promo_codes
        WHERE org_id = NEW.org_id AND event_id = NEW.event_id AND code = NEW.code FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NEW;  -- the foreign key refuses it
    END IF;
    SELECT count(*), count(*) FILTER (WHERE buyer_id = NEW.buyer_id) INTO total, mine FROM promo_uses
        WHERE event_id = NEW.event_id AND code = NEW.code AND released_at IS NULL;
    IF promo.max_uses IS NOT NULL AND total >= promo.max_uses THEN
        RAISE EXCEPTION 'promo code % is used up', NEW.code
            USING ERRCODE = 'check_violation', CONSTRAINT = 'promo_uses_max_uses';
    END IF;
    IF promo.max_uses_per_buyer IS NOT NULL AND mine >= promo.max_uses_per_buyer THEN
        RAISE EXCEPTION 'buyer has used promo code % as often as allowed', NEW.code
            USING ERRCODE = 'check_violation', CONSTRAINT = 'promo_uses_max_uses_per_buyer';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER promo_uses_within_limits BEFORE INSERT ON promo_uses
    FOR EACH ROW EXECUTE FUNCTION promo_uses_within_limits();

-- A use is released at most once and never comes back; nothing else about it changes.
CREATE FUNCTION promo_uses_release_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.released_at IS NOT NULL OR NEW.released_at IS NULL
       OR (NEW.use_id, NEW.org_id, NEW.event_id, NEW.code, NEW.buyer_id, NEW.taken_at)
          IS DISTINCT FROM (OLD.use_id, OLD.org_id, OLD.event_id, OLD.code, OLD.buyer_id, OLD.taken_at) THEN
        RAISE EXCEPTION 'a promo use can only be released, once'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'promo_uses_release_only';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER promo_uses_release_only BEFORE UPDATE ON promo_uses
    FOR EACH ROW EXECUTE FUNCTION promo_uses_release_only();

-- Privileges. UPDATE on promo_codes: the limits trigger locks the code's row (FOR UPDATE needs it).
GRANT SELECT, INSERT ON price_tiers, event_fees TO voelgoed_app, voelgoed_platform;
GRANT SELECT, INSERT, UPDATE ON price_lists, promo_codes, promo_uses TO voelgoed_app, voelgoed_platform;

SELECT isolate_by_org('price_lists', 'price_tiers', 'event_fees', 'promo_codes', 'promo_uses');  -- 003_venues_layouts.sql
