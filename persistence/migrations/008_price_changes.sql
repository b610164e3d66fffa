-- Price changes after an event's creation (PATCH /v1/events/{id} fees and tax, PATCH .../ticket-types/{code} price
-- and price_tiers): a ticket type's base price is updated in place, its tiers and the event's fees are replaced as
-- a whole (deleted and inserted again in the change's transaction; the price_tiers_in_order trigger checks the new
-- rows against each other, the old ones being gone). The currency never changes (engine/catalog/price_changes.py),
-- so the tiers' foreign key to (type, currency) keeps holding. Row-level security already covers every command
-- (isolate_by_org's policy has no FOR clause).
--
-- Numbered 008: 006 and 007 are taken by other slices (ledger, tickets) being built beside this one.
GRANT UPDATE (price_minor) ON ticket_types TO voelgoed_app, voelgoed_platform;
GRANT DELETE ON price_tiers, event_fees TO voelgoed_app, voelgoed_platform;
