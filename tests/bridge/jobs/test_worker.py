"""The worker over real parts: a JobQueue, a Journal, an EventSink whose sends are recorded, the tiny model.

Each test watches what a client and the journal would see: the events in order, and the journal's
state at the moment each event left (so "journalled before announced" is checked, not assumed).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from bridge.audio.context import MusicalContext
from bridge.audio.presets import Preset, builtin_presets_dir, load_presets
from bridge.audio.stems import LazySeparator
from bridge.jobs.events import EventSink
from bridge.jobs.journal import JobRecord, Journal
from bridge.jobs.plan import job_params
from bridge.jobs.queue import Job, JobQueue, JobStatus
from bridge.jobs.worker import Worker
from bridge.protocol.schema import load_schema
from inference.errors import InferenceError
from inference.loading import load_engine, resolve_model
from inference.stems import paths as stems_paths
from inference.stems import separator as stems
from inference.stems.separator import SeparatorConfig, StemSeparator, load_separator
from tests.daemons import EventLog

SENDER = ("127.0.0.1", 41000)
STAGE_ORDER = ["loading", "conditioning", "generating", "decoding", "effects", "separating", "writing"]


@pytest.fixture(scope="module")
def engine(tiny_model_dir, tmp_path_factory):
    """Our engine on the tiny model, loaded once for the module."""
    return load_engine(resolve_model(str(tiny_model_dir), tiny_dir=tmp_path_factory.mktemp("no-fallback")),
                       warm_up=False)


@pytest.fixture(scope="module")
def builtin_presets() -> dict[str, Preset]:
    return load_presets([builtin_presets_dir()])


@dataclass
class Seen:
    """One event as it left the worker, with the journal's record of its job at that moment."""

    address: str
    args: list
    record: JobRecord | None


@dataclass
class Bench:
    """A Worker wired to a real queue, journal and event sink; ``seen`` holds every event as it was sent."""

    worker: Worker
    queue: JobQueue
    journal: Journal
    sent: EventLog
    output_root: Path
    seen: list[Seen] = field(default_factory=list)
    hooks: list[Callable[[str, list], None]] = field(default_factory=list)

    def submit(self, job_id: str, *, bars: float = 1.0, prompt: str = "warm piano") -> Job:
        """What the daemon does on a request: journal the job, then queue it."""
        params = job_params("generate", {"preset": "default", "prompt": prompt, "bars": bars}, {}, MusicalContext())
        self.journal.insert_job(job_id, "generate", params, SENDER)
        job = Job(job_id=job_id, op="generate", params=params, reply_to=SENDER, client_key=SENDER)
        self.queue.put(job)
        return job

    def when(self, address: str, stage: str | None = None, *, then: Callable[[], None]) -> None:
        """Run ``then`` on the worker's thread the first time it sends address (and stage, for progress)."""
        fired = []

        def hook(sent_address: str, args: list) -> None:
            if not fired and sent_address == address and (stage is None or args[2] == stage):
                fired.append(True)
                then()

        self.hooks.append(hook)

    def on_event(self, address: str, args: list) -> None:
        record = self.journal.get(args[0]) if args and isinstance(args[0], str) else None
        self.seen.append(Seen(address, args, record))
        for hook in self.hooks:
            hook(address, args)

    def of(self, job_id: str) -> list[Seen]:
        return [seen for seen in self.seen if seen.args and seen.args[0] == job_id]


@pytest.fixture
def make_bench(engine, builtin_presets, tmp_path) -> Iterator[Callable[..., Bench]]:
    """A factory: ``make_bench(engine=..., presets=...)`` wires a Worker (not started: call bench.worker.start())."""
    benches: list[Bench] = []

    def make(*, engine: Any = engine, presets: Callable[[], Mapping[str, Preset]] = lambda: builtin_presets) -> Bench:
        root = tmp_path / f"bench-{len(benches)}"
        sent = EventLog()
        queue, journal = JobQueue(8), Journal(root / "renders" / "journal.sqlite3")
        worker = Worker(queue=queue, journal=journal, events=EventSink(load_schema(), sent), engine=engine,
                        presets=presets, input_roots=[root / "inbox"], output_root=root / "renders")
        bench = Bench(worker, queue, journal, sent, root / "renders")
        sent.on_event = bench.on_event
        benches.append(bench)
        return bench

    yield make
    for bench in benches:
        bench.worker.stop()
        bench.queue.drain()
        if bench.worker.is_alive():
            bench.worker.join(30)
        bench.journal.close()


