"""A TCP relay that dies mid-stream: the news server going away under a client.

    python tests/tcp_relay.py TARGET_HOST TARGET_PORT CUT_AFTER_BYTES

Listens on a free loopback port (printed as ``ready PORT`` on stdout),
forwards every connection to the target, and once the clients have sent
CUT_AFTER_BYTES in all, exits at once (os._exit): open connections are
reset and the port refuses new ones, as when a server process is killed.
A real process the test does not share with anyone, in front of the shared
INN2, which must stay up for the other tests.
"""

from __future__ import annotations

import asyncio
import os
import sys


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, count: bool) -> None:
    while data := await reader.read(65536):
        if count:
            relay.sent += len(data)
            if relay.sent >= relay.cut:
                os._exit(0)  # mid-article: no QUIT, no FIN handshake worth the name
        writer.write(data)
        await writer.drain()
    writer.close()


class Relay:
    def __init__(self, host: str, port: int, cut: int) -> None:
        self.host, self.port, self.cut, self.sent = host, port, cut, 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        await asyncio.gather(pipe(reader, up_writer, True), pipe(up_reader, writer, False))


async def main() -> None:
    server = await asyncio.start_server(relay.handle, "127.0.0.1", 0)
    print(f"ready {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    relay = Relay(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
    asyncio.run(main())
