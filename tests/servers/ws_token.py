"""A Python `websockets` echo server for wsherd's tests (tests/python_ws.rs).

It answers 401 to an upgrade without `Authorization: Bearer t0k`, offers the
subprotocol `chat.v1` (chosen when the client offers it), echoes every message,
prints its port on stdout, and exits by itself after LIFETIME seconds.
"""

import asyncio
import http
import sys

from websockets.asyncio.server import serve

LIFETIME = float(sys.argv[1]) if len(sys.argv) > 1 else 60.0


async def echo(ws):
    async for message in ws:
        await ws.send(message)


def process_request(connection, request):
    if request.headers.get("Authorization") != "Bearer t0k":
        return connection.respond(http.HTTPStatus.UNAUTHORIZED, "no token\n")
    return None


def select_subprotocol(connection, offered):
    return "chat.v1" if "chat.v1" in offered else None


async def main():
    async with serve(
        echo,
        "127.0.0.1",
        0,
        process_request=process_request,
        select_subprotocol=select_subprotocol,
        compression=None,
    ) as server:
        port = server.sockets[0].getsockname()[1]
        print(port, flush=True)
        await asyncio.sleep(LIFETIME)


asyncio.run(main())