def test_a_generate_job_goes_queued_running_done_with_each_output_journalled_before_its_event(make_bench):
    bench = make_bench()
    bench.submit("gen-1")
    assert bench.journal.get("gen-1").status is JobStatus.QUEUED
    bench.worker.start()
    address, done = bench.sent.wait_terminal("gen-1")
    assert address == "/continuo/done", done
    seen = bench.of("gen-1")
    addresses = [s.address for s in seen]
    assert addresses.count("/continuo/output") == 1 and addresses[-1] == "/continuo/done"
    assert set(addresses[:addresses.index("/continuo/output")]) == {"/continuo/progress"}
    assert all(s.record.status is JobStatus.RUNNING for s in seen if s.address == "/continuo/progress")
    output = next(s for s in seen if s.address == "/continuo/output")
    (journalled,) = [o.event_args("gen-1") for o in output.record.outputs]  # in the journal already
    assert journalled[:5] == output.args[:5] and journalled[5:] == pytest.approx(output.args[5:], rel=1e-6)
    assert seen[-1].record.status is JobStatus.DONE  # finished in the journal before done went out
    _, name, path, sample_rate, channels, seconds, bars, _, _ = output.args
    assert (name, sample_rate, channels, bars) == ("mix", 48000, 2, 1.0) and seconds == pytest.approx(2.0)
    assert Path(path) == bench.output_root / "gen-1" / "mix.wav"
    info = sf.info(path)
    assert (info.frames, info.channels, info.samplerate) == (96000, 2, 48000)
    _, outputs, seed, elapsed_s = done
    record = bench.journal.get("gen-1")
    assert outputs == 1 and (record.seed, record.elapsed_s) == (seed, pytest.approx(elapsed_s))
    manifest = json.loads((bench.output_root / "gen-1" / "manifest.json").read_text())
    assert manifest["job_id"] == "gen-1" and manifest["seed"] == seed and manifest["outputs"][0]["path"] == path
    assert not list(bench.output_root.rglob("*.partial"))


def test_progress_stays_in_zero_to_one_and_rises_stage_by_stage(make_bench):
    bench = make_bench()
    bench.submit("prog-1", bars=2.0)
    bench.worker.start()
    assert bench.sent.wait_terminal("prog-1")[0] == "/continuo/done"
    progress = [(args[1], args[2]) for address, args in bench.sent.of("prog-1") if address == "/continuo/progress"]
    fractions = [fraction for fraction, _ in progress]
    assert all(0.0 <= f <= 1.0 for f in fractions) and fractions == sorted(fractions)
    stages = list(dict.fromkeys(stage for _, stage in progress))  # in order of first appearance
    assert "generating" in stages and stages == sorted(stages, key=STAGE_ORDER.index)
    assert [stage for _, stage in progress] == sorted((stage for _, stage in progress), key=STAGE_ORDER.index)
    assert progress[-1] == (1.0, "writing")


def test_a_job_cancelled_mid_render_ends_cancelled_and_the_next_job_runs(make_bench):
    bench = make_bench()
    job = bench.submit("cut-1", bars=2.0)
    bench.when("/continuo/progress", "generating", then=job.cancel)
    bench.worker.start()
    address, args = bench.sent.wait_terminal("cut-1")
    assert (address, args[1]) == ("/continuo/error", "cancelled")
    assert "/continuo/output" not in [a for a, _ in bench.sent.of("cut-1")]
    record = bench.journal.get("cut-1")
    assert record.status is JobStatus.CANCELLED and record.error_code == "cancelled" and record.outputs == ()
    assert not (bench.output_root / "cut-1" / "mix.wav").exists()
    bench.submit("after-1", bars=0.5)
    assert bench.sent.wait_terminal("after-1")[0] == "/continuo/done"


def test_a_job_cancelled_before_it_starts_ends_cancelled_without_rendering(make_bench):
    bench = make_bench()
    bench.submit("early-1").cancel()
    bench.worker.start()
    address, args = bench.sent.wait_terminal("early-1")
    assert (address, args[1]) == ("/continuo/error", "cancelled") and "before it started" in args[2]
    assert [a for a, _ in bench.sent.of("early-1")] == ["/continuo/error"]
    assert bench.journal.get("early-1").status is JobStatus.CANCELLED


def test_stopping_interrupts_the_running_job_and_starts_no_other(make_bench):
    bench = make_bench()
    bench.submit("stop-1", bars=2.0)
    bench.submit("stop-2", bars=0.5)
    bench.when("/continuo/progress", "generating", then=bench.worker.stop)
    bench.worker.start()
    address, args = bench.sent.wait_terminal("stop-1")
    assert (address, args[1]) == ("/continuo/error", "interrupted") and "send it again" in args[2]
    record = bench.journal.get("stop-1")
    assert record.status is JobStatus.INTERRUPTED and record.error_code == "interrupted"
    bench.worker.join(30)
    assert not bench.worker.is_alive()
    assert bench.sent.of("stop-2") == [] and bench.journal.unfinished() == ["stop-2"]  # left for the next start


