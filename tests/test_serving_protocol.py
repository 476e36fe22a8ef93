"""`deepcuts serve`'s HTTP protocol turns Nagle's algorithm off even on a socket that uvicorn
bound itself, as it does for ``--workers N`` (uvicorn issue #3149)."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import uvicorn

from deepcuts.serving.protocol import HTTP_PROTOCOL


async def ok(scope, receive, send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def served_connection_nodelay(http: str, loop: str) -> tuple[int, int]:
    """(the listening socket's protocol number, TCP_NODELAY of the connection it accepted)."""
    config = uvicorn.Config(ok, host="127.0.0.1", port=0, http=http, loop=loop, log_level="warning")
    listener = config.bind_socket()  # what the --workers supervisor does before it forks
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if server.started:
                break
            time.sleep(0.05)
        port = listener.getsockname()[1]
        with httpx.Client() as client:
            assert client.get(f"http://127.0.0.1:{port}/").text == "ok"
            (connection,) = server.server_state.connections  # the kept-alive one
            sock = connection.transport.get_extra_info("socket")
            return listener.proto, sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        server.should_exit = True
        thread.join(10)


def test_kept_alive_connections_send_without_nagle_on_a_socket_uvicorn_bound():
    proto, plain = served_connection_nodelay("h11", "asyncio")
    if proto != socket.IPPROTO_TCP:  # the upstream bug this protocol works around
        assert plain == 0
    # under asyncio's own loop, and under the loop `deepcuts serve` gets (uvloop, installed
    # with deepcuts, which sets TCP_NODELAY itself)
    for loop in ("asyncio", "auto"):
        assert served_connection_nodelay(HTTP_PROTOCOL, loop)[1] != 0, loop
