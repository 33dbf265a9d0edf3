"""EngineReplica: one engine in a Ray Serve replica, streaming each take back to the gateway.

A replica runs one request at a time (`max_ongoing_requests=1`), so Serve routes a new job to a free replica,
and with several models (multiplexing) to one that has the model warm. A request is an async generator:
the engine runs on a thread and the generator yields what it reports, as plain tuples:

    ("started", replica)           who took it: replica id, node, pid, device (the gateway logs it)
    ("progress", fraction, stage)  at most every PROGRESS_INTERVAL_S, and at each change of stage
    ("chunk", audio)               a streamed preview chunk, (C, samples) or (B, C, samples) batched
    ("done", takes, engine_s)      [(audio (C, T) | shared file path, sample_rate, seed)], one per seed;
                                   engine_s: the engine's own seconds (the rest of a take is Ray's)
    ("error", code, message)       the engine's own error with its wire code (cancelled included)

Audio comes back as float32 PCM through Ray or, with `cluster_shared_dir` (a folder every node sees), as a .npy
file there that the gateway reads and deletes (`write_shared_take`).

Models: every replica loads the gateway's model before Serve sends it traffic (each starts warm). The deployment
is multiplexed (`cluster_models_per_replica`, least recently used out): a request carries its model as Serve's
multiplexed model id, and Serve routes it to a replica that has it warm. bridge/cluster/registry.py holds what
each replica reported (node, pid, device, warm models, busy) for `continuo doctor --cluster ADDRESS`.

Cancel: the gateway cancels the Serve request; the generator's cleanup sets the engine's cancel flag and
waits for the engine to stop at its next step before the replica takes another request.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ray import serve

from bridge.cluster.registry import get_registry
from bridge.jobs.admission import merged_lora
from bridge.settings import Settings
from inference.api import Engine, GenerationRequest, ModelInfo
from inference.errors import InferenceError

log = logging.getLogger("continuo.cluster.replica")

PROGRESS_INTERVAL_S = 0.1
STOP_WAIT_S = 30.0  # after a cancel, how long the replica waits for the engine to stop


def load_replica_engine(settings: Settings, model: str) -> Engine:
    """The model `model` with the gateway's engine settings (daemon.load_model's steps, on this node)."""
    from inference.loading import load_engine, resolve_model

    if settings.cpu_threads:
        import torch

        torch.set_num_threads(settings.cpu_threads)
    source = resolve_model(model, tiny_dir=Path(settings.smoke_model_dir).expanduser(),
                           allow_tiny_fallback=settings.allow_smoke_model)
    return load_engine(source, device=settings.device, backend=settings.backend, weights=settings.weights,
                       kv_cache=settings.kv_cache, attention=settings.attention, compile=settings.compile_decode,
                       max_batch=settings.max_batch, lora=merged_lora(settings))


def write_shared_take(folder: Path, audio: np.ndarray) -> str:
    """A take as a .npy file under the shared folder (atomic rename); the gateway reads and deletes it."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"take-{uuid.uuid4().hex}.npy"
    partial = path.with_name(f".{path.name}.partial")
    with partial.open("wb") as handle:
        np.save(handle, np.ascontiguousarray(audio, dtype=np.float32))
    partial.replace(path)
    return str(path)


