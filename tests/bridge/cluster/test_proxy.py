"""ClusterEngine against a fake deployment handle: what a replica streams becomes the Engine's callbacks and
results; a cancel on the gateway cancels the request; a replica death before the take is retried, after it
is ReplicaLost. No Ray needed except for Ray's own death errors."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest

from bridge.cluster.proxy import ClusterEngine, RemoteEngineError
from bridge.errors import ReplicaLost
from inference.api import GenerationRequest, ModelInfo
from inference.errors import Cancelled

INFO = ModelInfo(name="tiny", source_kind="smoke", sample_rate=32000, channels=1, frame_rate=50.0,
                 max_duration_s=30.0, is_random=True, device="cpu", parameters=1)
REQUEST = GenerationRequest(prompt="x", duration_s=1.0, seed=7)
STARTED = ("started", {"replica_id": "r1", "node": "n", "pid": 1, "device": "cpu"})
BLOCK = object()  # the stream waits here until cancelled


class FakeResponse:
    def __init__(self, items: list[Any]) -> None:
        self.items = items
        self.cancelled = threading.Event()

    def __iter__(self):
        for item in self.items:
            if item is BLOCK:
                if not self.cancelled.wait(5):
                    raise AssertionError("the gateway never cancelled the request")
                raise RuntimeError("request cancelled")  # what Serve raises is not a replica death
            if isinstance(item, BaseException):
                raise item
            yield item

    def cancel(self) -> None:
        self.cancelled.set()


class FakeHandle:
    """handle.options(...).generate.remote(...) (or .train_style) hands out the responses in order."""

    def __init__(self, *responses: FakeResponse) -> None:
        self.responses = list(responses)
        self.calls: list[tuple] = []
        self.options_seen: list[dict] = []
        self.generate = self.train_style = self

    def options(self, **options: Any) -> FakeHandle:
        self.options_seen.append(options)
        return self

    def remote(self, *args: Any) -> FakeResponse:
        self.calls.append(args)
        return self.responses.pop(0)


def engine(*responses: FakeResponse) -> tuple[ClusterEngine, FakeHandle]:
    handle = FakeHandle(*responses)
    return ClusterEngine(handle, "tiny-model", INFO, concurrent_jobs=2), handle


def test_progress_chunks_and_the_take_come_back_through_the_stream():
    audio = np.linspace(-1, 1, 320, dtype=np.float32)[None]
    response = FakeResponse([STARTED, ("progress", 0.5, "generating"), ("chunk", audio[:, :160]),
                             ("done", [(audio, 32000, 7)], 0.1)])
    proxy, handle = engine(response)
    progress, chunks = [], []
    take = proxy.generate(REQUEST, on_progress=lambda f, s: progress.append((f, s)), on_chunk=chunks.append)
    assert progress == [(0.5, "generating")] and np.array_equal(chunks[0], audio[:, :160])
    assert np.array_equal(take.audio, audio) and (take.sample_rate, take.seed) == (32000, 7)
    assert handle.options_seen == [{"stream": True, "multiplexed_model_id": "tiny-model"}]  # routed by model
    assert handle.calls == [(REQUEST, None, "")] and proxy.info.device == "ray:cpu"
    assert proxy.concurrent_jobs == 2


def test_a_batch_sends_its_seeds_and_gets_one_take_each():
    takes = [(np.zeros((1, 4), np.float32), 32000, seed) for seed in (3, 4)]
    proxy, handle = engine(FakeResponse([STARTED, ("done", takes, 0.1)]))
    assert [t.seed for t in proxy.generate_batch(REQUEST, [3, 4])] == [3, 4]
    assert handle.calls[0][1] == [3, 4]


def test_a_take_in_the_shared_folder_is_read_and_removed(tmp_path):
    path = tmp_path / "take-1.npy"
    np.save(path, np.ones((1, 8), np.float32))
    proxy, _ = engine(FakeResponse([STARTED, ("done", [(str(path), 32000, 1)], 0.1)]))
    proxy.shared_dir = tmp_path
    assert proxy.generate(REQUEST).audio.sum() == 8 and not path.exists()


def test_the_engines_errors_keep_their_wire_codes():
    proxy, _ = engine(FakeResponse([STARTED, ("error", "out_of_memory", "out of memory on cuda:0")]),
                      FakeResponse([STARTED, ("error", "cancelled", "cancelled")]))
    with pytest.raises(RemoteEngineError) as raised:
        proxy.generate(REQUEST)
    assert raised.value.code == "out_of_memory" and "cuda:0" in raised.value.message
    with pytest.raises(Cancelled):
        proxy.generate(REQUEST)


def test_a_cancel_on_the_gateway_cancels_the_request_on_the_replica():
    response = FakeResponse([STARTED, ("progress", 0.1, "generating"), BLOCK])
    proxy, _ = engine(response)
    cancel_at = time.monotonic() + 0.2
    started = time.monotonic()
    with pytest.raises(Cancelled):
        proxy.generate(REQUEST, should_cancel=lambda: time.monotonic() > cancel_at)
    assert response.cancelled.is_set() and time.monotonic() - started < 2.0


def test_a_stopping_worker_stops_the_take_and_the_request_is_cancelled():
    class Stop(Exception):
        pass

    def on_progress(fraction: float, stage: str) -> None:
        raise Stop()  # what Worker.progress does once its job is cancelled or the daemon stops

    response = FakeResponse([STARTED, ("progress", 0.1, "generating"), BLOCK])
    proxy, _ = engine(response)
    with pytest.raises(Stop):
        proxy.generate(REQUEST, on_progress=on_progress)
    assert response.cancelled.is_set()


def test_a_replica_that_dies_before_the_take_is_routed_around_and_one_that_dies_mid_take_is_lost():
    exceptions = pytest.importorskip("ray.exceptions", reason="Ray is not installed: pip install 'continuo[cluster]'")
    death = exceptions.ActorDiedError()
    ok = FakeResponse([STARTED, ("done", [(np.zeros((1, 4), np.float32), 32000, 7)], 0.1)])
    proxy, handle = engine(FakeResponse([death]), ok)
    assert proxy.generate(REQUEST).seed == 7 and len(handle.calls) == 2  # retried, not the job's retry
    proxy, handle = engine(FakeResponse([STARTED, ("progress", 0.3, "generating"), death]), ok)
    with pytest.raises(ReplicaLost, match="r1"):
        proxy.generate(REQUEST)
    assert len(handle.calls) == 1  # mid-take: the worker re-queues the job, the proxy does not resend


def test_a_cluster_engine_declares_no_code_prompts_so_a_jam_is_refused_by_name():
    """The replicas hand back audio only (no codes, no lead-in): a jam would have nothing to continue."""
    from dataclasses import replace

    from inference.api import Capability

    info = replace(INFO, capabilities=INFO.capabilities | {Capability.CODE_PROMPT})
    engine = ClusterEngine(object(), "tiny-model", info, concurrent_jobs=1)
    assert not engine.info.supports(Capability.CODE_PROMPT) and engine.info.supports(Capability.TEXT)
