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

Training (`train_style`, a train_style job of a `--cluster` gateway: bridge/jobs/style_training.py:
train_on_replica). The gateway sends the model spec (resolved on this node), the StyleRequest, its prepared clips
([(audio (C, T), caption)] through Ray, or the path of a .npz in `cluster_shared_dir`), the card's source fields
and the checkpoint to resume from (bytes, or None). The replica loads the model for training on its device (the
`device` setting; QLoRA's nf4 base on CUDA by default: a second copy of the model beside the serving engine while
it trains), checks the clips fit it, and runs the shared loop (train_clips) in a scratch folder, yielding:

    ("started", replica)           as for a take
    ("report", text)               where it trains (replica, pid, device, base weights), a resume
    ("training", progress)         after each step: TrainingProgress's fields (step, steps, epoch, epochs, loss, eta_s)
    ("checkpoint", step, data)     each checkpoint's bytes as it is written (the gateway keeps it in lora_dir)
    ("done", files, engine_s)      the adapter's files {name: bytes} (weights, card.json); nothing stays here
    ("error", code, message)       as for a take

A training occupies its replica as a take does (`max_ongoing_requests=1`) for the whole run: Serve routes renders
to the other replicas. With one replica, a render sent during training waits in Serve's queue until the training
ends or is cancelled (training does not yield between steps here, as it does in process: the replica takes one
request at a time); run two or more replicas (`--cluster local:2`, or a cluster with a GPU per replica) to render
while training. Cancel stops it between steps (a step that started finishes, STOP_WAIT_S at most before the replica
takes another request).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ray import serve

from bridge.cluster.registry import get_registry
from bridge.errors import BridgeError
from bridge.jobs.admission import merged_lora
from bridge.settings import Settings
from inference.api import Engine, GenerationRequest, ModelInfo
from inference.errors import InferenceError

log = logging.getLogger("continuo.cluster.replica")

PROGRESS_INTERVAL_S = 0.1
STOP_WAIT_S = 30.0  # after a cancel, how long the replica waits for the engine to stop


