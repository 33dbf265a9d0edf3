"""ClusterEngine: the Engine the gateway's worker talks to when the model runs as Ray Serve replicas.

Each generate / generate_batch is one streaming request through the deployment handle: progress and preview
chunks come back as they happen, the takes (PCM, or a file in the shared folder) at the end. The worker's
cancel check is polled here, on the gateway (`CancelWatcher`, every 50 ms), and a cancel becomes a cancelled
Serve request, which stops the engine on the replica; a worker that stops (shutdown) cancels too.

When a replica dies: mid-take, Ray fails the stream at once (about 0.02 s) and Serve starts a new replica (its
health check also replaces a hung one within `health_check_timeout_s`); this raises bridge/errors.py:ReplicaLost
and the worker re-queues the job once, first of its priority (bridge/jobs/worker.py:Worker.requeue_lost): the
client gets `queued` again and progress restarts, a second loss fails it with `model_error`. Outputs are written
only after the take, so nothing is written twice; Serve does not retry in-flight requests, the gateway does. A
replica that died before it took the request (dead but still routed to) gets it again, up to UNSTARTED_RETRIES
times UNSTARTED_BACKOFF_S apart, without spending the job's retry.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from bridge.errors import BridgeError, ReplicaLost
from inference.api import (
    CancelCheck,
    Capability,
    ChunkCallback,
    CodeStream,
    GeneratedAudio,
    GenerationRequest,
    ModelInfo,
    ProgressCallback,
)
from inference.errors import Cancelled
from inference.runtime.request_checks import unsupported

log = logging.getLogger("continuo.cluster")

CANCEL_POLL_S = 0.05  # how often the gateway looks at the worker's cancel check during a take
UNSTARTED_RETRIES = 5  # a request whose replica died before it started is sent again this often
UNSTARTED_BACKOFF_S = 0.5


class RemoteEngineError(BridgeError):
    """The replica's engine refused or failed a take; carries the engine's own wire code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def is_replica_death(exc: BaseException) -> bool:
    """Ray's errors for a replica process that died or cannot be reached (not a cancel, not the engine's own)."""
    try:
        from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError
    except ImportError:  # no Ray, no replica to lose (tests drive the proxy with a fake handle)
        return False
    return isinstance(exc, (ActorDiedError, ActorUnavailableError, RayActorError))