class EngineReplica:
    """The Serve deployment's class; `bridge.cluster.connection.build_app` wraps it with its options."""

    def __init__(self, settings: Settings, models_per_replica: int = 1) -> None:
        context = serve.get_replica_context()
        self.replica_id = context.replica_id.unique_id
        self.settings = settings
        self.busy_since = 0.0
        # The gateway's model loads here, before Serve sends this replica any traffic: every replica starts warm.
        self.preloaded: tuple[str, Engine] | None = (settings.model, load_replica_engine(settings, settings.model))

        async def load(model_id: str) -> Engine:  # a plain function: Serve keeps its model cache on it
            return await self.load_model(model_id)

        self.model_loader = load  # Serve keeps its model cache on this function (see warm_models)
        self.get_engine = serve.multiplexed(max_num_models_per_replica=models_per_replica)(load)
        self.report(node=socket.gethostname(), pid=os.getpid(), device=self.preloaded[1].info.device,
                    models=[settings.model], busy=False)

    def report(self, **fields: Any) -> None:
        registry = get_registry()
        if registry is not None:
            registry.report.remote(self.replica_id, fields)  # fire and forget: never holds up a take

    async def load_model(self, model_id: str) -> Engine:
        """Serve's multiplexing calls this on a miss and evicts the least recently used model past the cap."""
        started = time.monotonic()
        model_id = model_id or self.settings.model
        if self.preloaded is not None and self.preloaded[0] == model_id:
            (_, engine), self.preloaded = self.preloaded, None
            return engine
        engine = await asyncio.to_thread(load_replica_engine, self.settings, model_id)
        log.info("replica=%s loaded model=%s device=%s load_s=%.1f", self.replica_id, engine.info.name,
                 engine.info.device, time.monotonic() - started)
        self.report(device=engine.info.device, models=sorted({*self.warm_models(), model_id}))
        return engine

    def warm_models(self) -> list[str]:
        """The models Serve's multiplexing cache holds on this replica (least recently used first)."""
        cache = getattr(self.model_loader, "__serve_multiplex_wrapper", None)
        return list(cache.models) if cache is not None else []

    async def info(self) -> ModelInfo:
        engine = await self.get_engine(serve.get_multiplexed_model_id())
        return engine.info

    async def describe(self) -> dict[str, Any]:
        return {"replica_id": self.replica_id, "node": socket.gethostname(), "pid": os.getpid(),
                "models": self.warm_models()}

    async def generate(self, request: GenerationRequest, seeds: Sequence[int] | None = None,
                       shared_dir: str = ""):
        """One take (seeds None) or one per seed; yields the tuples the module docstring lists."""
        engine = await self.get_engine(serve.get_multiplexed_model_id())
        loop = asyncio.get_running_loop()
        items: asyncio.Queue = asyncio.Queue()
        cancel = threading.Event()
        put = lambda item: loop.call_soon_threadsafe(items.put_nowait, item)  # noqa: E731
        thread = loop.run_in_executor(None, self.run_engine, engine, request, seeds, shared_dir, put, cancel)
        self.busy_since = time.time()
        self.report(busy=True, busy_since=self.busy_since, models=self.warm_models())
        yield ("started", {"replica_id": self.replica_id, "node": socket.gethostname(), "pid": os.getpid(),
                           "device": engine.info.device})
        try:
            while True:
                item = await items.get()
                yield item
                if item[0] in ("done", "error"):
                    break
        finally:  # finished, failed, or cancelled by the gateway (CancelledError / GeneratorExit)
            cancel.set()
            await asyncio.wait_for(asyncio.shield(thread), STOP_WAIT_S)
            self.report(busy=False)

    def run_engine(self, engine: Engine, request: GenerationRequest, seeds: Sequence[int] | None, shared_dir: str,
                   put, cancel: threading.Event) -> None:
        """On the executor thread: the engine call, its progress throttled, its outcome as one last item."""
        last = {"at": 0.0, "stage": ""}

        def on_progress(fraction: float, stage: str) -> None:
            now = time.monotonic()
            if stage != last["stage"] or fraction >= 1.0 or now - last["at"] >= PROGRESS_INTERVAL_S:
                last.update(at=now, stage=stage)
                put(("progress", float(fraction), stage))

        streams = engine.info.supports("streaming")
        hooks = {"on_progress": on_progress, "should_cancel": cancel.is_set,
                 "on_chunk": (lambda audio: put(("chunk", np.asarray(audio, dtype=np.float32)))) if streams else None}
        started = time.monotonic()
        try:
            takes = ([engine.generate(request, **hooks)] if seeds is None
                     else engine.generate_batch(request, list(seeds), **hooks))
            put(("done", [(write_shared_take(Path(shared_dir), take.audio) if shared_dir else take.audio,
                           take.sample_rate, take.seed) for take in takes], time.monotonic() - started))
        except InferenceError as exc:  # Cancelled too: its code is "cancelled"
            put(("error", exc.code, str(exc) or type(exc).__name__))
        except Exception as exc:  # reported, never a dead stream: the gateway fails the job with model_error
            log.exception("replica=%s the engine failed", self.replica_id)
            put(("error", "model_error", f"the engine on replica {self.replica_id} failed: "
                                         f"{type(exc).__name__}: {exc}"))
