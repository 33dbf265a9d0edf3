"""Where an event goes, and the one way to send it there: the names every wing shares for a client's address.

A `Destination` is a UDP ``(host, port)`` tuple, or a bridge.transports.peers.Peer (a named tuple that starts
with host and port, then names its transport and connection). Only the transports look inside it; for the jobs
wing, the journal and the daemon it is an opaque key (the journal stores its first two fields).

`SendEvent` is ``send(dest, event)`` with an Event that bridge/protocol/schema.py:Schema.check_event made: the
event sink (bridge/jobs/events.py) calls it, the transports (bridge/transports/peers.py:Router) answer it.
"""

from __future__ import annotations

from collections.abc import Callable

from bridge.protocol.schema import Event

Destination = tuple
SendEvent = Callable[[Destination, Event], None]
