"""What the OSC UDP and TCP servers share: binding a socket, its bound address, handing messages on."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Sequence
from typing import Any

log = logging.getLogger("continuo.osc")


def bind_socket(host: str, port: int, kind: int, options: Sequence[tuple[int, int, int]] = (),
                timeout_s: float | None = None) -> socket.socket:
    """A bound socket of ``kind`` (IPv6 when host has a colon) with setsockopt ``options``; closed on failure."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, kind)
    try:
        for level, name, value in options:
            sock.setsockopt(level, name, value)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.settimeout(timeout_s)
    return sock


def bound_address(sock: socket.socket | None, owner: str) -> tuple[str, int]:
    """(host, port) the socket is bound to; port 0 at bind time becomes the ephemeral port."""
    if sock is None:
        raise RuntimeError(f"{owner}.address is known after start()")
    host, port = sock.getsockname()[:2]
    return host, port


def deliver(messages: Sequence[tuple[str, list]], on_message: Callable[[str, list, Any], None], sender: Any,
            origin: str) -> None:
    """Hand each parsed message on in order; a handler bug is logged, never raised into the transport."""
    for address, args in messages:
        try:
            on_message(address, args, sender)
        except Exception:  # a handler bug must not stop the receive loop or end the connection
            log.exception("on_message failed for %s from %s", address, origin)

