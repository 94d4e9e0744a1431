"""A Python `websockets` echo server for wsherd's tests (tests/python_ws.rs).

It answers 401 to an upgrade without `Authorization: Bearer t0k`, offers the
subprotocol `chat.v1` (chosen when the client offers it), echoes every message,
prints its port on stdout, and exits by itself after LIFETIME seconds.

    ws_token.py LIFETIME [--cert PEM --key PEM [--client-ca PEM]] [--deflate]

With --cert and --key it serves wss:// (Python's ssl); with --client-ca it
also requires a client certificate signed by that CA (mutual TLS). With
--deflate it negotiates permessage-deflate (websockets' default extension).
"""

import argparse
import asyncio
import http
import ssl

from websockets.asyncio.server import serve

args = argparse.ArgumentParser()
args.add_argument("lifetime", type=float, nargs="?", default=60.0)
args.add_argument("--cert")
args.add_argument("--key")
args.add_argument("--client-ca")
args.add_argument("--deflate", action="store_true")
args = args.parse_args()
LIFETIME = args.lifetime


def tls_context():
    if not args.cert:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    if args.client_ca:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(args.client_ca)
    return ctx


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
        compression="deflate" if args.deflate else None,
        ssl=tls_context(),
    ) as server:
        port = server.sockets[0].getsockname()[1]
        print(port, flush=True)
        await asyncio.sleep(LIFETIME)


asyncio.run(main())
