"""HTTP transport: the JSON API, Server-Sent Events and the control room page, on Starlette + uvicorn.

Thin like every transport: a request becomes the (address, positional args) an OSC message
would carry (bridge/protocol/openapi.py:request_from_json) and goes through the daemon's
`on_message`, so the schema, admission, the journal and the error codes are the daemon's.
The events the daemon answers with, on the calling thread while the request is handled, are
the HTTP reply (collected per thread); job events (queued, progress, partial, output, done,
error, and a style-training job's training steps, which the page's training panel shows) also go to every
Server-Sent Events client with an id, and a client that reconnects
with Last-Event-ID gets what it missed from an in-memory ring, or a `reset` event telling it
to reload the journal's history (GET /api/jobs) when the ring has moved on or the daemon restarted.
The history carries the id of the newest event when it was read (`event_id`), so a page that loads it and
then subscribes with `?last_event_id=` misses nothing in between (a job another client started then).

uvicorn runs its own event loop on its own thread (never the main thread that decodes);
events from the worker threads reach it through `call_soon_threadsafe`. Every HTTP client of
one host is one daemon client: Peer(host, 0, "http", "http").

Security: a loopback bind takes only loopback Host headers (DNS rebinding) and needs no
token; any other bind needs `http_token_file` (settings refuse to start without it), sent as
`Authorization: Bearer` (or once as /?token=... for the page, which sets a cookie). A request
that changes something and carries a foreign Origin is refused (CSRF); no CORS headers are
ever sent. Job ids and file names come from the schema's patterns, and a file is served only
when the journal names it and it lies under the output root (preview chunks by pattern), with Range.
Uploads stream into `<inbox>/.web-*.partial` (counted against max_input_bytes), are checked
(readable audio, max_input_s, finite) and renamed, marked as Continuo's copies (bridge/audio/inbox.py).
Job records are read through the daemon (`JobRecords`), never from the journal itself.

Why SSE and not a WebSocket: one direction is all events need, EventSource reconnects and resumes by
itself, and nothing else is needed on either side. Why Starlette and not FastAPI: the API is generated
from osc_schema/ (bridge/protocol/openapi.py), not from Python types, so FastAPI's model layer would be
a second schema. The page is plain HTML/CSS/JS in the package (static/: no build step, no CDN), under a
strict Content-Security-Policy.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import hashlib
import hmac
import io
import json
import logging
import math
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import soundfile as sf
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from bridge.audio.context import MusicalContext
from bridge.audio.files import (
    daw_path_beside,
    disk_error,
    partial_name,
    peaks_path,
    read_audio,
    replace_file,
    write_bytes_atomic,
)
from bridge.audio.inbox import mark_owned
from bridge.audio.loudness import waveform_peaks
from bridge.audio.splice import join_preview
from bridge.errors import BridgeError
from bridge.protocol.openapi import (
    CHUNK_PATTERN,
    UPLOAD_NAME_PATTERN,
    FormError,
    build_openapi,
    event_json,
    http_status,
    job_ops,
    ops,
    request_from_json,
)
from bridge.protocol.schema import ArgSpec, Event, Schema, load_schema, read_refusal, without_osc_example
from bridge.settings import Settings, is_loopback
from bridge.transports.peers import Peer
from bridge.transports.sockets import bind_socket, bound_address
from bridge.transports.udp import OnMessage

log = logging.getLogger("continuo.http")

STATIC_DIR = Path(__file__).resolve().parent / "static"
RING_EVENTS = 4096  # events kept for clients that reconnect with Last-Event-ID
SUBSCRIBER_QUEUE = 1024  # events waiting for one slow SSE client before it is dropped (it reconnects and resumes)
HEARTBEAT_S = 15.0
KEEP_ALIVE_S = 60  # idle keep-alive connections close after this (uvicorn: 5 s)
UPLOAD_CHUNK = 1 << 20
INPUT_PREFIX = "web-"  # inbox name of an uploaded input
UPLOAD_NAME = re.compile(UPLOAD_NAME_PATTERN)
CHUNK_PATH = re.compile(CHUNK_PATTERN)
TOKEN_COOKIE = "continuo_token"
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
PAGE_HEADERS = {
    "content-security-policy": "default-src 'self'; media-src 'self' blob:; img-src 'self' data:; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}
JOB_PARAMS = ("preset", "prompt", "bars", "input_path", "context", "settings", "count")  # shown in the history
AboutDaemon = Callable[[], dict[str, Any]]
JobData = dict[str, Any]  # a job as plain data (bridge/jobs/journal.py:JobRecord.data)


class JobRecords(Protocol):
    """What HTTP reads of the job store, handed in by the daemon (bridge/jobs/journal.py:JournalReads), as OSC
    reads a job through /continuo/get: one job, the newest ones, and a download's mark (`fetched`: the job was
    used, so `continuo prune` leaves it alone for a while). HTTP never holds the journal."""

    def job(self, job_id: str) -> JobData | None: ...

    def recent(self, limit: int) -> list[JobData]: ...

    def fetched(self, job_id: str) -> None: ...


class EventBus:
    """Job events with ids, to every SSE subscriber; a ring of the last RING_EVENTS for resumes. Thread-safe."""

    def __init__(self) -> None:
        self.boot = uuid.uuid4().hex[:8]  # ids from an earlier run never resume into this one
        self._seq = 0
        self._ring: collections.deque[tuple[int, str, str]] = collections.deque(maxlen=RING_EVENTS)
        self._lock = threading.Lock()
        self._subscribers: set[asyncio.Queue] = set()
        self.loop: asyncio.AbstractEventLoop | None = None

    def publish(self, name: str, data: str) -> None:
        with self._lock:
            self._seq += 1
            item = (self._seq, name, data)
            self._ring.append(item)
            subscribers = list(self._subscribers)
        if self.loop is not None and subscribers:
            try:
                self.loop.call_soon_threadsafe(self._deliver, subscribers, item)
            except RuntimeError:  # the loop has closed: the server is stopping
                pass

    @staticmethod
    def _deliver(subscribers: list[asyncio.Queue], item: tuple[int, str, str]) -> None:
        for queue in subscribers:
            try:
                queue.put_nowait(item)
            except asyncio.QueueFull:  # that client fell behind: end its stream; it resumes with Last-Event-ID
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(None)

    def subscribe(self, last_id: str | None) -> tuple[asyncio.Queue, list[tuple[int, str, str]] | None]:
        """A queue of new events, and what the client missed since last_id (None: it must reload)."""
        queue: asyncio.Queue = asyncio.Queue(SUBSCRIBER_QUEUE)
        with self._lock:
            self._subscribers.add(queue)
            missed: list[tuple[int, str, str]] | None = []
            if last_id:
                boot, _, seq_text = last_id.partition("-")
                seq = int(seq_text) if seq_text.isdigit() else -1
                oldest = self._ring[0][0] if self._ring else self._seq + 1
                if boot != self.boot or seq < oldest - 1 or seq > self._seq:
                    missed = None
                else:
                    missed = [item for item in self._ring if item[0] > seq]
        return queue, missed

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        with self._lock:
            self._subscribers.discard(queue)

    def event_id(self, seq: int) -> str:
        return f"{self.boot}-{seq}"

    def current_id(self) -> str:
        """The newest event's id: a client that reads the history after taking it and then subscribes with it
        gets every event the history may not hold (the daemon journals a job's change before its event)."""
        with self._lock:
            return self.event_id(self._seq)


class _Collector(threading.local):
    events: list[Event] | None = None


class HttpServer:
    def __init__(self, settings: Settings, on_message: OnMessage, *, inbox: Path | None, jobs: JobRecords | None = None,
                 about: AboutDaemon | None = None, schema: Schema | None = None) -> None:
        self._settings = settings
        self._on_message = on_message
        self._inbox = inbox
        self._jobs = jobs  # None: a transport alone (tests), no job known
        self._about = about or (lambda: {})
        self.schema = schema or load_schema()
        self._ops = ops(self.schema)
        self._job_ops = job_ops(self.schema)
        self._job_id = self.schema.patterns["job_id"][0]
        self._job_id_or_all = self.schema.patterns["job_id_or_all"][0]
        self._output_name = self.schema.patterns["output_name"][0]
        self._output_root = settings.resolved_output_root
        self._token = load_token(settings.http_token_file) if settings.http_token_file is not None else None
        self._loopback_only = is_loopback(settings.http_host)
        self._collector = _Collector()
        self.bus = EventBus()
        self.app = self.build_app()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        # TCP_NODELAY is inherited by accepted sockets; asyncio sets it only on sockets made with IPPROTO_TCP, and
        # without it a response's headers and body wait for the client's delayed ACK (40 ms on Linux).
        options = [(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1), (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
        try:
            self._sock = bind_socket(self._settings.http_host, self._settings.http_port, socket.SOCK_STREAM, options)
        except OSError as exc:
            raise RuntimeError(f"cannot serve HTTP on {self._settings.http_host}:{self._settings.http_port}: {exc}; "
                               "pick another --http-port (0: any free one) or turn HTTP off: --http-port -1") from exc
        self._sock.listen(128)
        config = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="off",
                                timeout_graceful_shutdown=1, ws="none", timeout_keep_alive=KEEP_ALIVE_S)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._serve, name="continuo-http", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not self._server.started:
            raise RuntimeError(f"the HTTP server did not start on {self.url}; see the log above")
        log.info("listening on %s%s", self.url, " (bearer token)" if self._token else "")

    def _serve(self) -> None:
        assert self._server is not None and self._sock is not None
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self.bus.loop = loop
        try:
            loop.run_until_complete(self._server.serve(sockets=[self._sock]))
        finally:
            self.bus.loop = None
            loop.close()

    def stop(self, timeout_s: float = 3.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self._sock is not None:
            self._sock.close()
        log.info("stopped")

    @property
    def address(self) -> tuple[str, int]:
        return bound_address(self._sock, "HttpServer")

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/"

    # -- events (any thread) ------------------------------------------------------------------------
    def send(self, dest: Peer | None, event: Event) -> None:
        """An event for an HTTP client: the reply of the request being handled on this thread, and, when it is
        about a job, to every SSE client."""
        collecting = self._collector.events
        if collecting is not None:
            collecting.append(event)
        self.observe(event)

    def observe(self, event: Event) -> None:
        """A job event for any client (OSC, ZeroMQ, MIDI, HTTP): the control room sees every job."""
        if event.address in self.schema.job_events and event.values and event.values[0]:
            data = self.event_data(event)
            self.bus.publish(data["event"], json.dumps(data, separators=(",", ":")))

    def event_data(self, event: Event) -> dict[str, Any]:
        data = event_json(self.schema, event)
        args = data["args"]
        if event.address == "/continuo/output":
            args["url"] = f"/api/jobs/{args['job_id']}/files/{args['name']}"
            args["daw_name"] = daw_name(args["path"], args["job_id"], args["name"])
        elif event.address == "/continuo/partial":
            relative = self.preview_relative(args["job_id"], args["path"])
            if relative is not None:
                args["url"] = f"/api/jobs/{args['job_id']}/preview/{relative}"
        return data

    def preview_relative(self, job_id: str, path: str) -> str | None:
        try:
            relative = Path(path).relative_to(self._output_root / job_id / "preview").as_posix()
        except ValueError:
            return None
        return relative if CHUNK_PATH.fullmatch(relative) else None

    def call(self, address: str, args: list[Any], peer: Peer) -> list[Event]:
        """on_message, and the events it answered with on this thread."""
        self._collector.events = collected = []
        try:
            self._on_message(address, args, peer)
        finally:
            self._collector.events = None
        return collected

    # -- the app -------------------------------------------------------------------------------------
    def build_app(self) -> ASGIApp:
        routes = [
            Route("/", self.page, methods=["GET"]),
            Route("/api/openapi.json", self.openapi, methods=["GET"]),
            Route("/api/jobs", self.list_jobs, methods=["GET"]),
            Route("/api/jobs", self.post_job, methods=["POST"]),
            Route("/api/jobs/{job_id}", self.get_job, methods=["GET"]),
            Route("/api/jobs/{job_id}", self.cancel_job, methods=["DELETE"]),
            Route("/api/jobs/{job_id}/files/{name}", self.download, methods=["GET", "HEAD"]),
            Route("/api/jobs/{job_id}/peaks/{name}", self.peaks, methods=["GET"]),
            Route("/api/jobs/{job_id}/join", self.join, methods=["GET"]),
            Route("/api/jobs/{job_id}/preview/{chunk:path}", self.preview, methods=["GET", "HEAD"]),
            Route("/api/jam/{jam_id}/bars/{bar:int}", self.jam_bar, methods=["GET", "HEAD"]),
            Route("/api/inputs", self.upload, methods=["POST"]),
            Route("/api/events", self.events, methods=["GET"]),
            Route("/api/status", self.status, methods=["GET"]),
            Route("/api/presets", self.presets, methods=["GET"]),
            Route("/api/models", self.models, methods=["GET"]),
            Route("/api/requests/{op:path}", self.post_request, methods=["POST"]),
            Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
        ]
        return Guard(Starlette(routes=routes), token=self._token, loopback_only=self._loopback_only)

    def peer(self, request: Request) -> Peer:
        host = request.client.host if request.client is not None else "http"
        return Peer(host, 0, "http", "http")

    async def page(self, request: Request) -> Response:
        token = request.query_params.get("token")
        if token is not None and self._token is not None and hmac.compare_digest(token, self._token):
            response: Response = RedirectResponse("/", status_code=303)
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
            return response
        return FileResponse(STATIC_DIR / "index.html", headers={**PAGE_HEADERS, "cache-control": "no-cache"})

    async def openapi(self, request: Request) -> Response:
        from bridge import __version__

        return JSONResponse(build_openapi(self.schema, __version__))

    def reply(self, events: list[Event], *, ok_status: int = 200, **extra: Any) -> JSONResponse:
        """The events as JSON; a refusal (an error event that is the request's answer) gets its HTTP status."""
        body: dict[str, Any] = {"events": [self.event_data(event) for event in events], **extra}
        status = ok_status
        errors = [event for event in events if event.address == "/continuo/error"]
        accepted = any(event.address in ("/continuo/queued", "/continuo/done") for event in events)
        if errors and not accepted:
            job_id, code, message = errors[0].values
            body["error"] = {"job_id": job_id, "code": code, **http_words(message)}
            status = http_status(code)
        return JSONResponse(body, status_code=status, headers={"retry-after": "1"} if status == 503 else None)

    def refuse(self, code: str, message: str, job_id: str = "", status: int | None = None) -> JSONResponse:
        event = self.schema.check_event("/continuo/error", job_id, code, message)
        return JSONResponse({"events": [self.event_data(event)],
                             "error": {"job_id": job_id, "code": code, "message": event.values[2]}},
                            status_code=status or http_status(code))

    async def json_body(self, request: Request) -> Any:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            raise FormError("send the body as JSON with Content-Type: application/json")
        raw = await request.body()
        if len(raw) > 64 * 1024:
            raise FormError(f"a JSON body of {len(raw)} bytes; requests are at most 64 KiB")
        try:
            return json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise FormError(f"the body is not valid JSON: {exc}") from None

    async def post_job(self, request: Request) -> Response:
        try:
            body = await self.json_body(request)
            op = body.get("op") if isinstance(body, dict) else None
            spec = self._job_ops.get(op) if isinstance(op, str) else None
            if spec is None:
                raise FormError(f"op must be one of {', '.join(self._job_ops)}, got {json.dumps(op)}")
            args = request_from_json(spec, body)
        except FormError as exc:
            return self.refuse("bad_request", str(exc))
        events = self.call(spec.address, args, self.peer(request))
        queued = any(event.address == "/continuo/queued" for event in events)
        return self.reply(events, ok_status=202 if queued else 200)

    async def post_request(self, request: Request) -> Response:
        op = request.path_params["op"]
        spec = self._ops.get(op)
        if spec is None:
            return self.refuse("not_found", f"no request {op!r}; requests are {', '.join(self._ops)}")
        try:
            body = await self.json_body(request) if await request.body() else {}
            if spec.op in self._job_ops:
                body = {key: value for key, value in body.items() if key != "op"} if isinstance(body, dict) else body
            args = request_from_json(spec, body)
        except FormError as exc:
            return self.refuse("bad_request", str(exc))
        return self.reply(self.call(spec.address, args, self.peer(request)))

    async def get_job(self, request: Request) -> Response:
        job_id = request.path_params["job_id"]
        if not self._job_id.fullmatch(job_id):
            return self.refuse("bad_request", f"job id {job_id[:80]!r} must be {self.schema.patterns['job_id'][1]}")
        events = self.call(self._ops["get"].address, [job_id], self.peer(request))
        job = self._jobs.job(job_id) if self._jobs is not None else None
        if job is None:
            return self.reply(events)
        return self.reply(events, ok_status=200, job=self.job_data(job))

    async def cancel_job(self, request: Request) -> Response:
        job_id = request.path_params["job_id"]
        if not self._job_id_or_all.fullmatch(job_id):
            return self.refuse("bad_request", f"job id {job_id[:80]!r} must be a job id or *")
        events = self.call(self._ops["cancel"].address, [job_id], self.peer(request))
        finished = any(event.address in ("/continuo/done", "/continuo/error") for event in events)
        response = self.reply(events, ok_status=200 if finished else 202)
        if events and all(event.address == "/continuo/error" for event in events) and \
                events[0].values[1] == "cancelled":
            response.status_code = 200  # this request cancelled it: that is success
        return response

    async def list_jobs(self, request: Request) -> Response:
        try:
            limit = min(max(int(request.query_params.get("limit", "50")), 1), 500)
        except ValueError:
            return self.refuse("bad_request", "limit must be a whole number 1..500")
        event_id = self.bus.current_id()  # before the read: the stream resumes after it, so nothing falls between
        jobs = self._jobs.recent(limit) if self._jobs is not None else []
        return JSONResponse({"jobs": [self.job_data(job) for job in jobs], "event_id": event_id})

    def job_data(self, job: JobData) -> dict[str, Any]:
        """A job as GET /api/jobs shows it: the history's params, and each output with its download url."""
        params = job["params"]
        source = Path(str(params["input_path"])) if params.get("input_path") else None
        return {
            **job, "params": {key: params[key] for key in JOB_PARAMS if key in params},
            "source": self.source_name(source),
            "outputs": [{**o, "lufs": _finite(o["lufs"]), "peak_db": _finite(o["peak_db"]),
                         "daw_name": daw_name(o["path"], job["job_id"], o["name"]),
                         "url": f"/api/jobs/{job['job_id']}/files/{o['name']}"} for o in job["outputs"]],
        }

    def source_name(self, source: Path | None) -> str:
        """The clip a job came from, as the card shows it: a render by its musical (DAW) name, any other file by
        its own; "" for none."""
        if source is None:
            return ""
        is_render = source.is_relative_to(self._output_root) and self._output_name.fullmatch(source.stem)
        return ((daw_path_beside(source) if is_render else None) or source).name

    async def download(self, request: Request) -> Response:
        job_id, name = request.path_params["job_id"], request.path_params["name"]
        if not self._job_id.fullmatch(job_id) or not self._output_name.fullmatch(name):
            return self.refuse("bad_request", "a job id and an output name (such as mix or drums) name a file; "
                                              "paths are refused", job_id="")
        job = self._jobs.job(job_id) if self._jobs is not None else None
        output = next((o for o in job["outputs"] if o["name"] == name), None) if job is not None else None
        if output is None:
            return self.refuse("not_found", f"job {job_id} has no output {name!r}", job_id=job_id)
        self._jobs.fetched(job_id)  # a found job: `continuo prune` leaves it alone for a while
        path = Path(output["path"])  # a WAV, or a stem's MIDI file (<stem>.mid, output <stem>-midi)
        return self.file(path, daw_name(output["path"], job_id, name), job_id)

    async def peaks(self, request: Request) -> Response:
        """An output's waveform: 1 KiB of (min, max) int8 pairs measured at the full rate (bridge/audio/loudness.py:
        waveform_peaks), so the page draws every output without downloading its audio. Written with the output; an
        older render's are measured once, here, and kept beside it. Reading them is not using the render (prune)."""
        job_id, name = request.path_params["job_id"], request.path_params["name"]
        if not self._job_id.fullmatch(job_id) or not self._output_name.fullmatch(name):
            return self.refuse("bad_request", "a job id and an output name (such as mix or drums) name a waveform",
                               job_id="")
        job = self._jobs.job(job_id) if self._jobs is not None else None
        output = next((o for o in job["outputs"] if o["name"] == name), None) if job is not None else None
        wav = Path(output["path"]).resolve() if output is not None else None
        if wav is None or not wav.is_relative_to(self._output_root) or not wav.is_file():
            return self.refuse("not_found", f"job {job_id} has no output {name!r} on disk", job_id=job_id)
        try:
            data = await run_in_threadpool(measured_peaks, wav)
        except (OSError, sf.LibsndfileError, BridgeError) as exc:
            return self.refuse("io_error", f"{wav.name}: no waveform ({exc})", job_id=job_id)
        return Response(data, media_type="application/octet-stream", headers={"cache-control": "max-age=86400"})

    async def join(self, request: Request) -> Response:
        """A finished continuation's seam to hear (bridge/audio/splice.py:join_preview): its input's last 2 bars, the
        silence to the next downbeat, the new mix's first 2 bars, as a 16-bit WAV made here (not kept)."""
        job_id = request.path_params["job_id"]
        if not self._job_id.fullmatch(job_id):
            return self.refuse("bad_request", "a job id names a continuation", job_id="")
        job = self._jobs.job(job_id) if self._jobs is not None else None
        mix = next((o for o in job["outputs"] if o["name"] == "mix"), None) if job is not None else None
        if job is None or job["op"] != "continue" or mix is None:
            return self.refuse("not_found", f"{job_id} is no finished continuation: no join to hear", job_id=job_id)
        try:
            data = await run_in_threadpool(join_wav, Path(str(job["params"]["input_path"])), Path(mix["path"]),
                                           job["params"])
        except (OSError, sf.LibsndfileError, BridgeError) as exc:
            return self.refuse("not_found", f"{job_id}: the join cannot be made ({exc}); its input may be gone",
                               job_id=job_id)
        return Response(data, media_type="audio/wav", headers={"cache-control": "max-age=3600"})

    async def preview(self, request: Request) -> Response:
        job_id, chunk = request.path_params["job_id"], request.path_params["chunk"]
        if not self._job_id.fullmatch(job_id) or not CHUNK_PATH.fullmatch(chunk):
            return self.refuse("bad_request", "preview chunks are named chunk-NNNN.wav or variation-N/chunk-NNNN.wav")
        return self.file(self._output_root / job_id / "preview" / chunk, f"{job_id}-{chunk.replace('/', '-')}",
                         job_id)

    async def jam_bar(self, request: Request) -> Response:
        """A jam's bar from its recording (/continuo/jam/chunk's url): <output_root>/<jam_id>/bars/bar-NNNNNN.wav."""
        jam_id, bar = request.path_params["jam_id"], request.path_params["bar"]
        if not self._job_id.fullmatch(jam_id):
            return self.refuse("bad_request", "a jam id is 1 to 64 letters, digits, '.', '_' or '-'")
        return self.file(self._output_root / jam_id / "bars" / f"bar-{bar:06d}.wav", f"{jam_id}-bar-{bar}.wav",
                         jam_id)

    def file(self, path: Path, filename: str, job_id: str) -> Response:
        resolved = path.resolve()
        if not resolved.is_relative_to(self._output_root) or not resolved.is_file():
            return self.refuse("not_found", f"{filename} is not (or no longer) on disk", job_id=job_id)
        return FileResponse(resolved, media_type="audio/midi" if resolved.suffix == ".mid" else "audio/wav",
                            filename=filename, content_disposition_type="inline")

    async def upload(self, request: Request) -> Response:
        """The raw file as the body -> <inbox>/web-<id>-<name>, atomically, checked like every input."""
        limit = self._settings.max_input_bytes
        name = request.query_params.get("name", "clip.wav")
        if not UPLOAD_NAME.fullmatch(name) or ".." in name:
            return self.refuse("bad_request", f"name {name[:80]!r} must be a plain file name (letters, digits, "
                                              "space, '.', '_', '-'; no folders)")
        if self._inbox is None:
            return self.refuse("bad_request", "this daemon has no inbox for uploads; send a path under an input root")
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return self.refuse("bad_request", f"the upload is {declared} bytes; at most {limit} (max_input_bytes)",
                               status=413)
        stem = f"{INPUT_PREFIX}{uuid.uuid4().hex[:12]}-{name.replace(' ', '_')}"
        path = self._inbox / (stem if Path(stem).suffix else f"{stem}.wav")
        partial = partial_name(path)
        size, digest = 0, hashlib.sha256()
        try:
            self._inbox.mkdir(parents=True, exist_ok=True)
            with partial.open("wb") as handle:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        return self.refuse("bad_request", f"the upload is over {limit} bytes (max_input_bytes)",
                                           status=413)
                    handle.write(chunk)
                    digest.update(chunk)
                handle.flush()
                os.fsync(handle.fileno())
            if size == 0:
                return self.refuse("bad_request", "the upload is empty; send the audio file as the body")
            problem, info = check_audio(partial, self._settings.max_input_s)
            if problem is not None:
                return self.refuse("bad_request", f"{name}: {problem}", status=413 if "longer" in problem else 400)
            mark_owned(path, size=size, sha256=digest.hexdigest(), made_by="http")  # retention may remove it
            replace_file(partial, path)
        except OSError as exc:  # a full disk under the inbox: said as such, nothing half-written kept
            error = disk_error(exc, path)
            return self.refuse(error.code, error.message)
        except BridgeError as exc:
            return self.refuse(exc.code, exc.message)
        finally:
            partial.unlink(missing_ok=True)
        log.info("job=- input uploaded %s (%d bytes, %.1f s)", path.name, size, info["seconds"])
        return JSONResponse({"path": path.as_posix(), "bytes": size, **info}, status_code=201)

    async def events(self, request: Request) -> Response:
        last_id = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
        only_job = request.query_params.get("job")
        queue, missed = self.bus.subscribe(last_id)

        async def stream() -> AsyncIterator[str]:
            try:
                yield "retry: 1000\n\n"
                if missed is None:
                    yield f"event: reset\ndata: {json.dumps({'reason': 'reload /api/jobs: events were missed'})}\n\n"
                for item in missed or ():
                    if _wanted(item, only_job):
                        yield self.sse(item)
                while True:
                    try:
                        item = await asyncio.wait_for(queue.get(), HEARTBEAT_S)
                    except TimeoutError:
                        yield ": heartbeat\n\n"
                        continue
                    if item is None:  # this client fell behind: end; it reconnects with Last-Event-ID
                        return
                    if _wanted(item, only_job):
                        yield self.sse(item)
            finally:
                self.bus.unsubscribe(queue)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"cache-control": "no-cache", "x-accel-buffering": "no"})

    def sse(self, item: tuple[int, str, str]) -> str:
        seq, name, data = item
        return f"id: {self.bus.event_id(seq)}\nevent: {name}\ndata: {data}\n\n"

    async def status(self, request: Request) -> Response:
        events = self.call(self._ops["status"].address, [], self.peer(request))
        return self.reply(events, daemon=self._about(), form=self.form())

    def form(self) -> dict[str, dict[str, Any]]:
        """What the control room's fields take: the schema's ranges, capped by this daemon's limits (max_bars,
        max_variations), and the rule in words for the page's own refusals."""
        return {name: {"min": arg.min, "max": arg.max, "rule": read_rule(arg)}
                for name, arg in self.schema.ranges(FORM_FIELDS, self._settings.request_limits).items()}

    async def presets(self, request: Request) -> Response:
        events = self.call(self._ops["presets"].address, [], self.peer(request))
        return self.reply(events, midi_maps=self._about().get("midi_maps", []))

    async def models(self, request: Request) -> Response:
        events = self.call(self._ops["models"].address, [], self.peer(request))
        return self.reply(events, lora_adapters=[event.values[0] for event in events  # the OSC listing's
                                                 if event.address == "/continuo/adapters"])


class Guard:
    """Host, Origin and bearer-token checks in front of the app (pure ASGI)."""

    def __init__(self, app: ASGIApp, *, token: str | None, loopback_only: bool) -> None:
        self.app = app
        self.token = token
        self.loopback_only = loopback_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]}
        problem = self.check(scope, headers)
        if problem is None:
            await self.app(scope, receive, send)
            return
        status, message = problem
        extra = {"www-authenticate": "Bearer"} if status == 401 else None
        code = "bad_request" if status != 404 else "not_found"
        response = JSONResponse({"events": [], "error": {"job_id": "", "code": code, "message": message}},
                                status_code=status, headers=extra)
        await response(scope, receive, send)

    def check(self, scope: Scope, headers: dict[str, str]) -> tuple[int, str] | None:
        host = headers.get("host", "")
        if self.loopback_only and _host_name(host) not in LOOPBACK_NAMES:
            return 403, (f"Host {host!r} is not this machine's loopback; this daemon serves http://127.0.0.1 only "
                         "(set http_host and http_token_file to serve other machines)")
        if self.token is not None and not self.authorized(scope, headers):
            return 401, "send Authorization: Bearer <token> (the contents of http_token_file), or open /?token=<token>"
        origin = headers.get("origin")
        if scope["method"] not in ("GET", "HEAD") and origin is not None and \
                origin not in (f"http://{host}", f"https://{host}"):
            return 403, f"cross-origin request from {origin} refused (no CORS: use the page this daemon serves)"
        return None

    def authorized(self, scope: Scope, headers: dict[str, str]) -> bool:
        assert self.token is not None
        if scope["path"] == "/" and scope["method"] == "GET":
            return True  # the page itself holds nothing; /?token= sets the cookie the API calls then carry
        if scope["path"].startswith("/static/"):
            return True
        scheme, _, value = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), self.token.encode()):
            return True
        for part in headers.get("cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == TOKEN_COOKIE and hmac.compare_digest(value.encode(), self.token.encode()):
                return True
        return False


FORM_FIELDS = ("bars", "count", "bpm", "beats_per_bar", "seed")  # the control room's number fields, by schema name


def read_rule(arg: ArgSpec) -> str:
    """'a number in 0.25..64': ArgSpec.describe in plain words, as read_refusal gives a refusal's rule."""
    refusal = read_refusal(f"{arg.name} must be {arg.describe()}, got -")
    return refusal.rule if refusal is not None else arg.describe()


def http_words(message: str) -> dict[str, str]:
    """A refusal in HTTP's terms: the schema's words without the OSC example (HTTP clients send JSON), and, where a
    value was refused, which field (the JSON name), what it must be and what came, for the page to put in its own
    words ("Length must be a number in 0.25..64") beside the field."""
    refusal = read_refusal(message)
    if refusal is None:
        return {"message": without_osc_example(message)}
    return {"message": f"{refusal.field} must be {refusal.rule}, got {refusal.got}", "field": refusal.field,
            "rule": refusal.rule, "got": refusal.got}


def daw_name(path: str, job_id: str, name: str) -> str:
    """The name a download carries: the output's musical DAW name (bridge/audio/files.py:daw_file_name, found beside
    it), else <job>-<name>.wav (an older render, a folder without one)."""
    found = daw_path_beside(Path(path))
    return found.name if found is not None else f"{job_id}-{name}{Path(path).suffix or '.wav'}"


def load_token(path: Path) -> str:
    try:
        token = path.expanduser().read_text().strip()
    except OSError as exc:
        raise RuntimeError(f"http_token_file {path}: {exc}; run `continuo keys DIR` and point at DIR/http.token")
    if len(token) < 16 or not token.isascii() or any(c.isspace() for c in token):
        raise RuntimeError(f"http_token_file {path} must hold one token of 16 or more printable characters; "
                           "`continuo keys DIR` writes one")
    return token


def join_wav(source: Path, mix: Path, params: dict[str, Any]) -> bytes:
    """The join of a continuation as WAV bytes, in the job's context (its tempo and metre: the session's or its
    input's own, then its own settings) at the mix's rate."""
    audio, rate = read_audio(mix)
    original, original_rate = read_audio(source)
    fields = {f.name for f in dataclasses.fields(MusicalContext)}
    changes = {key: value for key, value in (params.get("settings") or {}).items() if key in fields}
    context = MusicalContext(**params["context"]).replace(**{**changes, "sample_rate": rate})
    encoded = io.BytesIO()
    sf.write(encoded, np.clip(join_preview(original, original_rate, audio, context).T, -1.0, 1.0), rate,
             subtype="PCM_16", format="WAV")
    return encoded.getvalue()


def measured_peaks(wav: Path) -> bytes:
    """The peaks beside wav, measured from it (at its full rate) and kept there when they are not yet."""
    path = peaks_path(wav)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    audio, _rate = sf.read(str(wav), dtype="float32", always_2d=True)
    data = waveform_peaks(audio.T)
    write_bytes_atomic(path, data)
    log.info("job=%s waveform peaks measured for %s", wav.parent.name, wav.name)
    return data


def check_audio(path: Path, max_input_s: float) -> tuple[str | None, dict[str, Any]]:
    """(a problem, or None; {seconds, sample_rate, channels}) for an uploaded file."""
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as exc:
        return f"not a readable audio file ({exc}); send WAV, AIFF, FLAC or Ogg", {}
    seconds = info.frames / info.samplerate if info.samplerate else 0.0
    details = {"seconds": round(seconds, 6), "sample_rate": info.samplerate, "channels": info.channels}
    if info.frames == 0:
        return "the file holds no audio frames", details
    if seconds > max_input_s:
        return f"{seconds:.1f} s is longer than max_input_s ({max_input_s:g} s)", details
    for block in sf.blocks(str(path), blocksize=1 << 16, dtype="float32"):
        if not np.isfinite(block).all():
            return "the audio holds NaN or infinity", details
    return None, details


def _host_name(host: str) -> str:
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _wanted(item: tuple[int, str, str], job_id: str | None) -> bool:
    return job_id is None or f'"job_id":{json.dumps(job_id)}' in item[2]
