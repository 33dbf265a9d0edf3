"""Client sessions: what the daemon knows of each sender (host, source port) while it runs.

A session holds the client's name (from its hello), where its replies go, its musical context (tempo, metre,
key, rate: each job of the session renders in it) and the jobs it may still have waiting or running (for
`cancel *`). Sessions last as long as the daemon, so a set left open overnight keeps its tempo and reply port,
but not without bound: past MAX_SESSIONS senders (every TCP reconnect is a new sender) the one heard from longest
ago is forgotten, and a session's job list drops finished jobs past MAX_SESSION_JOBS.

Where replies go. A sender is answered at its source port, TCP and ZeroMQ clients on their connection, and after
/continuo/hello at the port it named. Senders whose source port changes with every message (liblo's `oscsend`
opens a new socket per call; some controllers and DAW surfaces) would never hear back, so two ways route them:
the `default_reply_port` setting answers every sender that never said hello at that port on its host
(AbletonOSC's fixed-reply-port model, `Sessions.default_reply_to`), and a job request's `reply_port` setting
sends that job's events, refusal included, to that port without touching the session
(`Sessions.request_reply_to`). /continuo/stems takes no settings: such senders use the default reply port.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from bridge.audio.context import MusicalContext
from bridge.protocol.destinations import Destination
from bridge.protocol.schema import Request
from bridge.settings import Settings
from bridge.transports.peers import is_peer

log = logging.getLogger("continuo.daemon")

MAX_SESSIONS = 1024
MAX_SESSION_JOBS = 256


@dataclass
class ClientSession:
    """What the daemon knows of one sender (host, source port)."""

    name: str
    reply_to: Destination
    context: MusicalContext
    jobs: set[str] = field(default_factory=set)  # this client's jobs that may still be waiting or running
    last_seen: float = field(default_factory=time.monotonic)
    tempo_set: bool = False  # the client set the tempo (/continuo/context, the MIDI clock): inputs are not asked

    def add_job(self, job_id: str, active: Callable[[], set[str]]) -> None:
        """Remember job_id; past MAX_SESSION_JOBS keep only the jobs still active (waiting or running)."""
        self.jobs.add(job_id)
        if len(self.jobs) > MAX_SESSION_JOBS:
            self.jobs &= active()


class Sessions:
    """The daemon's sessions by sender; the receive lock serialises every change."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._by_sender: dict[Destination, ClientSession] = {}

    def __iter__(self) -> Iterator[Destination]:
        return iter(self._by_sender)

    def __contains__(self, sender: object) -> bool:
        return sender in self._by_sender

    def __getitem__(self, sender: Destination) -> ClientSession:
        return self._by_sender[sender]

    def session(self, sender: Destination) -> ClientSession:
        """sender's session, begun now in the settings' tempo and rate if it is new; it was heard from now."""
        session = self._by_sender.get(sender)
        if session is None:
            if len(self._by_sender) >= MAX_SESSIONS:
                self.forget_least_recent()
            context = MusicalContext(bpm=self.settings.bpm, sample_rate=self.settings.sample_rate)
            session = self._by_sender[sender] = ClientSession(name="", reply_to=self.default_reply_to(sender),
                                                              context=context)
        session.last_seen = time.monotonic()
        return session

    def hello(self, sender: Destination, client: str, reply_port: int) -> ClientSession:
        """/continuo/hello: the client's name, and its replies at reply_port on its host (0: its source port);
        TCP and ZeroMQ clients stay answered on their connection."""
        session = self.session(sender)
        session.name = client
        port = reply_port or sender[1]
        session.reply_to = sender if is_peer(sender) else (sender[0], port)
        log.info("client %s at %s:%d replies to port %d", client, sender[0], sender[1], port)
        return session

    def reply_to(self, sender: Destination) -> Destination:
        """Where sender is answered, without beginning a session for it."""
        session = self._by_sender.get(sender)
        return session.reply_to if session else self.default_reply_to(sender)

    def default_reply_to(self, sender: Destination) -> Destination:
        """Where a sender that never said hello is answered: its source port, or (UDP, with the
        default_reply_port setting) that port on its host, for hosts that listen on a fixed port."""
        port = self.settings.default_reply_port
        return sender if is_peer(sender) or not port else (sender[0], port)

    @staticmethod
    def request_reply_to(request: Request, sender: Destination) -> Destination | None:
        """A job request's own reply port (the reply_port setting) on the sender's host, for senders whose
        source port changes with every message; None without one, or for TCP and ZeroMQ (their connection)."""
        port = request.settings.get("reply_port")
        return None if not port or is_peer(sender) else (sender[0], port)

    def set_tempo(self, sender: Destination, bpm: float) -> None:
        """The MIDI clock's tempo for sender's session (later jobs of that session use it)."""
        session = self.session(sender)
        session.context = session.context.replace(bpm=bpm)
        session.tempo_set = True
        log.info("job=- midi clock tempo %.2f bpm for %s:%d", bpm, sender[0], sender[1])

    def forget_least_recent(self) -> None:
        sender, session = min(self._by_sender.items(), key=lambda item: item[1].last_seen)
        del self._by_sender[sender]
        log.info("job=- forgot client %s (%s), silent for %.0f s: over %d clients", session.name or "-", sender,
                 time.monotonic() - session.last_seen, MAX_SESSIONS)
