"""gateway/http_protocol.py: writes within one event-loop step leave as one write, in order, and nothing kept is
lost when the connection closes; over a real socket, answers (keep-alive, pipelined, large) arrive whole."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway import http_protocol
from gateway.http_protocol import JoinedWrites, JoinedWritesProtocol


class RecordingTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.eof = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "written after close"
        self.writes.append(data)

    def write_eof(self) -> None:
        self.eof = True

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 1)}.get(name, default)


async def test_writes_in_one_step_leave_as_one_in_order() -> None:
    real = RecordingTransport()
    joined = JoinedWrites(real, asyncio.get_running_loop())  # type: ignore[arg-type]
    joined.write(b"HTTP/1.1 200 OK\r\n\r\n")
    joined.write(bytearray(b"body"))
    assert real.writes == [] and joined.get_write_buffer_size() == 23
    await asyncio.sleep(0)
    assert real.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody"]
    assert joined.get_extra_info("peername") == ("127.0.0.1", 1), "everything else is the real transport's"


async def test_closing_first_writes_what_is_kept() -> None:
    real = RecordingTransport()
    joined = JoinedWrites(real, asyncio.get_running_loop())  # type: ignore[arg-type]
    joined.write(b"last words")
    joined.close()
    assert real.writes == [b"last words"] and real.closed
    await asyncio.sleep(0)
    assert real.writes == [b"last words"], "the scheduled flush finds nothing left"
    other = RecordingTransport()
    half = JoinedWrites(other, asyncio.get_running_loop())  # type: ignore[arg-type]
    half.writelines([b"a", b"b"])
    half.write_eof()
    assert other.writes == [b"ab"] and other.eof


async def test_a_large_answer_goes_out_without_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_protocol, "joined_write_bytes_max", 8)
    real = RecordingTransport()
    joined = JoinedWrites(real, asyncio.get_running_loop())  # type: ignore[arg-type]
    joined.write(b"12345")
    assert real.writes == []
    joined.write(b"67890")
    assert real.writes == [b"1234567890"], "past the bound: written at once"


async def _echo(request: Request) -> Response:
    size = int(request.query_params.get("size", "3"))
    return Response(b"x" * size, media_type="text/plain")


async def test_answers_over_a_real_socket_arrive_whole() -> None:
    app = Starlette(routes=[Route("/echo", _echo)])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", http=JoinedWritesProtocol, lifespan="off"))
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(10):
            while not server.started:
                await asyncio.sleep(0.01)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            # two pipelined requests on one keep-alive connection, then a large answer
            writer.write(b"GET /echo?size=3 HTTP/1.1\r\nHost: t\r\n\r\nGET /echo?size=5 HTTP/1.1\r\nHost: t\r\n\r\n")
            writer.write(b"GET /echo?size=300000 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            await writer.drain()
            data = await reader.read()  # until the server closes after the third
            writer.close()
        answers = data.split(b"HTTP/1.1 200 OK\r\n")[1:]
        assert len(answers) == 3
        bodies = [a.split(b"\r\n\r\n", 1)[1] for a in answers]
        assert bodies == [b"xxx", b"xxxxx", b"x" * 300_000]
    finally:
        server.should_exit = True
        await task


async def test_what_is_kept_goes_out_when_the_client_half_closes() -> None:
    real = RecordingTransport()
    protocol = JoinedWritesProtocol(config=_loaded_config(), server_state=_server_state(), app_state={})
    protocol.connection_made(real)  # type: ignore[arg-type]
    protocol.transport.write(b"the last answer")
    protocol.eof_received()
    assert real.writes == [b"the last answer"], "written before asyncio closes the real transport"


def _loaded_config() -> uvicorn.Config:
    config = uvicorn.Config(Starlette(), http=JoinedWritesProtocol, lifespan="off")
    config.load()
    return config


def _server_state() -> Any:
    from uvicorn.server import ServerState

    return ServerState()
