"""The catalog's use cases, one module per resource: events (create, publish, read), lifecycle (transitions,
changes, capacity, timed moves), venues (venues, layouts, events on a layout), pricing (promo codes, quotes, promo
uses)."""
