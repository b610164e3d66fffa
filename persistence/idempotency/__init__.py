"""Where stored answers to Idempotency-Keys live (the gateway reads and writes them: gateway/idempotency.py)."""