def load_replica_engine(settings: Settings, model: str) -> Engine:
    """The model `model` with the gateway's engine settings (daemon.load_model's steps, on this node)."""
    from inference.loading import load_engine

    if settings.cpu_threads:
        import torch

        torch.set_num_threads(settings.cpu_threads)
    source = resolve_replica_model(settings, model)
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
        async for item in self.streamed(self.run_engine, engine.info.device, engine, request, seeds, shared_dir):
            yield item

    async def train_style(self, model_id: str, request: Any, clips: list[tuple[np.ndarray, str]] | str, card: dict,
                          checkpoint: bytes | None):
        """A style training (module docstring, "Training"); yields the tuples listed there."""
        serving = await self.get_engine(model_id)  # its device: where `device` resolved on this node
        async for item in self.streamed(self.run_training, serving.info.device, model_id, request, clips, card,
                                        checkpoint):
            yield item

    async def streamed(self, work, device: str, *args: Any):
        """work(*args, put, cancel) on an executor thread; what it puts, yielded until "done" or "error"; on the
        way out (finished, failed, or cancelled by the gateway: CancelledError / GeneratorExit) the cancel flag is
        set and the work waited for, STOP_WAIT_S at most, before the replica takes another request."""
        loop = asyncio.get_running_loop()
        items: asyncio.Queue = asyncio.Queue()
        cancel = threading.Event()
        put = lambda item: loop.call_soon_threadsafe(items.put_nowait, item)  # noqa: E731
        thread = loop.run_in_executor(None, work, *args, put, cancel)
        self.busy_since = time.time()
        self.report(busy=True, busy_since=self.busy_since, models=self.warm_models())
        yield ("started", {"replica_id": self.replica_id, "node": socket.gethostname(), "pid": os.getpid(),
                           "device": device})
        try:
            while True:
                item = await items.get()
                yield item
                if item[0] in ("done", "error"):
                    break
        finally:
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
        with self.reported(put):
            takes = ([engine.generate(request, **hooks)] if seeds is None
                     else engine.generate_batch(request, list(seeds), **hooks))
            put(("done", [(write_shared_take(Path(shared_dir), take.audio) if shared_dir else take.audio,
                           take.sample_rate, take.seed) for take in takes], time.monotonic() - started))

    def run_training(self, model_id: str, request: Any, clips: list[tuple[np.ndarray, str]] | str, card: dict,
                     checkpoint: bytes | None, put, cancel: threading.Event) -> None:
        """On the executor thread: the model loaded for training on this replica's device, the shared loop run
        (bridge/jobs/style_training.py:train_clips) in a scratch folder, the adapter's files as the last item."""
        from bridge.jobs.style_training import train_clips
        from inference.loading import load_style_model
        from inference.runtime.lora_training import CHECKPOINT_NAME

        started = time.monotonic()
        with self.reported(put), tempfile.TemporaryDirectory(prefix="continuo-training-") as scratch:
            source = resolve_replica_model(self.settings, model_id or self.settings.model)
            model = load_style_model(source.path, device=self.settings.device, base_weights=request.base_weights)
            pairs = read_clips(clips) if isinstance(clips, str) else clips
            check_clips(pairs, model)
            work_dir = Path(scratch) / "work"
            if checkpoint:
                work_dir.mkdir()
                (work_dir / CHECKPOINT_NAME).write_bytes(checkpoint)
            log.info("replica=%s training %s on %s (%d clips)", self.replica_id, request.name, model.device,
                     len(pairs))
            put(("report", f"training on replica {self.replica_id} (pid {os.getpid()}), device {model.device}, "
                           f"base weights {model.base_weights.describe()}"))
            target = Path(scratch) / request.name
            train_clips(request, model, pairs, card, model_dir=source.path, work_dir=work_dir, target=target,
                        on_report=lambda text: put(("report", text)),
                        on_progress=lambda progress: put(("training", dataclasses.asdict(progress))),
                        should_cancel=cancel.is_set,
                        on_checkpoint=lambda step, path: put(("checkpoint", step, path.read_bytes())))
            put(("done", {path.name: path.read_bytes() for path in sorted(target.iterdir()) if path.is_file()},
                 time.monotonic() - started))

    @contextlib.contextmanager
    def reported(self, put):
        """The work's errors as one "error" item with their wire code, never a dead stream (Cancelled included:
        its code is "cancelled"); anything else is model_error."""
        try:
            yield
        except (InferenceError, BridgeError) as exc:
            put(("error", exc.code, getattr(exc, "message", "") or str(exc) or type(exc).__name__))
        except Exception as exc:  # the gateway fails the job with model_error
            log.exception("replica=%s the work failed", self.replica_id)
            put(("error", "model_error", f"the engine on replica {self.replica_id} failed: "
                                         f"{type(exc).__name__}: {exc}"))


def resolve_replica_model(settings: Settings, model: str):
    """The model spec resolved on this node (its path may differ from the gateway's)."""
    from inference.loading import resolve_model

    return resolve_model(model, tiny_dir=Path(settings.smoke_model_dir).expanduser(),
                         allow_tiny_fallback=settings.allow_smoke_model)


def read_clips(path: str) -> list[tuple[np.ndarray, str]]:
    """The clips the gateway wrote to the shared folder (bridge/cluster/proxy.py:write_shared_clips)."""
    with np.load(path, allow_pickle=False) as data:
        captions = [str(caption) for caption in data["captions"]]
        return [(data[f"audio{index}"], caption) for index, caption in enumerate(captions)]


def check_clips(clips: list[tuple[np.ndarray, str]], model) -> None:
    """The gateway cut the clips at the served engine's rate and channels: they must fit the model loaded here."""
    longest = model.window_s * model.sample_rate + 1
    for audio, _ in clips:
        if audio.ndim != 2 or audio.shape[0] != model.channels or audio.shape[1] > longest:
            raise InferenceError(f"the gateway's clips ({audio.shape[0]} channel(s), {audio.shape[-1]} samples) do "
                                 f"not fit the model on this replica ({model.channels} channel(s) at "
                                 f"{model.sample_rate} Hz, clips of at most {model.window_s:g} s): the replicas "
                                 "and the gateway must serve the same model")
