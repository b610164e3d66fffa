"""uvicorn's httptools protocol, with one socket write per answer instead of two.

uvicorn writes an answer's status line and headers when the app sends ``http.response.start`` and the body when it
sends ``http.response.body``: two ``send`` system calls for every answer, which py-spy showed as a third of a
gateway worker's samples on the quote benchmark (docs/performance.md, "Quotes"). Starlette sends both messages in
one step of the event loop, so the transport below keeps what is written during a step and writes it all once, at
the end of that step (``loop.call_soon``), or at once past ``joined_write_bytes_max`` so a long streamed answer
never piles up in memory. Everything else (reading, flow control, closing, the websocket upgrade) is the real
transport's: closing or half-closing first writes what is kept, and so does the client's half-close (which
closes the real transport directly), so nothing written is lost or reordered. After a websocket upgrade the
websocket protocol receives the client's EOF itself; its last frame may then be dropped with the connection.

``voelgoed up`` (and the benchmarks that start their own gateway) run uvicorn with
``--http gateway.http_protocol:JoinedWritesProtocol``.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

joined_write_bytes_max = 65_536  # kept per connection before a write goes out at once
HTTP_PROTOCOL = "gateway.http_protocol:JoinedWritesProtocol"  # uvicorn --http


class JoinedWrites:
    """An ``asyncio.Transport`` stand-in whose writes within one event-loop step become one write."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._pending_bytes = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(bytes(data))  # a caller may reuse a bytearray: keep what it wrote now
        self._pending_bytes += len(data)
        if self._pending_bytes > joined_write_bytes_max:
            self.flush()

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def flush(self) -> None:
        if not self._pending:
            return
        data = b"".join(self._pending) if len(self._pending) > 1 else self._pending[0]
        self._pending.clear()
        self._pending_bytes = 0
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + self._pending_bytes

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class JoinedWritesProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._joined = JoinedWrites(transport, self.loop)
        super().connection_made(cast(asyncio.Transport, self._joined))

    def eof_received(self) -> None:
        # The client half-closed: asyncio closes the real transport right after this returns, past the wrapper,
        # so what the last step wrote goes out first (as it would have without joining).
        self._joined.flush()
        super().eof_received()
