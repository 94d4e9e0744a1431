"""A JSON-RPC 2.0 server (Python `websockets`) that answers OUT OF ORDER, for
wsherd's tests of request/response matched by a field (`--correlate /id`).

Every text request {"jsonrpc":"2.0","id":X,"method":M,"params":P} is answered
{"jsonrpc":"2.0","id":X,"result":{"method":M,"echo":P,"server_time_us":T,
"note":"a reply that is not an echo"}} after a random delay of 0..--max-delay-ms,
each in a task of its own, so that replies overtake each other. The reply is
never the request, and its id is the request's id as received (number or
string, same JSON text). Notifications (no id) get no answer. Binary messages
(unless --binary-ok) and text that is not a JSON object get
{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}.
Prints its port on stdout and exits by itself after LIFETIME seconds.

    jsonrpc_ooo.py [LIFETIME] [--port P] [--max-delay-ms MS]
                   [--drop-every N] [--stray-every N] [--binary-ok]

--drop-every N   never answer requests N, 2N, ... of each connection (from 1)
--stray-every N  after replies N, 2N, ... of a connection also send a reply
                 with an id nobody sent: {"jsonrpc":"2.0","id":"stray-K","result":null}
--binary-ok      treat binary messages as requests too (UTF-8 JSON)
"""

import argparse
import asyncio
import json
import random
import time

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

args = argparse.ArgumentParser()
args.add_argument("lifetime", type=float, nargs="?", default=60.0)
args.add_argument("--port", type=int, default=0)
args.add_argument("--max-delay-ms", type=float, default=5.0)
args.add_argument("--drop-every", type=int, default=0)
args.add_argument("--stray-every", type=int, default=0)
args.add_argument("--binary-ok", action="store_true")
args = args.parse_args()

PARSE_ERROR = '{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}'


def parse(text):
    """The request as a dict, with "id_text" the JSON text of its "id" as it
    was received (so 1.0 stays 1.0 and "\\u0041" stays escaped); None if the
    text is not a JSON object."""
    try:
        req = json.loads(text)
    except ValueError:
        return None
    if not isinstance(req, dict):
        return None
    if "id" in req:
        req["id_text"] = member_text(text, "id")
    return req


def member_text(text, name):
    """The JSON text of the (last, as json.loads keeps) top-level member `name`
    of the object in `text`, which is valid JSON."""
    dec = json.JSONDecoder()
    found = None
    i = text.index("{") + 1
    while True:
        while text[i] in " \t\r\n,":
            i += 1
        if text[i] == "}":
            return found
        key, i = dec.raw_decode(text, i)
        while text[i] in " \t\r\n:":
            i += 1
        start = i
        _, i = dec.raw_decode(text, i)
        if key == name:
            found = text[start:i]


async def answer(ws, req, state):
    await asyncio.sleep(random.uniform(0, args.max_delay_ms) / 1000)
    result = {
        "method": req.get("method"),
        "echo": req.get("params"),
        "server_time_us": time.time_ns() // 1000,
        "note": "a reply that is not an echo",
    }
    reply = '{"jsonrpc":"2.0","id":%s,"result":%s}' % (req["id_text"], json.dumps(result, separators=(",", ":")))
    try:
        await ws.send(reply)
        state["replies"] += 1
        if args.stray_every and state["replies"] % args.stray_every == 0:
            state["strays"] += 1
            await ws.send('{"jsonrpc":"2.0","id":"stray-%d","result":null}' % state["strays"])
    except ConnectionClosed:
        pass


async def handler(ws):
    state = {"requests": 0, "replies": 0, "strays": 0}
    tasks = set()
    async for message in ws:
        if isinstance(message, bytes):
            if not args.binary_ok:
                await ws.send(PARSE_ERROR)
                continue
            try:
                message = message.decode()
            except UnicodeDecodeError:
                await ws.send(PARSE_ERROR)
                continue
        req = parse(message)
        if req is None:
            await ws.send(PARSE_ERROR)
            continue
        if "id" not in req:
            continue  # a notification
        state["requests"] += 1
        if args.drop_every and state["requests"] % args.drop_every == 0:
            continue
        task = asyncio.create_task(answer(ws, req, state))
        tasks.add(task)
        task.add_done_callback(tasks.discard)


async def main():
    async with serve(handler, "127.0.0.1", args.port, compression=None) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.sleep(args.lifetime)


asyncio.run(main())
