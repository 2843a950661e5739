"""What one frame written to one socket costs: `python -m bench.write_cost`.

The gateway's cost per viewer is one socket write per tick. This measures
that write alone: a uvloop server holds 2,000 loopback connections read by
another process and writes one frame of each size to every one of them,
five times; it prints the best CPU time per write. On loopback the kernel
does the receiving side's TCP work inside the sender's system call, so this
is close to what a gateway pays per viewer per tick on a machine that also
runs the viewers.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import selectors
import socket
import time
from typing import Any

import uvloop

CONNECTIONS = 2000
SIZES = (200, 1000, 4300, 16000)
REPEATS = 5


def _reader(port: int) -> None:
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(CONNECTIONS)]
    by_fd = {s.fileno(): s for s in socks}
    sel = selectors.DefaultSelector()
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    while True:
        for key, _ in sel.select(1):
            try:
                if not by_fd[key.fd].recv(1 << 20):
                    sel.unregister(key.fileobj)
            except BlockingIOError:
                pass


async def _measure() -> None:
    transports: list[asyncio.Transport] = []
    all_in = asyncio.Event()

    class Server(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            transports.append(transport)
            if len(transports) == CONNECTIONS:
                all_in.set()

    server = await asyncio.get_running_loop().create_server(Server, "127.0.0.1", 0, backlog=4096)
    reader = mp.Process(target=_reader, args=(server.sockets[0].getsockname()[1],), daemon=True)
    reader.start()
    try:
        await asyncio.wait_for(all_in.wait(), 60)
        print(f"{CONNECTIONS} loopback sockets, best of {REPEATS}:")
        for size in SIZES:
            frame = b"x" * size
            best = float("inf")
            for _ in range(REPEATS):
                started = time.process_time()
                for t in transports:
                    t.write(frame)
                best = min(best, time.process_time() - started)
                await asyncio.sleep(0.2)  # let the reader drain
            print(f"{size:>6,} B: {best / CONNECTIONS * 1e6:5.1f} µs of CPU per write")
    finally:
        reader.kill()
        server.close()


def main() -> None:
    uvloop.run(_measure())


if __name__ == "__main__":
    main()
