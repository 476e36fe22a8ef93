"""The HTTP protocol `deepcuts serve` runs under uvicorn: uvicorn's own, with Nagle's algorithm off.

With ``--workers N`` uvicorn binds the listening socket itself, leaving its protocol number at
0, and asyncio turns ``TCP_NODELAY`` on only for sockets that say ``IPPROTO_TCP``
(uvicorn issue #3149). Nagle then holds a response's body until the client acknowledges its
headers, and the client delays that acknowledgement: every request on a kept-alive connection
after the first waited about 40 ms on Linux, whatever the route did. Each connection is set
here as asyncio sets those it recognises.
"""

from __future__ import annotations

import asyncio
import socket

from uvicorn.protocols.http.auto import AutoHTTPProtocol

# What uvicorn's ``--http`` (and `uvicorn.run(http=...)`) takes to run this protocol.
HTTP_PROTOCOL = "deepcuts.serving.protocol:NoDelayHTTPProtocol"


class NoDelayHTTPProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
    """uvicorn's HTTP protocol (httptools where installed, else h11), with ``TCP_NODELAY``."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)
