"""The throughput benchmark of continuous batching: N concurrent jobs on one engine, batched against one at a time.

Random weights of a real MusicGen shape (musicgen-small by default: T5-base, EnCodec 32 kHz), int4 weights on
the CPU where our kernel runs (else int8), as the daemon serves them. As in `continuo serve`, every torch call
runs on the calling (main) thread (`MusicGenEngine.serve`), and the jobs are threads that hand it work. Each job
is a whole generate: text, decode steps, codec. All jobs are sent at t0; a job's latency is from t0 to its audio.

- batched: N threads call generate at once (the scheduler decodes them together);
- one at a time: the same N jobs, each sent when the one before is done (max_batch 1 as the daemon runs it).

Beside the walls, the floor batching meets (`batching_floor`, in the summary): a decode step reads the weights once
for every row, but each row's own self-attention cache (under CFG two rows a job, at the step's position), and each
job runs its own codec decode (arithmetic, not shared). At the bandwidth probed in the same run and the codec as
measured, those give the least N jobs could take against one: where that floor is above the 1.6x target (issue 24),
the target is out of reach here whatever the step does. A measured ratio under the floor (`ratio_below_floor`) means
the host changed speed within the run, between the one-job figure and the batch: `single_job_s_range` gives the
same job's walls over the run (2026-12-08: 7.92 to 12.23 s, and a 1.66x under a 1.80x floor).
"""

from __future__ import annotations

import logging
import os
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import replace

import torch

from inference.api import GenerationRequest
from inference.bench.codec import best_of
from inference.bench.musicgen import build_random_musicgen, memory_bandwidth_gbs, step_bytes
from inference.musicgen.engine import EngineOptions, MusicGenEngine, engine_from_hf_model, int4_available

log = logging.getLogger("continuo.inference")

TARGET_4_JOBS_VS_ONE = 1.6  # issue 24: four concurrent jobs within this many times one job's wall

PROMPTS = ["warm lo-fi piano with soft drums", "dark techno kick and rolling bass", "bright funk guitar",
           "ambient pad", "breakbeat drums with vinyl crackle", "cinematic strings, slow",
           "acid bassline 303", "jazz trio, brushed snare"]


def job_requests(count: int, duration_s: float) -> list[GenerationRequest]:
    return [GenerationRequest(prompt=PROMPTS[index % len(PROMPTS)], duration_s=duration_s, seed=100 + index,
                              temperature=1.0, top_k=250, guidance_scale=3.0) for index in range(count)]


def run_batched(engine: MusicGenEngine, requests: list[GenerationRequest]) -> tuple[float, list[float]]:
    """Every request at once from its own thread; (wall seconds, each latency). The serving loop runs here."""
    stop, latencies, errors = threading.Event(), [0.0] * len(requests), []
    started = time.monotonic()

    def job(index: int) -> None:
        try:
            engine.generate(requests[index])
            latencies[index] = time.monotonic() - started
        except Exception as error:  # reported after the run
            errors.append(error)

    threads = [threading.Thread(target=job, args=(index,), name=f"bench-job-{index}") for index in range(len(requests))]
    waiter = threading.Thread(target=lambda: ([thread.join() for thread in threads], stop.set()))

    def start() -> None:
        for thread in threads:
            thread.start()
        waiter.start()

    engine.compute.serve(stop, on_ready=start)  # this (main) thread runs every torch call, as `continuo serve` does
    waiter.join()
    if errors:
        raise errors[0]
    return time.monotonic() - started, latencies


def run_one_at_a_time(engine: MusicGenEngine, requests: list[GenerationRequest]) -> tuple[float, list[float]]:
    started, latencies = time.monotonic(), []
    for request in requests:
        engine.generate(request)
        latencies.append(time.monotonic() - started)
    return time.monotonic() - started, latencies


def codec_decode_s(engine: MusicGenEngine, audio_s: float, repeats: int = 2, seed: int = 0) -> float:
    """The engine's whole codec decode of one job's audio_s (random codes; the best of repeats), as a job that was
    not streamed pays it after its last step."""
    args = engine.args
    frames = round(audio_s * engine.info.frame_rate)
    codes = torch.randint(0, args.vocab_size, (1, args.num_codebooks, frames),
                          generator=torch.Generator().manual_seed(seed))
    return best_of(repeats, lambda: engine.decode_audio(codes))[0]


def single_job_walls(results: list[dict]) -> list[float]:
    """Every single job's own wall in the run: the one-job runs', and each one-at-a-time job's (its latency less
    the one before it: they run one after another). The same work each time, so their spread is the host's."""
    walls = []
    for result in results:
        if result["jobs"] == 1:
            walls.append(result["wall_s"])
        elif result["mode"] == "one-at-a-time":
            ends = sorted(result["latency_s"])
            walls += [end - start for start, end in zip([0.0, *ends], ends)]
    return walls