class ClusterEngine:
    """Engine (inference/api.py) whose takes run on Serve replicas; `concurrent_jobs` workers may use it at once."""

    info: ModelInfo
    concurrent_jobs: int  # the daemon runs this many workers (bridge/jobs/pool.py:concurrent_jobs): one per replica
    compute = None  # its replicas run the torch; a take runs on the calling worker, waiting on the stream
    measured_speed = None  # each replica measures its own at warm-up (its machine's doctor shows it)

    def __init__(self, handle: Any, model_id: str, info: ModelInfo, *, concurrent_jobs: int,
                 shared_dir: Path | None = None, close: Any = None) -> None:
        self.handle = handle
        self.model_id = model_id
        # a jam's code prompts are not carried: the replicas hand back audio only, so a jam is refused by capability
        # (nor kept streams: a replica's decoder state stays on the replica)
        self.info = replace(info, device=f"ray:{info.device}",
                            capabilities=info.capabilities - {Capability.CODE_PROMPT, Capability.CODE_STREAM})
        self.concurrent_jobs = concurrent_jobs  # the daemon runs this many workers: one job per replica
        self.shared_dir = shared_dir
        self._close = close
        self.last_replica: dict[int, dict] = {}  # thread id -> the replica its last take ran on (tests, bench)

    def close(self) -> None:
        if self._close is not None:
            self._close()

    def warm_up(self) -> float:
        return 0.0  # each replica warms its own engine when it loads the model

    def open_stream(self, *, max_frames: int = 0) -> CodeStream:
        raise unsupported(self.info, Capability.CODE_STREAM)

    def generate(self, request: GenerationRequest, *, on_progress: ProgressCallback | None = None,
                 should_cancel: CancelCheck | None = None, on_chunk: ChunkCallback | None = None) -> GeneratedAudio:
        return self.take(request, None, on_progress, should_cancel, on_chunk)[0]

    def generate_batch(self, request: GenerationRequest, seeds: Sequence[int], *,
                       on_progress: ProgressCallback | None = None, should_cancel: CancelCheck | None = None,
                       on_chunk: ChunkCallback | None = None) -> list[GeneratedAudio]:
        return self.take(request, list(seeds), on_progress, should_cancel, on_chunk)

    # -- one request ------------------------------------------------------------------------
    def take(self, request: GenerationRequest, seeds: list[int] | None, on_progress: ProgressCallback | None,
             should_cancel: CancelCheck | None, on_chunk: ChunkCallback | None) -> list[GeneratedAudio]:
        """Send the request, retrying while no replica has started it; a death after that is ReplicaLost."""
        for attempt in range(UNSTARTED_RETRIES + 1):
            started: dict = {}
            try:
                return self.stream(request, seeds, started, on_progress, should_cancel, on_chunk)
            except Exception as exc:
                if not is_replica_death(exc):
                    raise
                if started:
                    log.warning("replica=%s pid=%s died mid-take: %s", started.get("replica_id"),
                                started.get("pid"), type(exc).__name__)
                    raise ReplicaLost(f"the replica running this job ({started.get('replica_id')} on "
                                      f"{started.get('node')}) died mid-take") from exc
                if attempt == UNSTARTED_RETRIES:
                    raise ReplicaLost(f"no replica took the request after {attempt + 1} tries: "
                                      f"{type(exc).__name__}") from exc
                log.warning("a replica died before it started the take (%s); sending it again", type(exc).__name__)
                time.sleep(UNSTARTED_BACKOFF_S)
        raise AssertionError("unreachable")

    def stream(self, request: GenerationRequest, seeds: list[int] | None, started: dict,
               on_progress: ProgressCallback | None, should_cancel: CancelCheck | None,
               on_chunk: ChunkCallback | None) -> list[GeneratedAudio]:
        shared = str(self.shared_dir) if self.shared_dir is not None else ""
        response = self.handle.options(stream=True, multiplexed_model_id=self.model_id).generate.remote(
            request, seeds, shared)
        watcher = CancelWatcher(response, should_cancel)
        sent = time.monotonic()
        try:
            for item in response:
                kind = item[0]
                if kind == "started":
                    started.update(item[1])
                    self.last_replica[threading.get_ident()] = dict(item[1])
                    log.info("take on replica=%s node=%s pid=%s device=%s", started["replica_id"],
                             started["node"], started["pid"], started["device"])
                elif kind == "progress" and on_progress is not None:
                    on_progress(item[1], item[2])  # the worker's callback raises when its job is stopped
                elif kind == "chunk" and on_chunk is not None:
                    on_chunk(item[1])
                elif kind == "done":
                    takes = [GeneratedAudio(audio=self.read_audio(audio), sample_rate=rate, seed=seed)
                             for audio, rate, seed in item[1]]
                    take_s = time.monotonic() - sent
                    log.info("take done on replica=%s take_s=%.3f engine_s=%.3f overhead_s=%.3f",
                             started.get("replica_id"), take_s, item[2], take_s - item[2])
                    return takes
                elif kind == "error":
                    if item[1] == "cancelled":
                        raise Cancelled(item[2])
                    raise RemoteEngineError(item[1], item[2])
        except Exception as exc:
            if watcher.fired and not is_replica_death(exc):
                raise Cancelled("cancelled on the gateway") from exc
            raise
        finally:
            watcher.stop()
            response.cancel()  # a no-op after the last item; stops the replica's engine on any other way out
        raise ReplicaLost("the replica's stream ended without a result")

    def read_audio(self, audio: Any) -> np.ndarray:
        """PCM as sent, or a take the replica wrote to the shared folder (read, then deleted)."""
        if isinstance(audio, np.ndarray):
            return audio
        path = Path(audio)
        try:
            return np.load(path)
        finally:
            path.unlink(missing_ok=True)


class CancelWatcher:
    """Polls should_cancel on the gateway while a take streams; cancels the Serve request when it says so."""

    def __init__(self, response: Any, should_cancel: CancelCheck | None) -> None:
        self.response = response
        self.should_cancel = should_cancel
        self.fired = False
        self._done = threading.Event()
        if should_cancel is not None:
            threading.Thread(target=self.run, name="continuo-cancel-watch", daemon=True).start()

    def run(self) -> None:
        while not self._done.wait(CANCEL_POLL_S):
            if self.should_cancel():
                self.fired = True
                self.response.cancel()
                return

    def stop(self) -> None:
        self._done.set()
