"""`continuo bench gpu`: the prepared smoke run for the first minutes on a GPU (issue 15).

One JSON line per step (and per mode), then a summary line:

1. ``environment``: the device, torch / CUDA / transformers / bitsandbytes / flash-attn versions, the pinned torch.
2. ``parity``: fp16, bf16, fp16 + mulaw8, bnb-int8 and bnb-nf4 against fp32, teacher-forced on one random model
   (relative logit error, argmax agreement).
3. ``variations``: does a variation decoded in a batch of three equal the same seed decoded alone (kernels can
   differ by batch size on a GPU), and what decoding them one by one would cost.
4. ``speed``: per mode, steps/s, decoder RTF, RTF, first chunk and peak memory, against transformers fp16 in the
   same run; compiled decode adds its graphs, graph breaks and CUDA graph skips.
   ``mulaw8``: one layer's cache update + attention at 250 and 1500 positions, the activation-dtype cache against
   mulaw8 (what dequantizing the cache every step costs on this device).
5. ``stems``: HDemucs RTF and peak memory.
6. ``tests``: the GPU tests (``pytest -m gpu``).
7. ``summary``: the targets (musicgen-small RTF <= 0.06, musicgen-medium <= 0.15 on an H100-class GPU) against
   the figures, and every step or mode that was skipped or failed, with why.

A mode the machine cannot run (bitsandbytes or flash-attn missing, no bf16, a newer torch that breaks a step) is
reported and skipped; the run goes on. ``--dry-run`` runs the whole plan on the CPU, small: the tiny random model,
the eager backend for compiled decode, HDemucs low on 2 s, ``pytest --collect-only`` for the GPU tests. It tests
the script; its figures are not GPU figures. Random weights throughout: speed and parity, never music.
"""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TARGET_RTF = {"musicgen-small": 0.06, "musicgen-medium": 0.15}  # on an H100-class GPU
H100_CLASS = ("H100", "H200", "H800", "GH200", "B100", "B200")
PARITY_MODES = (("fp16", "fp16"), ("bf16", "bf16"), ("fp16", "mulaw8"), ("bnb-int8", "auto"), ("bnb-nf4", "auto"))
PACKAGES = ("torch", "torchaudio", "transformers", "bitsandbytes", "flash-attn")

Emit = Callable[[dict], None]


@dataclass(frozen=True)
class GpuBenchPlan:
    """What `bench gpu` runs; build_plan chooses it for the device (or the dry run)."""

    device: str
    dry_run: bool
    shapes: tuple[str, ...]
    duration_s: float
    parity_shape: str
    parity_modes: tuple[tuple[str, str], ...]
    speed: dict[str, tuple[Any, ...]] = field(default_factory=dict)  # shape -> BenchConfigs
    stems_size: str = "high"
    stems_audio_s: float = 10.0
    stems_segment_s: float = 10.0


def build_plan(device: str, *, dry_run: bool, quick: bool = False) -> GpuBenchPlan:
    from inference.bench.musicgen import BenchConfig

    if dry_run:
        configs = (BenchConfig("transformers", "fp32", "fp32"), BenchConfig("engine", "fp32", "fp32", attention="sdpa"),
                   BenchConfig("engine", "fp32", "fp32", compile=True, attention="sdpa", compile_backend="eager"),
                   BenchConfig("engine", "bf16", "mulaw8", attention="sdpa"), BenchConfig("engine", "bnb-int8", "auto"),
                   BenchConfig("engine", "fp16", "fp16"))  # fp16 is CUDA-only: the dry run reports it skipped
        return GpuBenchPlan("cpu", True, ("tiny",), 0.3, "tiny", PARITY_MODES, {"tiny": configs}, "low", 1.0, 1.0)
    small = (BenchConfig("transformers", "fp16", "fp16"), BenchConfig("engine", "fp16", "fp16"),
             BenchConfig("engine", "fp16", "fp16", attention="sdpa"),
             BenchConfig("engine", "fp16", "fp16", compile=True), BenchConfig("engine", "bf16", "bf16", compile=True),
             BenchConfig("engine", "fp16", "mulaw8"), BenchConfig("engine", "bnb-int8", "auto"),
             BenchConfig("engine", "bnb-nf4", "auto"))
    medium = (BenchConfig("transformers", "fp16", "fp16"), BenchConfig("engine", "fp16", "fp16"),
              BenchConfig("engine", "fp16", "fp16", compile=True), BenchConfig("engine", "bnb-int8", "auto"))
    if quick:
        return GpuBenchPlan(device, False, ("musicgen-small",), 5.0, "musicgen-small", PARITY_MODES,
                            {"musicgen-small": small[:4]}, "high", 10.0)
    return GpuBenchPlan(device, False, ("musicgen-small", "musicgen-medium"), 10.0, "musicgen-small", PARITY_MODES,
                        {"musicgen-small": small, "musicgen-medium": medium}, "high", 10.0)


