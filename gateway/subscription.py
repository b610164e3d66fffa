"""A Redis pub/sub subscription that lives as long as the gateway process, reconnecting with bounded backoff.

Whoever listens must assume it missed messages while disconnected, so ``on_connect`` runs on every (re)connect
(before the first message) and ``on_disconnect`` on every loss: both let the listener drop what may be stale.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

reconnect_backoff_s_first = 0.1
reconnect_backoff_s_max = 5.0


def _nothing() -> None:
    return None


@dataclass
class Subscription:
    redis: Redis
    name: str  # for the logs
    on_message: Callable[[str, bytes], None]  # (channel, data)
    channels: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    on_connect: Callable[[], None] = field(default=_nothing)
    on_disconnect: Callable[[], None] = field(default=_nothing)

    async def run_forever(self) -> None:
        """Deliver every message until cancelled; never dies silently on an error."""
        backoff_s = reconnect_backoff_s_first
        while True:
            try:
                async with self.redis.pubsub() as pubsub:
                    if self.channels:
                        await pubsub.subscribe(*self.channels)
                    if self.patterns:
                        await pubsub.psubscribe(*self.patterns)
                    self.on_connect()
                    backoff_s = reconnect_backoff_s_first
                    async for message in pubsub.listen():
                        if message.get("type") in ("message", "pmessage"):
                            channel = message["channel"]
                            self.on_message(
                                channel.decode() if isinstance(channel, bytes) else channel, message["data"]
                            )
            except (RedisError, OSError):
                log.warning("%s lost Redis; reconnecting", self.name)
            except Exception:
                log.exception("%s failed; restarting it", self.name)
            self.on_disconnect()
            await asyncio.sleep(backoff_s)
            backoff_s = min(backoff_s * 2, reconnect_backoff_s_max)
