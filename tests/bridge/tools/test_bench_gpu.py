"""`continuo bench gpu`: the GPU smoke run's plan, run whole on the CPU (--dry-run), and its reporting."""

from __future__ import annotations

import json

import pytest

from bridge.cli import main
from bridge.tools import bench_gpu


@pytest.mark.slow
def test_dry_run_runs_the_whole_plan_on_the_cpu(capsys):
    assert main(["bench", "gpu", "--dry-run"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    by_step: dict[str, list[dict]] = {}
    for line in lines:
        assert line["suite"] == "gpu" and line["dry_run"] is True
        by_step.setdefault(line["step"], []).append(line)
    assert list(by_step) == ["environment", "parity", "variations", "speed", "mulaw8", "stems", "tests",
                            "summary"]
    assert by_step["environment"][0]["versions"]["torch"]
    parity = {(r["weights"], r["kv_cache"]): r for r in by_step["parity"]}
    assert parity[("fp16", "fp16")]["status"] == "skipped" and "CUDA" in parity[("fp16", "fp16")]["reason"]
    assert parity[("bf16", "bf16")]["status"] == "ok" and parity[("bf16", "bf16")]["rel_logit_error"] < 0.05
    assert by_step["variations"][0]["same_codes"] is True  # on the CPU a variation reproduces from its seed alone
    speed = by_step["speed"]
    assert {r["backend"] for r in speed if r["status"] == "ok"} == {"transformers", "engine"}
    compiled = next(r for r in speed if r.get("compile") and r["status"] == "ok")
    assert compiled["graphs"] <= 1 and compiled["graph_breaks"] == 0 and compiled["steps_per_s"] > 0
    assert [r["positions"] for r in by_step["mulaw8"]] == [250, 1500] and by_step["mulaw8"][0]["mulaw8_ms"] > 0
    assert by_step["stems"][0]["status"] == "ok" and by_step["stems"][0]["rtf"] > 0
    assert by_step["tests"][0]["status"] == "ok" and by_step["tests"][0]["collected"] >= 1
    summary = by_step["summary"][0]
    assert summary["status"] == "ok" and not summary["failed"]
    assert [(t["shape"], t["target_rtf"]) for t in summary["targets"]] == [("musicgen-small", 0.06),
                                                                           ("musicgen-medium", 0.15)]
    assert any(note.startswith("parity fp16 fp16") for note in summary["skipped"])


def fake_steps(monkeypatch, **overrides):
    """The plan's steps replaced by canned results (the control flow and the summary are under test)."""
    steps = {"environment": lambda device: {"status": "ok", "h100_class": True},
             "parity": lambda plan, models, device: [{"weights": "bf16", "kv_cache": "bf16", "status": "ok"}],
             "variations": lambda plan, models, device: {"status": "ok"},
             "speed": lambda plan, models, device: [],
             "mulaw8": lambda device, repeats: [],
             "stems": lambda plan, device: {"status": "ok"},
             "gpu_tests": lambda dry_run: {"status": "ok"}}
    for name, step in (steps | overrides).items():
        monkeypatch.setattr(bench_gpu, name, step)


def test_a_broken_step_is_reported_and_the_rest_still_run(monkeypatch):
    def broken(plan, models, device):
        raise AttributeError("module 'torch' has no attribute 'something_removed'")  # a newer torch

    fake_steps(monkeypatch, parity=broken)
    results = bench_gpu.run_gpu_bench(dry_run=True, emit=lambda result: None)
    assert [r["step"] for r in results] == ["environment", "parity", "variations", "stems", "tests", "summary"]
    assert results[1]["status"] == "failed" and "something_removed" in results[1]["error"]
    assert results[-1]["status"] == "failed" and "something_removed" in results[-1]["failed"][0]


def test_targets_are_judged_only_on_an_h100_class_gpu():
    plan = bench_gpu.build_plan("cuda:0", dry_run=False)
    speed = [{"step": "speed", "status": "ok", "shape": "musicgen-small", "backend": "engine", "weights": "fp16",
              "kv_cache": "fp16", "compile": True, "rtf": 0.05},
             {"step": "speed", "status": "ok", "shape": "musicgen-medium", "backend": "engine", "weights": "fp16",
              "kv_cache": "fp16", "compile": False, "rtf": 0.2},
             {"step": "speed", "status": "ok", "shape": "musicgen-medium", "backend": "transformers",
              "weights": "fp16", "kv_cache": "fp16", "rtf": 0.01}]  # the baseline is not ours to count
    h100 = [{"step": "environment", "status": "ok", "h100_class": True}]
    targets = {t["shape"]: t for t in bench_gpu.summarise(h100 + speed, plan)["targets"]}
    assert targets["musicgen-small"]["verdict"] == "met"
    assert targets["musicgen-small"]["best_mode"] == "fp16/fp16 compiled"
    assert targets["musicgen-medium"]["verdict"] == "missed" and targets["musicgen-medium"]["best_rtf"] == 0.2
    other = [{"step": "environment", "status": "ok", "h100_class": False}]
    assert {t["verdict"] for t in bench_gpu.summarise(other + speed, plan)["targets"]} == {
        "not judged: not an H100-class GPU"}


def test_without_a_gpu_it_says_to_dry_run(monkeypatch):
    results = bench_gpu.run_gpu_bench(dry_run=False, device="cpu", emit=lambda result: None)
    assert results[0]["status"] == "failed" and "--dry-run" in results[0]["error"]
    assert results[-1]["step"] == "summary" and results[-1]["status"] == "failed"


def test_the_gpu_plan_covers_every_mode_and_compiled_decode():
    plan = bench_gpu.build_plan("cuda:0", dry_run=False)
    small = plan.speed["musicgen-small"]
    assert plan.shapes == ("musicgen-small", "musicgen-medium")
    assert ("transformers", "fp16") in {(c.backend, c.weights) for c in small}
    assert {c.weights for c in small if c.backend == "engine"} >= {"fp16", "bf16", "bnb-int8", "bnb-nf4"}
    assert any(c.compile for c in small) and any(c.kv_cache == "mulaw8" for c in small)
    assert {mode for mode, _ in plan.parity_modes} == {"fp16", "bf16", "bnb-int8", "bnb-nf4"}


@pytest.mark.parametrize("name, h100_class", [("NVIDIA H100 80GB HBM3", True), ("NVIDIA H200", True),
                                              ("NVIDIA GeForce RTX 4090", False)])
def test_environment_describes_the_gpu(monkeypatch, name, h100_class):
    import types

    import torch

    props = types.SimpleNamespace(name=name, major=9, minor=0, total_memory=80 * 2**30)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device=None: props)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    result = bench_gpu.environment(torch.device("cuda:0"))
    assert result["gpu"] == name and result["capability"] == "9.0" and result["memory_gib"] == 80.0
    assert result["h100_class"] is h100_class and result["bf16"] is True