def batching_floor(engine: MusicGenEngine, *, audio_s: float, jobs: int, bandwidth_gbs: float, codec_s: float,
                   rows_per_job: int = 2) -> dict:
    """The least `jobs` batched jobs of audio_s can take against one job (see the module doc): every decode step's
    read (step_bytes at the mean position: the weights once, each row's cache) at bandwidth_gbs, plus each job's codec
    decode of codec_s. rows_per_job: 2 under CFG. Seconds and the ratios; the bandwidth cancels in the decode ratio
    (weights + the batch's caches against weights + one job's), not in the floor with the codec. Unrounded."""
    steps = round(audio_s * engine.info.frame_rate) + engine.args.num_codebooks - 1  # the delay pattern's tail

    def read_s(rows: int) -> float:
        return steps * step_bytes(engine, steps // 2, rows) / (bandwidth_gbs * 1e9)

    one_read, batch_read = read_s(rows_per_job), read_s(rows_per_job * jobs)
    one, batch = one_read + codec_s, batch_read + jobs * codec_s
    return {"floor_bandwidth_gbs": bandwidth_gbs, "floor_steps": steps, "floor_read_one_s": one_read,
            f"floor_read_{jobs}_s": batch_read, "floor_codec_per_job_s": codec_s,
            f"floor_decode_{jobs}_vs_one": batch_read / one_read, f"floor_{jobs}_vs_one": batch / one}


def run_throughput_suite(*, shape: str = "musicgen-small", counts: tuple[int, ...] = (1, 2, 4, 8),
                         bars: float = 8.0, bpm: float = 120.0, device: str = "cpu", kv_cache: str = "auto",
                         weights: str | None = None, emit: Callable[[dict], None] = print,
                         progress: Callable[[str], None] | None = None) -> list[dict]:
    """One dict per (mode, jobs); the summary dict last (4 jobs batched against one job, the 1.6x target; a lone
    job batched against one at a time, `lone_batched_overhead`)."""
    duration_s = bars * 4 * 60.0 / bpm
    model, tokenizer = build_random_musicgen(shape)
    # named, not auto: random weights say nothing about quality, so auto's calibration would measure noise (and on
    # random musicgen-small weights it keeps fp32); the benchmark times the CPU serving modes (int4 where our
    # kernel runs, else int8), with int8 LM heads: what auto resolves to on the quality harness (docs/benchmarks.md)
    weights = weights or ("int4" if int4_available() else "int8")
    options = EngineOptions(weights=weights, max_batch=max(counts), kv_cache=kv_cache,
                            heads="int8" if weights in ("int4", "int8") else "auto")
    engine = engine_from_hf_model(model, tokenizer, options=options,
                                  device=device, name=f"{shape} (random weights)", is_random=True)
    del model
    engine.generate(GenerationRequest(prompt="warm up", duration_s=0.5, seed=0))
    results = []
    for count in counts:
        for mode in ("one-at-a-time", "batched"):
            if progress is not None:
                progress(f"{count} job(s) of {bars:g} bars, {mode}")
            requests = job_requests(count, duration_s)
            engine.options = replace(engine.options, max_batch=1 if mode == "one-at-a-time" else count)
            steps_before = engine.scheduler.steps
            engine.text_cache.clear()  # every mode encodes its prompts (the T5 cache would favour the second)
            wall, latencies = (run_batched if mode == "batched" else run_one_at_a_time)(engine, requests)
            result = {"suite": "throughput", "shape": shape, "weights": engine.weights.value,
                      "heads": engine.info.modes.get("heads"),
                      "kv_cache": engine.kv_cache.value, "mode": mode,
                      "jobs": count, "bars": bars, "audio_s": round(duration_s, 2), "wall_s": round(wall, 2),
                      "jobs_per_min": round(60.0 * count / wall, 2),
                      "latency_s": [round(latency, 2) for latency in latencies],
                      "latency_p50_s": round(statistics.median(latencies), 2),
                      "steps": engine.scheduler.steps - steps_before,
                      "rows_max": engine.scheduler.max_rows, "threads": torch.get_num_threads(),
                      "load_1min": round(os.getloadavg()[0], 2)}
            log.info("throughput %s jobs=%d wall_s=%.1f", mode, count, wall)
            emit(result)
            results.append(result)
    one = next(r["wall_s"] for r in results if r["jobs"] == 1 and r["mode"] == "batched")
    alone = next(r["wall_s"] for r in results if r["jobs"] == 1 and r["mode"] == "one-at-a-time")
    walls = single_job_walls(results)
    summary = {"suite": "throughput-summary", "shape": shape, "weights": engine.weights.value, "one_job_s": one,
               "lone_batched_overhead": round(one / alone - 1, 3),
               "single_job_s_range": [round(min(walls), 2), round(max(walls), 2)],
               "load_1min": round(os.getloadavg()[0], 2)}
    for count in counts[1:]:
        batched = next(r["wall_s"] for r in results if r["jobs"] == count and r["mode"] == "batched")
        serial = next(r["wall_s"] for r in results if r["jobs"] == count and r["mode"] == "one-at-a-time")
        summary[f"jobs_{count}_vs_one"] = round(batched / one, 2)
        summary[f"jobs_{count}_speedup_vs_serial"] = round(serial / batched, 2)
    if 4 in counts:
        summary["target_4_jobs_within_1.6x"] = summary["jobs_4_vs_one"] <= TARGET_4_JOBS_VS_ONE
        floor = batching_floor(engine, audio_s=duration_s, jobs=4, bandwidth_gbs=memory_bandwidth_gbs(),
                               codec_s=codec_decode_s(engine, duration_s))
        summary |= {name: value if isinstance(value, int) else round(value, 2) for name, value in floor.items()}
        summary["floor_4_above_target"] = summary["floor_4_vs_one"] > TARGET_4_JOBS_VS_ONE  # True: out of reach
        # a ratio under its floor is no measurement of batching: the host changed speed between the one-job run
        # and the batch (single_job_s_range shows by how much the same job's wall moved within the run)
        summary["ratio_below_floor"] = summary["jobs_4_vs_one"] < summary["floor_4_vs_one"]
    emit(summary)
    results.append(summary)
    return results
