"""Every transport the daemon serves, built from Settings, started and stopped together.

All of them call the same `on_message(address, args, sender)`; events come back
through one `send(dest, event)` (a bridge.transports.peers.Router) that picks the transport
owning the destination: UDP and TCP send the event's OSC datagram, ZeroMQ and HTTP encode its values.
The HTTP transport also sees every job event for its Server-Sent Events clients (the control room
shows every job, whoever asked for it).
Transports never import torch.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from bridge.protocol.destinations import Destination
from bridge.protocol.schema import Event
from bridge.settings import Settings, allowed_hosts, is_loopback
from bridge.transports.peers import Router
from bridge.transports.tcp import OscTcpServer
from bridge.transports.udp import OnMessage, OscUdpServer

if TYPE_CHECKING:
    from bridge.transports.http import AboutDaemon, JobRecords

log = logging.getLogger("continuo.transports")


class Transports:
    def __init__(self, settings: Settings, on_message: OnMessage, *, inbox: Path | None = None,
                 jobs: JobRecords | None = None, about: AboutDaemon | None = None) -> None:
        hosts = allowed_hosts(settings)
        # Loopback binds take every local client; a non-loopback bind takes only the allow-list
        # (validate_settings has made sure there is one), plus this machine's loopback.
        allow = None if is_loopback(settings.osc_host) else (*hosts, "127.0.0.1", "::1")
        self.udp = OscUdpServer(settings.osc_host, settings.osc_port, on_message, allowed_hosts=allow)
        self.router = Router(self.udp.send)
        tcp_port = settings.osc_port if settings.osc_tcp_port is None else settings.osc_tcp_port
        self.tcp = None if tcp_port == -1 else OscTcpServer(settings.osc_host, tcp_port, on_message,
                                                            allowed_hosts=allow)
        if self.tcp is not None:
            self.router.register("tcp", self.tcp.send)
        self.zmq = None
        if settings.zmq_port != -1:
            from bridge.transports.zmq import ZmqServer

            self.zmq = ZmqServer(settings, on_message, inbox=inbox)
            self.router.register("zmq", self.zmq.send)
        self.http = None
        if settings.http_port != -1:
            from bridge.transports.http import HttpServer

            self.http = HttpServer(settings, on_message, inbox=inbox, jobs=jobs, about=about)
            self.router.register("http", self.http.send)

    def send(self, dest: Destination, event: Event) -> None:
        """One checked event (see bridge.jobs.events) to the transport that owns dest; job events to HTTP too."""
        self.router.send(dest, event)
        if self.http is not None and getattr(dest, "transport", None) != "http" and \
                not str(dest[0]).startswith("http:"):
            self.http.observe(event)

    def start(self) -> None:
        self.udp.start()
        if self.tcp is not None:
            self.tcp.start()
        if self.zmq is not None:
            self.zmq.start()
        if self.http is not None:
            self.http.start()

    def stop(self) -> None:
        for transport in (self.http, self.zmq, self.tcp, self.udp):
            if transport is not None:
                transport.stop()

    def ready_text(self) -> str:
        """`osc=udp://h:p osc_tcp=tcp://h:p zmq=tcp://h:p zmq_pub=tcp://h:p http=http://h:p/` for the ready line."""
        host, port = self.udp.address
        parts = [f"osc=udp://{host}:{port}"]
        if self.tcp is not None:
            tcp_host, tcp_port = self.tcp.address
            parts.append(f"osc_tcp=tcp://{tcp_host}:{tcp_port}")
        if self.zmq is not None:
            parts.append(f"zmq={self.zmq.router_endpoint} zmq_pub={self.zmq.pub_endpoint}")
        if self.http is not None:
            parts.append(f"http={self.http.url}")
        return " ".join(parts)
