"""/v1/holds/{id}/checkout, /v1/payments/webhooks/{provider}, /v1/orders: checkout's HTTP routes (services/orders/
holds the use cases)."""
