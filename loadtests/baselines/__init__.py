"""Load-test baselines: our gateway with the inventory a typical team would build instead (Postgres rows, or
Redis Lua scripts), so the flash-sale harness compares mechanisms, not HTTP stacks."""
