"""The catalog domain's stores: events, ticket types and seats in Postgres, event metas in Redis."""
