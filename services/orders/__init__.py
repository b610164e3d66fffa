"""Checkout's use cases: a hold becomes an order (``checkout``), the provider's webhooks move it (``payments``),
the outbox's work fulfils it or gives its money back (``fulfilment``), unpaid orders expire (``expiry``), and the
reads (``reads``). Each move of an order is the engine's (engine/orders.py), applied in one unit of work with
its audit entries and the work it owes (``moves``)."""
