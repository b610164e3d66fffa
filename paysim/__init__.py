"""The payment provider simulator: a small card processor in its own process, for tests, the harness and
`voelgoed up`. It imports nothing of the platform (an import-linter contract says so): it is the outside world.

Outcomes reach the platform only by signed webhook, asynchronously, like a real processor's. See
docs/api.md "The payment simulator" for its routes and test cards.
"""