def run_gpu_bench(*, dry_run: bool, device: str = "auto", quick: bool = False, emit: Emit) -> list[dict]:
    """Run every step of the plan, emitting one dict per result; the last one is the summary."""
    import torch

    from inference.runtime.device import pick_device

    target = torch.device("cpu") if dry_run else pick_device(device)
    results: list[dict] = []

    def record(result: dict) -> None:
        result = {"suite": "gpu", "dry_run": dry_run} | result
        results.append(result)
        emit(result)

    if target.type != "cuda" and not dry_run:
        record({"step": "environment", "status": "failed",
                "error": f"no usable CUDA GPU (device {device!r} resolved to {target}); run with --dry-run on the CPU"})
        record(summarise(results, None))
        return results
    plan = build_plan(str(target), dry_run=dry_run, quick=quick)
    with tempfile.TemporaryDirectory(prefix="continuo-bench-gpu-") as tmp:
        models = ModelCache(plan, Path(tmp))
        steps: list[tuple[str, Callable[[], list[dict]]]] = [
            ("environment", lambda: [environment(target)]),
            ("parity", lambda: parity(plan, models, target)),
            ("variations", lambda: [variations(plan, models, target)]),
            ("speed", lambda: speed(plan, models, target)),
            ("mulaw8", lambda: mulaw8(target, repeats=3 if dry_run else 30)),
            ("stems", lambda: [stems(plan, target)]),
            ("tests", lambda: [gpu_tests(dry_run)]),
        ]
        for name, run in steps:
            try:
                for result in run():
                    record({"step": name} | result)
            except Exception as error:  # a step that breaks (a newer torch, a driver) must not stop the others
                record({"step": name, "status": "failed", "error": f"{type(error).__name__}: {error}"})
    record(summarise(results, plan))
    return results


class ModelCache:
    """One random model per shape at a time (the tiny checkpoint in a dry run)."""

    def __init__(self, plan: GpuBenchPlan, tmp: Path):
        self.plan, self.tmp = plan, tmp
        self.shape: str | None = None
        self.model = self.tokenizer = None

    def get(self, shape: str):
        if shape != self.shape:
            self.model = self.tokenizer = None
            self.model, self.tokenizer = self.build(shape)
            self.shape = shape
        return self.model, self.tokenizer

    def build(self, shape: str):
        if shape != "tiny":
            from inference.bench.musicgen import build_random_musicgen

            return build_random_musicgen(shape)
        from transformers import AutoProcessor, MusicgenForConditionalGeneration

        from inference.musicgen.tiny import build_tiny_musicgen

        path = build_tiny_musicgen(self.tmp / "tiny", seed=0)
        model = MusicgenForConditionalGeneration.from_pretrained(path, local_files_only=True).eval()
        return model, AutoProcessor.from_pretrained(path, local_files_only=True).tokenizer


def environment(device) -> dict:
    import torch

    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    pinned = pinned_torch()
    installed = versions["torch"].split("+")[0] if versions["torch"] else None
    result: dict[str, Any] = {"status": "ok", "device": str(device), "versions": versions, "pinned_torch": pinned,
                              "cuda_runtime": torch.version.cuda, "torch_matches_pin": installed == pinned}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        result |= {"gpu": props.name, "capability": f"{props.major}.{props.minor}",
                   "memory_gib": round(props.total_memory / 2**30, 1), "bf16": torch.cuda.is_bf16_supported(),
                   "h100_class": any(name in props.name.upper() for name in H100_CLASS)}
    missing = [package for package in ("bitsandbytes", "flash-attn") if versions[package] is None]
    if missing:
        result["skipped"] = [f"{package}: not installed (its modes are skipped)" for package in missing]
    return result


