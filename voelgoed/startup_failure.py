"""The one failure every step of `voelgoed up` reports the same way: a line on stderr, exit status 1.

Its own module because the steps that raise it (the session secret, the demo) sit below the supervisor that
catches it, and must not import the supervisor.
"""

from __future__ import annotations


class StartupFailed(Exception):
    """A step of the start-up failed; its message says which and where to look."""
