"""The rate limits' store: GCRA buckets and daily quotas in Redis, decided by one Lua script."""
