"""Payments' infrastructure: the provider port the platform calls, and its adapter over HTTP to the simulator.

An outbound HTTP client to the provider is infrastructure like the Postgres and Redis clients beside it: the
application layer (services/) and the supporting actors call it through `PaymentProvider`, and nothing here
serves HTTP (the no-http-below-the-gateway contract forbids starlette, uvicorn and pydantic, not a client).
"""
