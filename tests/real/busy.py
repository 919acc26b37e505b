"""A busy agent, made on purpose: a probe socket that holds the event loop right after one of its sends,
as an agent with more to do than CPU would (the answer then waits in the socket for the loop)."""

from __future__ import annotations

import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

from netobs.probes._sockio import connect_socket

HOLD_S = 0.5  # longer than the test servers' first-byte delay: the answer arrives while the loop is held
# The sends of a TLS 1.3 client: the ClientHello, the client's Finished, then the application's data.
TLS13_SENDS = {"client_hello": 1, "request": 3}


class HoldsTheLoop(socket.socket):
    """A connected socket that holds the event loop for HOLD_S right after its send number ``hold_at``."""

    hold_at = 1
    sends = 0

    def send(self, data: Any, flags: int = 0) -> int:
        sent = super().send(data, flags)
        self.sends += 1
        if self.sends == self.hold_at:
            time.sleep(HOLD_S)
        return sent


def held_connector(hold_at: int) -> Callable[[str, int], Awaitable[socket.socket]]:
    """A probe's ``connector``: the agent's own connect, its socket then holding the loop at send ``hold_at``."""

    async def connect(ip: str, port: int) -> socket.socket:
        sock = await connect_socket(ip, port)
        held = HoldsTheLoop(fileno=sock.detach())
        held.hold_at = hold_at
        held.setblocking(False)
        return held

    return connect