class RaisingEngine:
    """The tiny engine, except that its first generate raises ``error``."""

    def __init__(self, engine: Any, error: Exception) -> None:
        self._engine = engine
        self._error: Exception | None = error

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def generate(self, request: Any, **kwargs: Any) -> Any:
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        return self._engine.generate(request, **kwargs)


@pytest.mark.parametrize("error, says", [(RuntimeError("a bug in the engine"), "RuntimeError: a bug in the engine"),
                                         (InferenceError("the decoder broke"), "the decoder broke")])
def test_an_engine_that_raises_fails_the_job_as_model_error_and_the_worker_takes_the_next(make_bench, engine,
                                                                                            error, says):
    bench = make_bench(engine=RaisingEngine(engine, error))
    bench.submit("boom-1")
    bench.submit("next-1", bars=0.5)
    bench.worker.start()
    address, args = bench.sent.wait_terminal("boom-1")
    assert (address, args[1]) == ("/continuo/error", "model_error") and says in args[2]
    record = bench.journal.get("boom-1")
    assert record.status is JobStatus.FAILED and (record.error_code, record.error_message) == ("model_error", args[2])
    assert bench.sent.wait_terminal("next-1")[0] == "/continuo/done"
    assert bench.worker.is_alive()


def test_a_preset_gone_by_the_time_the_job_runs_is_not_found_and_the_worker_goes_on(make_bench, builtin_presets):
    presets = dict(builtin_presets)
    bench = make_bench(presets=lambda: presets)
    bench.submit("gone-1")
    del presets["default"]  # a preset reload took it away while the job waited
    bench.worker.start()
    address, args = bench.sent.wait_terminal("gone-1")
    assert (address, args[1]) == ("/continuo/error", "not_found") and "default" in args[2]
    assert bench.journal.get("gone-1").status is JobStatus.FAILED
    presets["default"] = builtin_presets["default"]
    bench.submit("back-1", bars=0.5)
    assert bench.sent.wait_terminal("back-1")[0] == "/continuo/done"


class SlowPathBuild:
    """A stand-in for ``inference.stems.separator.build_path`` (no export): blocks until released, counts builds."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.release = threading.Event()
        self.released_in_time = False

    def __call__(self, path: str, model, config):
        self.calls.append(path)
        self.nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        self.released_in_time = self.release.wait(20)
        return stems_paths.torch_path(model, bf16=False)


@pytest.fixture
def slow_export(make_bench, monkeypatch, tmp_path) -> tuple[Bench, StemSeparator, SlowPathBuild]:
    """A worker whose separator's path (openvino-fp32, OpenVINO taken as installed) still needs its export."""
    build = SlowPathBuild()
    monkeypatch.setattr(stems, "build_path", build)
    monkeypatch.setattr(stems_paths, "openvino_usable", lambda: None)
    separator = load_separator(SeparatorConfig(weights="random", size="low", segment_s=1.0, overlap_s=0.25,
                                               path="openvino-fp32", export_dir=str(tmp_path / "exports")))
    bench = make_bench()
    bench.worker.separator = lambda: separator
    return bench, separator, build


def submit_stems(bench: Bench, job_id: str) -> None:
    wav = bench.output_root.parent / "inbox" / "input.wav"
    wav.parent.mkdir(parents=True, exist_ok=True)
    sf.write(wav, 0.1 * np.random.default_rng(0).standard_normal((48000, 2)), 48000)
    params = job_params("stems", {"input_path": str(wav), "stems": ["drums"]}, {}, MusicalContext())
    bench.journal.insert_job(job_id, "stems", params, SENDER)
    bench.queue.put(Job(job_id=job_id, op="stems", params=params, reply_to=SENDER, client_key=SENDER))


def progress_stages(bench: Bench, job_id: str) -> list[tuple[float, str]]:
    return [(s.args[1], s.args[2]) for s in bench.of(job_id) if s.address == "/continuo/progress"]


def test_a_stems_job_says_preparing_before_a_slow_path_export_and_then_separates(slow_export):
    bench, separator, build = slow_export
    bench.when("/continuo/progress", "preparing", then=build.release.set)  # the build waits for the event
    submit_stems(bench, "stems-1")
    bench.worker.start()
    address, args = bench.sent.wait_terminal("stems-1")
    assert address == "/continuo/done", args
    assert build.released_in_time and build.calls == ["openvino-fp32"]
    stages = progress_stages(bench, "stems-1")
    assert [stage for _, stage in stages][:3] == ["loading", "preparing", "separating"]
    assert stages[1] == (pytest.approx(0.9), "preparing")


