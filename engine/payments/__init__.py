"""Payments: the provider's webhook signature, and the values the platform and a payment provider exchange."""
