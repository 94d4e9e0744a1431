"""A push server (Python `websockets`) for wsherd's server-push tests: gaps,
duplicates and one-way latency of a numbered sequence the server sends.

A client connects and sends a subscribe message (any text containing
"subscribe", e.g. {"op":"subscribe","channel":"ticks"}); the server answers
{"op":"subscribed"} (unless --no-ack), then pushes, at --rate messages a second
to that connection,

    {"method":"tick","params":{"seq":N,"sent_us":T_US,"sent_ms":T_MS,"data":"xxx…"}}

with N from 1 for each connection, T_US/T_MS the UNIX time in µs/ms (integers)
when sent, and --size filler characters in "data". Messages before the
subscribe get {"error":"subscribe first"}; later ones are ignored.
Prints its port on stdout and exits by itself after LIFETIME seconds.

    push_seq.py [LIFETIME] [--port P] [--rate R] [--size BYTES] [--no-ack]
                [--skip-every K] [--dup-every K] [--count N] [--clock-offset-ms D]

--skip-every K       seq K, 2K, ... is never sent (a gap; its slot in the
                     schedule passes unused)
--dup-every K        message K, 2K, ... is sent twice (a duplicate, same seq)
--count N            stop after seq N (the connection stays open)
--clock-offset-ms D  add D ms (may be negative) to sent_us and sent_ms, as a
                     server whose clock is off would
"""

import argparse
import asyncio
import json
import time

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

args = argparse.ArgumentParser()
args.add_argument("lifetime", type=float, nargs="?", default=60.0)
args.add_argument("--port", type=int, default=0)
args.add_argument("--rate", type=float, default=50.0)
args.add_argument("--size", type=int, default=16)
args.add_argument("--no-ack", action="store_true")
args.add_argument("--skip-every", type=int, default=0)
args.add_argument("--dup-every", type=int, default=0)
args.add_argument("--count", type=int, default=0)
args.add_argument("--clock-offset-ms", type=float, default=0.0)
args = args.parse_args()

FILLER = "x" * args.size
OFFSET_US = round(args.clock_offset_ms * 1000)


async def push(ws):
    """Sends the sequence on a steady schedule: seq N is due at
    start + (N-1)/rate, whatever the previous sends took."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    seq = 0
    while not args.count or seq < args.count:
        seq += 1
        delay = start + (seq - 1) / args.rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if args.skip_every and seq % args.skip_every == 0:
            continue
        now_us = time.time_ns() // 1000 + OFFSET_US
        message = json.dumps(
            {
                "method": "tick",
                "params": {"seq": seq, "sent_us": now_us, "sent_ms": now_us // 1000, "data": FILLER},
            },
            separators=(",", ":"),
        )
        await ws.send(message)
        if args.dup_every and seq % args.dup_every == 0:
            await ws.send(message)


async def handler(ws):
    pusher = None
    try:
        async for message in ws:
            if pusher is not None:
                continue
            if isinstance(message, str) and "subscribe" in message:
                if not args.no_ack:
                    await ws.send('{"op":"subscribed"}')
                pusher = asyncio.create_task(push(ws))
            else:
                await ws.send('{"error":"subscribe first"}')
    finally:
        if pusher is not None:
            pusher.cancel()
            try:
                await pusher
            except (asyncio.CancelledError, ConnectionClosed):
                pass


async def main():
    async with serve(handler, "127.0.0.1", args.port, compression=None) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.sleep(args.lifetime)


asyncio.run(main())
