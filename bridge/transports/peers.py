"""Where an event goes: a UDP address, or a peer on a connection-based transport.

A UDP destination stays a plain ``(host, port)`` tuple (what the journal stores and
what python-osc clients expect). TCP connections and ZeroMQ clients are `Peer`s: a
named tuple whose first two fields are still host and port, so logs, the journal
and allow-lists read them the same way, plus the transport and its connection
handle (a connection number for TCP, the ROUTER identity for ZeroMQ).

`Router` hands each checked event (a bridge.protocol.schema.Event) to the transport that
owns its destination: UDP and TCP send its OSC datagram, ZeroMQ encodes its values as a
JSON header; the EventSink only ever sees one `send(dest, event)`.

After a restart the journal gives back a TCP or ZeroMQ client as a plain tuple
("tcp:host" or "zmq:host", port): its connection ended with the last run. Events
of a job re-run for it go, for ZeroMQ, to the PUB socket (subscribers of the
job id get them), and for TCP nowhere: that client reconnects and asks
`/continuo/get`.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

from bridge.protocol.destinations import Destination, SendEvent
from bridge.protocol.schema import Event

log = logging.getLogger("continuo.routing")


class Peer(NamedTuple):
    host: str
    port: int
    transport: str  # "tcp", "zmq" or "http"
    conn: int | bytes | str  # TCP connection number, ZeroMQ ROUTER identity, or "http" (one client per host)


def is_peer(dest: Destination) -> bool:
    return isinstance(dest, Peer)


RESTORED = ("tcp", "zmq", "http")  # transports whose clients the journal keeps as "<transport>:<host>"


class Router:
    """send(dest, event): UDP tuples to the UDP transport, Peers to the transport they name."""

    def __init__(self, udp_send: SendEvent) -> None:
        self._udp_send = udp_send
        self._transports: dict[str, SendEvent] = {}

    def register(self, transport: str, send: SendEvent) -> None:
        self._transports[transport] = send

    def send(self, dest: Destination, event: Event) -> None:
        if isinstance(dest, Peer):
            send = self._transports.get(dest.transport)
            if send is None:
                log.warning("no %s transport to send %s to %s:%s; dropped", dest.transport, event.address, dest.host,
                            dest.port)
                return
            send(dest, event)
            return
        transport, sep, host = str(dest[0]).partition(":")
        if sep and transport in RESTORED:  # an IPv6 host has colons too, but never starts with "tcp:"/"zmq:"
            self.send_restored(transport, host, event)
            return
        self._udp_send(dest, event)

    def send_restored(self, transport: str, host: str, event: Event) -> None:
        """A connection-based client from before a restart: ZeroMQ events go to PUB only, HTTP ones to its
        event stream; TCP ones cannot go."""
        send = self._transports.get(transport)
        if transport in ("zmq", "http") and send is not None:
            send(None, event)  # no ROUTER identity survives a restart; subscribers of the job id hear it
            return
        log.debug("event for %s client %s dropped: its connection ended with the last run", transport, host)
