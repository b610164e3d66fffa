"""The inventory domain's stores: sales and tickets in Postgres, live holds and availability in Redis."""
