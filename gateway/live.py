"""WS /v1/events/{id}/live: a snapshot, then the event's deltas in version order.

The connection subscribes before it reads its snapshot, so no delta can fall between the two. Deltas wait in a
bounded per-connection queue; a client too slow to keep up (the queue overflows), a version gap or a lost
subscription gets a fresh snapshot instead of a silent gap. A client may also send {"type": "snapshot"} to ask
for one. Refusals before the upgrade are answered as the usual JSON error over HTTP when the server supports the
websocket denial extension (uvicorn does), else by closing with 1008 (auth, unknown event) or 1013 (try later).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from gateway.auth import Principal
from gateway.availability import RESYNC, AvailabilityReads, LiveSubscriber, availability_json, delta_json
from gateway.context import Services, authorize, services
from gateway.errors import ApiError, InfrastructureError, error_response
from gateway.metrics import WEBSOCKETS_OPEN
from persistence.inventory.live_state import AvailabilityView

DESCRIPTION = (
    'First message {"type": "snapshot", ...availability}; then {"type": "delta", "version", '
    '"seats_changed", "seats_available", "ticket_types"} in version order. A slow client whose queue '
    'overflows gets a fresh snapshot; a client may send {"type": "snapshot"} to ask for one.'
)
CLOSE_POLICY_VIOLATION = 1008
CLOSE_TRY_AGAIN_LATER = 1013
client_message_chars_max = 1_024

# (services, the caller, event id): the caller decides the org and what it may see (publishable keys: on sale only)
LoadAvailability = Callable[[Services, Principal, str], Awaitable[AvailabilityView]]


async def serve(websocket: WebSocket, load: LoadAvailability) -> None:
    event_id = websocket.path_params["event_id"]
    subscriber = LiveSubscriber()
    svc = services(websocket)
    copies = svc.domain(AvailabilityReads).availability
    org_id = ""
    try:
        principal = await authorize(websocket, "inventory:read", allow_query_key=True)
        org_id = principal.org_id
        copies.subscribe(org_id, event_id, subscriber)
        view = await load(svc, principal, event_id)
    except ApiError as error:
        copies.unsubscribe(org_id, event_id, subscriber)
        await _deny(websocket, error)
        return
    await websocket.accept()
    WEBSOCKETS_OPEN.inc()
    try:
        await _stream(websocket, subscriber, view, lambda: load(svc, principal, event_id), event_id)
    finally:
        WEBSOCKETS_OPEN.dec()
        copies.unsubscribe(org_id, event_id, subscriber)


async def _stream(
    websocket: WebSocket,
    subscriber: LiveSubscriber,
    view: AvailabilityView,
    reload: Callable[[], Awaitable[AvailabilityView]],
    event_id: str,
) -> None:
    sender = asyncio.ensure_future(_send_updates(websocket, subscriber, view, reload, event_id))
    receiver = asyncio.ensure_future(_receive_requests(websocket, subscriber))
    try:
        await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sender, receiver):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, ApiError, RuntimeError):
                await task
    if sender.done() and not sender.cancelled() and isinstance(sender.exception(), ApiError):
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await websocket.close(CLOSE_TRY_AGAIN_LATER, "availability unavailable")


async def _send_updates(
    websocket: WebSocket,
    subscriber: LiveSubscriber,
    view: AvailabilityView,
    reload: Callable[[], Awaitable[AvailabilityView]],
    event_id: str,
) -> None:
    await websocket.send_json({"type": "snapshot", **availability_json(event_id, view)})
    version = view.version
    while True:
        delta = await subscriber.queue.get()
        if delta is RESYNC or delta.version > version + 1:
            view = await reload()
            await websocket.send_json({"type": "snapshot", **availability_json(event_id, view)})
            version = view.version
        elif delta.version == version + 1:
            await websocket.send_json(delta_json(delta))
            version = delta.version


async def _receive_requests(websocket: WebSocket, subscriber: LiveSubscriber) -> None:
    """Runs until the client goes away; {"type": "snapshot"} asks for a fresh snapshot."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text") or ""
        if len(text) <= client_message_chars_max and _asks_snapshot(text):
            subscriber.offer(RESYNC)


def _asks_snapshot(text: str) -> bool:
    try:
        parsed: Any = json.loads(text)
    except ValueError:
        return False
    return isinstance(parsed, dict) and parsed.get("type") == "snapshot"


async def _deny(websocket: WebSocket, error: ApiError) -> None:
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(error_response(error))
        return
    code = CLOSE_TRY_AGAIN_LATER if isinstance(error, InfrastructureError) else CLOSE_POLICY_VIOLATION
    await websocket.close(code, error.code)