def test_a_stems_job_during_a_background_preparation_waits_for_it_and_never_builds_twice(slow_export):
    bench, separator, build = slow_export
    separator.start_preparing(low_priority=True)  # the daemon's start, before any job
    bench.when("/continuo/progress", "preparing", then=build.release.set)
    submit_stems(bench, "stems-2")
    bench.worker.start()
    address, args = bench.sent.wait_terminal("stems-2")
    assert address == "/continuo/done", args
    assert build.calls == ["openvino-fp32"] and "preparing" in [stage for _, stage in progress_stages(bench, "stems-2")]


def test_a_stems_job_cancelled_while_preparing_ends_cancelled_and_the_preparation_goes_on(slow_export):
    bench, separator, build = slow_export
    bench.when("/continuo/progress", "preparing", then=lambda: bench.worker.current.cancel())
    submit_stems(bench, "stems-3")
    bench.worker.start()
    address, args = bench.sent.wait_terminal("stems-3")
    assert address == "/continuo/error" and args[1] == "cancelled", args
    assert separator.preparing()
    build.release.set()
    separator.prepare()
    assert build.calls == ["openvino-fp32"] and not separator.needs_preparation()


def test_a_ready_separator_sends_no_preparing_stage(slow_export):
    bench, separator, build = slow_export
    build.release.set()
    separator.prepare()
    submit_stems(bench, "stems-4")
    bench.worker.start()
    assert bench.sent.wait_terminal("stems-4")[0] == "/continuo/done"
    assert "preparing" not in [stage for _, stage in progress_stages(bench, "stems-4")]


def test_the_daemon_start_prepares_a_missing_export_at_low_priority_and_the_first_job_waits_for_it(slow_export):
    bench, separator, build = slow_export
    random = LazySeparator(SeparatorConfig(weights="random"), loader=lambda config: separator)
    assert random.start_background_preparation() is None  # the tests' weights: never an export at start
    lazy = LazySeparator(SeparatorConfig(weights="trained.pt"), loader=lambda config: separator)
    thread = lazy.start_background_preparation()
    assert thread is not None
    for _ in range(200):
        if build.calls:
            break
        thread.join(0.05)
    assert build.calls == ["openvino-fp32"]  # started before any job
    if sys.platform.startswith("linux"):  # Linux nices one thread; elsewhere the process is left alone
        assert build.nice > os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    bench.worker.separator = lazy
    bench.when("/continuo/progress", "preparing", then=build.release.set)
    submit_stems(bench, "stems-5")
    bench.worker.start()
    assert bench.sent.wait_terminal("stems-5")[0] == "/continuo/done"
    thread.join(30)
    assert not thread.is_alive() and build.calls == ["openvino-fp32"]
    assert "preparing" in [stage for _, stage in progress_stages(bench, "stems-5")]


# -- memory: what a job freed goes back to the system ------------------------------------------------------------
PEAK_BLOCKS = 40_000  # x 8 KiB = 312 MiB, each block under glibc's mmap threshold: heap, not a mapping of its own


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmRSS:"))


class PeakThenFree:
    """Wraps the real engine; each generate leaves a peak behind as freed heap, as a stems separation's activations
    do: 312 MiB of small blocks, of which every 16th stays alive (20 MiB). The live ones pin the heap around the
    freed holes, so glibc's free cannot shrink the heap by itself: the holes stay resident until a trim."""

    def __init__(self, engine) -> None:
        self._engine = engine
        self.pins: list[bytearray] = []

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def generate(self, request, **kwargs):
        if "PEAK" in request.prompt:
            blocks = [bytearray(8192) for _ in range(PEAK_BLOCKS)]
            self.pins.extend(blocks[::16])
            del blocks
        return self._engine.generate(request, **kwargs)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim, RSS from /proc")
def test_the_worker_hands_a_jobs_freed_heap_back_to_the_system(make_bench, engine):
    bench = make_bench(engine=PeakThenFree(engine))
    bench.submit("peak-warm")  # no peak: the tiny model's own first-job memory, before the baseline
    bench.worker.start()
    assert bench.sent.wait_terminal("peak-warm")[0] == "/continuo/done"
    time.sleep(0.5)
    baseline = rss_mb()
    bench.submit("peak-1", prompt="PEAK")
    assert bench.sent.wait_terminal("peak-1")[0] == "/continuo/done"
    deadline = time.monotonic() + 10
    while rss_mb() > baseline + 100 and time.monotonic() < deadline:  # the trim follows the done event
        time.sleep(0.05)
    assert rss_mb() < baseline + 100, f"{rss_mb() - baseline:.0f} MiB more than before the job: its freed heap stayed"