def pinned_torch() -> str | None:
    try:
        text = (ROOT / "pyproject.toml").read_text()
    except OSError:
        return None
    match = re.search(r'"torch==([^"]+)"', text)
    return match.group(1) if match else None


def parity(plan: GpuBenchPlan, models: ModelCache, device) -> list[dict]:
    """Teacher-forced logits of every mode against the fp32 engine on the fp32 engine's greedy codes."""
    import torch

    from inference.api import GenerationRequest
    from inference.musicgen.engine import EngineOptions, engine_from_hf_model

    model, tokenizer = models.get(plan.parity_shape)
    request = GenerationRequest(prompt="warm lo-fi piano with soft drums", duration_s=1.0 if plan.dry_run else 2.0,
                                seed=1, temperature=0.0)
    reference = engine_from_hf_model(model, tokenizer, options=EngineOptions(weights="fp32", kv_cache="fp32"),
                                     device=device, name=plan.parity_shape)
    codes = reference.generate_codes(request)
    expected = reference.teacher_forced_logits(request, codes).float().cpu()
    del reference
    results = []
    for weights, kv_cache in plan.parity_modes:
        mode = {"weights": weights, "kv_cache": kv_cache}
        try:
            engine = engine_from_hf_model(model, tokenizer, options=EngineOptions(**mode), device=device,
                                          name=plan.parity_shape)
        except (ValueError, ImportError) as error:  # a mode this machine cannot run
            results.append(mode | {"status": "skipped", "reason": str(error)})
            continue
        forced = engine.teacher_forced_logits(request, codes).float().cpu()
        error = ((forced - expected).norm() / expected.norm()).item()
        agreement = (forced.argmax(-1) == expected.argmax(-1)).float().mean().item()
        results.append(mode | {"status": "ok", "shape": plan.parity_shape, "attention": engine.options.attention,
                               "rel_logit_error": round(error, 5), "forced_agreement": round(agreement, 4)})
        del engine
        torch.cuda.empty_cache() if device.type == "cuda" else None
    return results


def variations(plan: GpuBenchPlan, models: ModelCache, device) -> dict:
    """Seeds [1, 2, 3] in one batched decode against seed 2 alone (fp16 on CUDA, fp32 on the CPU): token agreement
    of the middle variation, and the seconds of the batch against three single decodes."""
    import torch

    from inference.api import GenerationRequest
    from inference.musicgen.engine import EngineOptions, engine_from_hf_model

    model, tokenizer = models.get(plan.parity_shape)
    weights = "fp16" if device.type == "cuda" else "fp32"
    engine = engine_from_hf_model(model, tokenizer, options=EngineOptions(weights=weights, kv_cache="auto"),
                                  device=device, name=plan.parity_shape)
    request = GenerationRequest(prompt="warm lo-fi piano with soft drums", duration_s=plan.duration_s, seed=2)
    engine.generate_codes(request, [1, 2, 3])  # warm up both shapes
    engine.generate_codes(request)
    started = time.perf_counter()
    batch = engine.generate_codes(request, [1, 2, 3]).cpu()
    batch_s = time.perf_counter() - started
    started = time.perf_counter()
    alone = [engine.generate_codes(request, [seed]).cpu() for seed in (1, 2, 3)]
    singles_s = time.perf_counter() - started
    agreement = (batch[1] == alone[1][0]).float().mean().item()
    first_difference = (batch[1] != alone[1][0]).any(dim=0).nonzero()
    return {"status": "ok", "weights": weights, "audio_s": plan.duration_s, "agreement": round(agreement, 4),
            "first_differing_frame": int(first_difference[0]) if len(first_difference) else None,
            "batch_of_3_s": round(batch_s, 2), "three_singles_s": round(singles_s, 2),
            "same_codes": bool(torch.equal(batch[1], alone[1][0]))}


def speed(plan: GpuBenchPlan, models: ModelCache, device) -> list[dict]:
    from inference.bench.musicgen import bench_config

    results = []
    for shape in plan.shapes:
        model, tokenizer = models.get(shape)
        for config in plan.speed[shape]:
            described = {"shape": shape, "backend": config.backend, "weights": config.weights,
                         "kv_cache": config.kv_cache, "compile": config.compile}
            try:
                result = bench_config(model, tokenizer, shape, config, plan.duration_s, device)
            except (ValueError, ImportError) as error:  # a mode this machine cannot run
                results.append(described | {"status": "skipped", "reason": str(error)})
                continue
            result.pop("suite", None)
            results.append({"status": "ok"} | result)
    return results


