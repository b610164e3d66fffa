"""The application layer: one module per domain, each function one use case.

A use case is what a route (or an actor) asks the platform to do: it opens a unit of work, calls the engine's
rules, changes rows through persistence/, and records what happened. It knows nothing of HTTP: it answers values
or raises ``engine.refusals.Refused``, and the gateway renders both.
"""
