"""Separation paths: the split model equals torchaudio's, fast paths match fp32, a failing path falls back."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from inference.errors import Cancelled, ModelLoadError
from inference.runtime.device import cpu_bf16
from inference.stems import paths as stems_paths
from inference.stems.paths import PATHS, HDemucsCore, auto_order, split_forward
from inference.stems.separator import (
    STEM_NAMES,
    SUM_TOLERANCE,
    SeparatorConfig,
    StemSeparator,
    candidate_paths,
    export_dir_for,
    load_separator,
)

RATE = 44100
ERROR_DB = -40.0  # each stem's error energy relative to the fp32 separation
ENERGY_DB = 0.5  # each stem's energy against fp32's


def error_db(estimate: np.ndarray, reference: np.ndarray) -> float:
    noise = np.sum((estimate.astype(np.float64) - reference) ** 2)
    return float(10 * np.log10(max(noise, 1e-30) / np.sum(reference.astype(np.float64) ** 2)))


def energy_db(audio: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(audio.astype(np.float64) ** 2)))


def synthetic_mix(seconds: float) -> np.ndarray:
    """Distinct sources: a kick every half second, a bass tone, a chord pad, a noise burst; stereo."""
    t = np.arange(round(seconds * RATE)) / RATE
    beat = t % 0.5
    kick = np.sin(2 * np.pi * (50 + 100 * np.exp(-beat * 30)) * beat) * np.exp(-beat * 12)
    bass = 0.4 * np.sign(np.sin(2 * np.pi * 55 * t)) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * t))
    pad = sum(0.15 * np.sin(2 * np.pi * f * t + i) for i, f in enumerate((261.6, 329.6, 392.0, 523.3)))
    burst = np.where((t > seconds / 3) & (t < seconds / 3 + 0.3), 0.3, 0.0)
    noise = np.random.default_rng(7).standard_normal((2, t.size)) * burst
    mix = 0.5 * (kick + bass)[None] + np.stack([pad, 0.8 * pad]) + noise
    return (0.3 * mix).astype(np.float32)


def noise_mix(seconds: float) -> np.ndarray:
    return (0.1 * np.random.default_rng(3).standard_normal((2, round(seconds * RATE)))).astype(np.float32)


def test_split_forward_with_the_core_is_torchaudios_forward():
    from torchaudio.models import hdemucs_low

    torch.manual_seed(0)
    model = hdemucs_low(sources=list(STEM_NAMES)).eval()
    segment = torch.from_numpy(noise_mix(0.6))[None]
    with torch.inference_mode():
        expected = model(segment)
        split = split_forward(model, HDemucsCore(model), segment)
    assert split.shape == expected.shape == (1, 4, 2, segment.shape[-1])
    assert torch.equal(split, expected)


def test_auto_tries_the_fast_paths_by_cpu_feature_and_ends_with_fp32():
    assert auto_order(True, True) == ("openvino-bf16", "bf16", "openvino-fp32", "fp32")
    assert auto_order(True, False) == ("bf16", "fp32")
    assert auto_order(False, True) == ("openvino-fp32", "fp32")
    assert auto_order(False, False) == ("fp32",)
    assert candidate_paths("bf16") == ("bf16", "fp32")
    assert candidate_paths("fp32") == ("fp32",)
    assert candidate_paths("auto")[-1] == "fp32"


def test_unknown_path_names_the_valid_ones():
    with pytest.raises(ModelLoadError, match="auto or one of fp32, bf16"):
        SeparatorConfig(path="int4")


def test_exports_are_cached_beside_the_weights(tmp_path):
    weights = tmp_path / "hdemucs.pt"
    assert export_dir_for(SeparatorConfig(weights=str(weights))) == tmp_path / "hdemucs.pt.continuo-stems"
    assert export_dir_for(SeparatorConfig(weights="random", export_dir=str(tmp_path))) == tmp_path


class Broken(torch.nn.Module):
    """Raises like a fast path whose runtime broke mid-job."""

    def __call__(self, segment: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("oneDNN primitive creation failed")


@pytest.fixture(scope="module")
def low() -> StemSeparator:
    return load_separator(SeparatorConfig(weights="random", size="low", segment_s=1.0, overlap_s=0.25, path="fp32"))


def test_a_fast_path_that_fails_mid_job_falls_back_to_fp32_with_one_log_line(low, caplog):
    mix = noise_mix(2.2)
    expected = low.separate(mix, RATE)
    broken = StemSeparator(low.model, SeparatorConfig(weights="random", size="low", segment_s=1.0, overlap_s=0.25,
                                                      path="bf16"), is_random=True)
    broken.path, broken._segment_fn = "bf16", Broken()
    fractions: list[float] = []
    with caplog.at_level(logging.WARNING, logger="continuo.stems"):
        stems = broken.separate(mix, RATE, on_progress=fractions.append)
    assert broken.path == "fp32"
    assert [r.getMessage() for r in caplog.records if "falling back" in r.getMessage()] == [
        "stems: path bf16 failed (RuntimeError: oneDNN primitive creation failed); falling back to fp32"]
    assert len(caplog.records) == 1
    for name in STEM_NAMES:
        assert np.array_equal(stems[name], expected[name]), name
    assert fractions[-1] == 1.0 and len(fractions) == 3


def test_a_path_that_cannot_be_built_falls_back_to_fp32(low, monkeypatch, caplog):
    monkeypatch.setattr(stems_paths, "openvino_usable", lambda: "OpenVINO is not installed; pip install x")
    separator = StemSeparator(low.model, SeparatorConfig(weights="random", size="low", segment_s=1.0,
                                                         overlap_s=0.25, path="openvino-bf16"), is_random=True)
    with caplog.at_level(logging.WARNING, logger="continuo.stems"):
        stems = separator.separate(noise_mix(0.5), RATE)
    assert separator.path == "fp32" and set(stems) == set(STEM_NAMES)
    assert "openvino-bf16 unavailable" in caplog.text and "OpenVINO is not installed" in caplog.text


def test_cancel_between_segments_on_a_fast_path(low):
    separator = StemSeparator(low.model, SeparatorConfig(weights="random", size="low", segment_s=1.0,
                                                         overlap_s=0.25, path="bf16"), is_random=True)
    calls: list[int] = []
    separator.path, separator._segment_fn = "bf16", lambda segment: calls.append(1) or low.model(segment)
    with pytest.raises(Cancelled):
        separator.separate(noise_mix(3.0), RATE, should_cancel=lambda: len(calls) >= 2)
    assert len(calls) == 2


def path_unavailable(path: str) -> str | None:
    if path in ("bf16", "openvino-bf16") and cpu_bf16():
        return cpu_bf16()
    if path.startswith("openvino") and stems_paths.openvino_usable():
        return stems_paths.openvino_usable()
    return None


HIGH = {"weights": "random", "size": "high", "segment_s": 2.0, "overlap_s": 0.5}  # real-shaped weights


@pytest.fixture(scope="module")
def high_reference() -> tuple[StemSeparator, dict[str, dict[str, np.ndarray]], dict[str, np.ndarray]]:
    separator = load_separator(SeparatorConfig(**HIGH, path="fp32"))
    mixes = {"synthetic": synthetic_mix(3.0), "noise": noise_mix(3.0)}  # two segments each
    return separator, {name: separator.separate(mix, RATE) for name, mix in mixes.items()}, mixes


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """One OpenVINO export for both precisions (the precision is chosen when it is compiled)."""
    return tmp_path_factory.mktemp("exports")


@pytest.mark.slow
@pytest.mark.parametrize("path", [p for p in PATHS if p != "fp32"])
def test_fast_path_matches_fp32_on_real_shaped_weights(path, high_reference, exports):
    why = path_unavailable(path)
    if why:
        pytest.skip(f"{path} cannot run on this machine: {why}")
    reference_separator, references, mixes = high_reference
    config = SeparatorConfig(**HIGH, path=path, export_dir=str(exports))
    separator = StemSeparator(reference_separator.model, config, is_random=True)
    for name, mix in mixes.items():
        fractions: list[float] = []
        stems = separator.separate(mix, RATE, on_progress=fractions.append)
        assert separator.path == path, "the fast path fell back"
        assert fractions == [0.5, 1.0]
        assert np.abs(sum(stems.values()) - mix).max() < SUM_TOLERANCE
        for stem in STEM_NAMES:
            reference = references[name][stem]
            assert error_db(stems[stem], reference) < ERROR_DB, (name, stem, error_db(stems[stem], reference))
            assert abs(energy_db(stems[stem]) - energy_db(reference)) < ENERGY_DB, (name, stem)


def test_the_quality_bound_catches_a_path_that_drifts():
    """The bounds above fail on a stem 1.1 % off (about -39 dB) or 0.6 dB louder: they can break."""
    reference = synthetic_mix(1.0)
    assert not error_db(reference * 1.011, reference) < ERROR_DB
    assert not abs(energy_db(reference * 10 ** (0.6 / 20)) - energy_db(reference)) < ENERGY_DB


def test_auto_skips_the_openvino_export_for_random_weights_and_stand_ins_run_as_they_are(low, monkeypatch):
    monkeypatch.setattr(stems_paths, "openvino_usable", lambda: None)
    monkeypatch.setattr(stems_paths, "openvino_path", lambda *a, **k: pytest.fail("auto exported random weights"))
    separator = StemSeparator(low.model, SeparatorConfig(weights="random", size="low", segment_s=1.0,
                                                         overlap_s=0.25), is_random=True)
    separator.segment_fn()
    assert separator.path == ("fp32" if cpu_bf16() else "bf16")
    model = torch.nn.Linear(1, 1)
    model.sources = list(STEM_NAMES)
    stand_in = StemSeparator(model, SeparatorConfig(weights="random", path="bf16"), is_random=True)
    stand_in.segment_fn()
    assert stand_in.path == "fp32"