def mulaw8(device, repeats: int) -> list[dict]:
    import torch

    from inference.bench.musicgen import cache_attention_ms

    dtype = torch.float16 if device.type == "cuda" else torch.float32
    results = []
    for positions in (250, 1500):
        timings = cache_attention_ms(device, positions, dtype=dtype, repeats=repeats)
        results.append({"status": "ok", "positions": positions, "cache_dtype": str(dtype).removeprefix("torch."),
                        "cache_ms": timings["cache"], "mulaw8_ms": timings["mulaw8"],
                        "mulaw8_over_cache": round(timings["mulaw8"] / timings["cache"], 2)})
    return results


def stems(plan: GpuBenchPlan, device) -> dict:
    import numpy as np
    import torch

    from inference.stems.separator import SeparatorConfig, load_separator

    separator = load_separator(SeparatorConfig(weights="random", size=plan.stems_size, device=str(device),
                                               segment_s=plan.stems_segment_s, overlap_s=plan.stems_segment_s / 10))
    mix = np.random.default_rng(0).standard_normal((2, round(plan.stems_audio_s * 44100))).astype(np.float32) * 0.1
    separator.separate(mix[:, :44100], 44100)  # warm up
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    separator.separate(mix, 44100)
    wall_s = time.perf_counter() - started  # separate returns numpy: the device is done
    peak = round(torch.cuda.max_memory_allocated(device) / 2**20) if device.type == "cuda" else None
    return {"status": "ok", "model": f"hdemucs_{plan.stems_size} (random weights)", "audio_s": plan.stems_audio_s,
            "wall_s": round(wall_s, 2), "rtf": round(wall_s / plan.stems_audio_s, 3), "device_mem_mb": peak}


def gpu_tests(dry_run: bool) -> dict:
    if not (ROOT / "tests").is_dir():
        return {"status": "skipped", "reason": f"no tests/ beside {ROOT} (an installed copy); run from a checkout"}
    command = [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", "tests/inference"]
    if dry_run:
        command.append("--collect-only")  # the dry run lists them; a GPU runs them
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    tests = [line for line in lines if "::" in line]
    return {"status": "ok" if done.returncode in (0, 5) else "failed", "returncode": done.returncode,
            "collected" if dry_run else "ran": len(tests) if dry_run else None,
            "tests": tests if dry_run else None, "last_line": lines[-1] if lines else done.stderr[-300:]}


def summarise(results: list[dict], plan: GpuBenchPlan | None) -> dict:
    """Targets against the best engine RTF per shape, and what was skipped or failed."""
    gpu = next((r for r in results if r.get("step") == "environment" and r.get("status") == "ok"), {})
    targets = []
    for shape, target in TARGET_RTF.items():
        runs = [r for r in results if r.get("step") == "speed" and r.get("status") == "ok"
                and r.get("shape") == shape and r.get("backend") == "engine"]
        best = min(runs, key=lambda r: r["rtf"]) if runs else None
        verdict = ("not judged: dry run on the CPU" if plan is None or plan.dry_run
                   else "not measured" if best is None
                   else "not judged: not an H100-class GPU" if not gpu.get("h100_class")
                   else "met" if best["rtf"] <= target else "missed")
        targets.append({"shape": shape, "target_rtf": target, "gpu": "H100-class",
                        "best_rtf": best and best["rtf"], "best_mode": best and
                        f"{best['weights']}/{best['kv_cache']}{' compiled' if best.get('compile') else ''}",
                        "verdict": verdict})
    skipped = [describe(r) + ": " + r["reason"] for r in results if r.get("status") == "skipped"]
    skipped += [note for r in results for note in r.get("skipped", [])]
    failed = [describe(r) + ": " + r.get("error", r.get("last_line", "")) for r in results
              if r.get("status") == "failed"]
    return {"step": "summary", "status": "failed" if failed else "ok", "targets": targets, "skipped": skipped,
            "failed": failed}


def describe(result: dict) -> str:
    parts = [result.get("step", "?")] + [str(result[key]) for key in ("shape", "backend", "weights", "kv_cache")
                                          if key in result]
    return " ".join(parts) + (" compiled" if result.get("compile") else "")
