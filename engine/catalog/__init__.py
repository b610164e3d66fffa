"""The catalog domain's core: events, their seating layouts, ticket types and lifecycle, as pure rules."""
