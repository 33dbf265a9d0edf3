"""`continuo bench`: benchmarks that print one JSON line per configuration.

Suites:
- ``daemon``: time from `continuo serve` to its ready line, and the wall time of
  one N-bar generate (request sent -> /continuo/done received) end to end.
- ``engine``: decode speed of our own engine against transformers' generate, same run, random weights of
  the real musicgen-small / -medium shapes (inference/bench/musicgen.py); ``--quick``: small only, 2 s of audio.
  ``--family ace-step``: our AceStepEngine against diffusers' AceStepPipeline call, random weights of the real
  1.5 turbo shapes, 10 s at 8 steps, seconds and peak memory per phase (inference/bench/acestep.py);
  ``--quick``: the tiny pipeline, 2 s (a smoke test of the plumbing, no figure).
- ``gpu``: the first-run GPU smoke (bridge/tools/bench_gpu.py); ``--dry-run`` runs its plan on the CPU.
- ``throughput --cluster``: in process against 1 and 2 local Ray Serve replicas (bridge/tools/bench_cluster.py).
- ``quality``: every lossy mode against fp32 on the quality harness (inference/bench/quality.py): per stress
  (outlier channels, sharp attention) and option, the guided top-250 KL at CFG 3, top-k overlap and agreement
  beside the bf16 floor, the controls, and the cache's attention error per K-channel gain; ``--quick``: 300
  positions and four stresses.
- ``listen``: tempo, downbeats, metre, key, notes and drums against signals of exact truth, recorded instruments
  where fluidsynth is installed, the speed of each, and ``--real DIR``'s recordings; the grid check of a set of
  renders (``--model``, else the smoke model; ``--renders DIR``: a daemon's renders) (bridge/tools/bench_listen.py).
- ``jam``: a live jam against the internal clock at 120 BPM on the tiny model and the musicgen-small shape (random
  weights): underruns per minute, lead, control-to-heard latency, bar-boundary error, the tempo heard
  (bridge/tools/bench_jam.py); ``--quick``: 30 s each instead of 90; ``--shape tiny`` or ``musicgen-small``: one.
- ``soak``: many short jobs of every kind from five clients at once (OSC/UDP, OSC/TCP, ZeroMQ, HTTP, the CLI) to a
  real daemon on the smoke model; its RSS after warm-up, halfway and at the end, against 10 % growth
  (bridge/tools/bench_soak.py).
- ``train``: LoRA training steps/s and peak memory for the musicgen-small and ACE-Step 1.5 turbo shapes on this
  machine, ours against a plain peft loop (transformers' MusicGen decoder; diffusers' add_adapter on the DiT) in the
  same run, and the hours 10 minutes of audio would take here (inference/bench/training.py; ``--seconds``: audio
  per clip, ``--shape``: one of them, or tiny / acestep-tiny).
- ``step``: where one decode step's time goes (issue 24): a random-weight musicgen-small engine, int4 and int8
  alternated, each step split into the C++ layer call's op classes, the LM heads, argument building, sampling
  and bookkeeping, beside the read floor from a bandwidth probe in the same run (inference/bench/step_profile.py);
  ``--shape musicgen-medium``: the decoder alone, built one linear at a time (its fp32 model is 7 GB), a few
  steps per weight mode; ``--quick``: one round of 2 s. ``--rows 8``: batched requests' steps, the decoder alone at
  2 and 8 rows alternated over a whole job's positions (``--seconds 16``: an 8-bar job's 800 steps).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time

from bridge.clients.osc import OscClient
from bridge.clients.process import DaemonProcess
from bridge.tools.machine import machine


def bench_daemon(bars: float, model: str | None) -> dict:
    with tempfile.TemporaryDirectory(prefix="continuo-bench-") as tmp:
        flags = ["--osc-port", "0", "--zmq-port", "0", "--zmq-pub-port", "0", "--http-port", "0",
                 "--output-root", f"{tmp}/renders",
                 "--user-presets-dir", f"{tmp}/presets"]
        if model:
            flags += ["--model", model]
        with DaemonProcess(flags) as daemon, OscClient(daemon.host, daemon.port) as client:
            welcome = client.hello()
            started = time.monotonic()
            client.send("/continuo/generate", "bench-1", "default", "warm lo-fi piano, {bpm} bpm", float(bars))
            events = client.wait_job("bench-1", timeout_s=1800)
            wall_s = time.monotonic() - started
        if events[-1][0] != "/continuo/done":
            raise RuntimeError(f"the benchmark job failed: {events[-1]}")
        return {
            "suite": "daemon", "model": welcome[1], "device": welcome[3], "bars": bars, "bpm": 120,
            "startup_to_ready_s": round(daemon.startup_s, 2), "generate_wall_s": round(wall_s, 2),
            "machine": machine(),
        }


def run_bench(args: argparse.Namespace) -> int:
    if args.suite == "render":
        from bridge.tools.bench_render import bench_render

        print(json.dumps(bench_render(args.bars, quick=args.quick, model=args.model)), flush=True)
        return 0
    if args.suite == "bridge":
        from bridge.tools.bench_bridge import run_bridge_bench

        print(json.dumps(run_bridge_bench(n=200 if args.quick else 2000)), flush=True)
        return 0
    if args.suite == "engine":
        return bench_engine(args)
    if args.suite == "train":
        return bench_train(args)
    if args.suite == "step":
        return bench_step(args)
    if args.suite == "gpu":
        from bridge.tools.bench_gpu import run_gpu_bench

        results = run_gpu_bench(dry_run=args.dry_run, device=args.device, quick=args.quick,
                                emit=lambda result: print(json.dumps(result | {"machine": machine()}), flush=True))
        return 0 if results[-1]["status"] == "ok" else 1
    if args.suite == "throughput":
        return bench_throughput(args)
    if args.suite == "quality":
        return bench_quality(args)
    if args.suite == "soak":
        return bench_soak(args)
    if args.suite == "jam":
        from bridge.tools.bench_jam import run_jam_bench

        run_jam_bench(quick=args.quick, emit=lambda result: print(json.dumps(result), flush=True),
                      shapes=(args.shape,) if args.shape else ("tiny", "musicgen-small"),
                      progress=lambda part: print(f"bench jam: {part}", file=sys.stderr, flush=True))
        return 0
    if args.suite == "listen":
        from bridge.tools.bench_listen import run_listen_bench

        run_listen_bench(quick=args.quick, real_dir=getattr(args, "real", None),
                         renders_dir=getattr(args, "renders", None), model_path=args.model,
                         emit=lambda result: print(json.dumps(result), flush=True),
                         progress=lambda part: print(f"bench listen: {part}", file=sys.stderr, flush=True))
        return 0
    print(json.dumps(bench_daemon(args.bars, args.model)), flush=True)
    return 0


def bench_throughput(args: argparse.Namespace) -> int:
    if not getattr(args, "cluster", False):
        return bench_batching(args)
    from bridge.tools.bench_cluster import bench_cluster_throughput

    bars = args.bars if args.bars != 8.0 else 4.0  # the default 8 bars is the daemon suite's
    bench_cluster_throughput(jobs=args.jobs or 8, bars=bars, repeats=3 if args.quick else 5,
                             emit=lambda result: print(json.dumps(result), flush=True))
    return 0


def bench_batching(args: argparse.Namespace) -> int:
    """1, 2, 4, 8 concurrent jobs (up to --jobs) on one engine, batched against one at a time (random weights of
    --shape, musicgen-small by default); --quick: 2 bars, up to 4 jobs."""
    import torch

    from inference.bench.throughput import run_throughput_suite

    if getattr(args, "threads", 0):
        torch.set_num_threads(args.threads)
    jobs = min(args.jobs or 8, 4) if args.quick else args.jobs or 8
    counts = tuple(count for count in (1, 2, 4, 8, 16) if count <= max(1, jobs))
    run_throughput_suite(shape=getattr(args, "shape", None) or "musicgen-small", counts=counts,
                         kv_cache=getattr(args, "kv_cache", "auto"),
                         bars=2.0 if args.quick else args.bars, device="cpu",
                         emit=lambda result: print(json.dumps(result | {"machine": machine()}), flush=True),
                         progress=lambda text: print(f"bench throughput: {text}", file=sys.stderr, flush=True))
    return 0


def bench_quality(args: argparse.Namespace) -> int:
    import torch

    from inference.bench.quality import STRESSES, run_attention_suite, run_quality_suite

    if getattr(args, "threads", 0):
        torch.set_num_threads(args.threads)

    def emit(result: dict) -> None:
        print(json.dumps(result | {"machine": machine()}), flush=True)

    run_attention_suite(emit=emit)
    stresses = tuple(s for s in STRESSES if s.name in ("none", "k x30", "ln x100", "heads x100", "outliers x100")) \
        if args.quick else STRESSES
    run_quality_suite(frames=300 if args.quick else 1500, stresses=stresses, emit=emit,
                      progress=lambda text: print(f"bench quality: {text}", file=sys.stderr, flush=True))
    return 0


def bench_engine(args: argparse.Namespace) -> int:
    import torch

    from inference.bench.musicgen import run_engine_suite

    threads = getattr(args, "threads", 0) or 0
    if threads:
        torch.set_num_threads(threads)
    if getattr(args, "family", "musicgen") == "ace-step":
        from inference.bench.acestep import run_acestep_suite

        run_acestep_suite(quick=args.quick, duration_s=getattr(args, "seconds", None),
                          device=getattr(args, "device", None) or "auto",
                          emit=lambda result: print(json.dumps(result | {"machine": machine()}), flush=True))
        return 0
    shapes = [args.shape] if getattr(args, "shape", None) else None
    run_engine_suite(
        quick=args.quick, shapes=shapes, duration_s=getattr(args, "seconds", None),
        device=getattr(args, "device", None) or "auto",
        emit=lambda result: print(json.dumps(result | {"machine": machine()}), flush=True),
    )
    return 0


def bench_step(args: argparse.Namespace) -> int:
    """One JSON line per weight mode and round: a decode step split into its parts (inference/bench/step_profile.py)."""
    import torch

    from inference.bench.step_profile import run_step_profile

    if getattr(args, "threads", 0):
        torch.set_num_threads(args.threads)
    kv_cache = args.kv_cache if getattr(args, "kv_cache", "auto") != "auto" else "int8"
    run_step_profile(shape=getattr(args, "shape", None) or "musicgen-small", kv_cache=kv_cache,
                     duration_s=getattr(args, "seconds", None) or (2.0 if args.quick else 4.0),
                     rounds=1 if args.quick else 2, rows=getattr(args, "rows", 2),
                     emit=lambda result: print(json.dumps(result | {"machine": machine()}), flush=True))
    return 0


def bench_train(args: argparse.Namespace) -> int:
    """LoRA training steps/s and peak memory (inference/bench/training.py), one JSON line per side: musicgen-small
    then acestep-v15-turbo, or the one --shape (tiny, musicgen-small, ..., acestep-tiny, acestep-v15-turbo)."""
    import torch

    from inference.bench.training import ACE_SHAPES, SHAPE, run_acestep_train_bench, run_train_bench

    if getattr(args, "threads", 0):
        torch.set_num_threads(args.threads)
    shape = getattr(args, "shape", None)
    for name in [shape] if shape else [SHAPE, "acestep-v15-turbo"]:
        run = run_acestep_train_bench if name in ACE_SHAPES else run_train_bench
        for row in run(quick=args.quick, clip_s=getattr(args, "seconds", None), shape=name):
            print(json.dumps(row | {"machine": machine()}), flush=True)
    return 0


def bench_soak(args: argparse.Namespace) -> int:
    """The soak's JSON line on stdout; a progress bar (a line per tenth on a pipe) with the RSS on stderr.
    Exit status 1 when RSS grew past the target."""
    from bridge.tools.bench_soak import bench_soak as run_soak

    jobs = args.jobs or (1_000_000 if args.duration_s > 0 else 30 if args.quick else 200)  # --duration-s bounds it
    show = SoakProgress(None if args.duration_s > 0 else jobs)
    try:
        result = run_soak(jobs=jobs, duration_s=args.duration_s, warmup_jobs=args.warmup_jobs, model=args.model,
                          progress=show)
    finally:
        show.close()
    print(json.dumps(result), flush=True)
    middle = result["rss_middle_mb"]
    print(f"bench soak: RSS {result['rss_start_mb']:.0f} -> {'-' if middle is None else f'{middle:.0f}'} -> "
          f"{result['rss_end_mb']:.0f} MB idle after warm-up ({result['growth_pct']:+.1f} %, target "
          f"{result['target_growth_pct']} %): {'passed' if result['passed'] else 'FAILED'}; {result['jobs']} jobs, "
          f"{sum(result['failed'].values())} failed", file=sys.stderr, flush=True)
    return 0 if result["passed"] else 1


class SoakProgress:
    """progress(done, total, rss_mb): a tqdm bar on a terminal, else a line every tenth of the jobs (total None:
    a run bounded by time, a line every 20 jobs)."""

    def __init__(self, total: int | None) -> None:
        self.total, self.bar = total, None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="job", desc="bench soak", file=sys.stderr)

    def __call__(self, done: int, total: int, rss_mb: float) -> None:
        if self.bar is not None:
            self.bar.update(done - self.bar.n)
            self.bar.set_postfix_str(f"RSS {rss_mb:.0f} MB")
        elif done % (max(1, self.total // 10) if self.total else 20) == 0 or done == self.total:
            print(f"bench soak: {done}/{self.total or '-'} jobs, RSS {rss_mb:.0f} MB", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
