"""/v1/ledger and /v1/payouts: the ledger's HTTP routes (services/ledger.py holds the use cases)."""
