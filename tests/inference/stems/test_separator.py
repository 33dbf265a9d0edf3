"""Stem separation: shapes, rates, the sum-to-mix rule, overlap-add, weights errors."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from inference.errors import Cancelled, ModelLoadError
from inference.stems import paths as stems_paths
from inference.stems import separator as stems
from inference.stems.separator import (
    STEM_NAMES,
    SUM_TOLERANCE,
    SeparatorConfig,
    StemSeparator,
    load_separator,
)


def noise(channels: int, seconds: float, rate: int, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal((channels, round(seconds * rate)))).astype(np.float32)


@pytest.fixture(scope="module")
def separator() -> StemSeparator:
    return load_separator(SeparatorConfig(weights="random", size="low", segment_s=1.0, overlap_s=0.25))


@pytest.mark.parametrize("rate", [32000, 44100, 48000])
@pytest.mark.parametrize("channels", [1, 2])
def test_stems_sum_to_the_mix_at_the_input_rate(separator, rate, channels):
    mix = noise(channels, 1.6, rate)
    stems = separator.separate(mix, rate)
    assert list(stems) == list(STEM_NAMES)
    for audio in stems.values():
        assert audio.shape == mix.shape and audio.dtype == np.float32
    assert np.abs(sum(stems.values()) - mix).max() < SUM_TOLERANCE


def test_a_subset_of_stems_is_returned_in_canonical_order(separator):
    stems = separator.separate(noise(2, 0.5, 48000), 48000, stems=["vocals", "drums"])
    assert list(stems) == ["drums", "vocals"]


def test_unknown_stem_is_an_error_naming_the_valid_ones(separator):
    with pytest.raises(ValueError, match="guitar.*drums, bass, other, vocals"):
        separator.separate(noise(2, 0.5, 48000), 48000, stems=["guitar"])


class ScaleModel(torch.nn.Module):
    """A stand-in separator: source i is the input times gains[i] (exact under overlap-add)."""

    sources = list(STEM_NAMES)

    def __init__(self) -> None:
        super().__init__()
        self.gains = torch.nn.Parameter(torch.tensor([0.1, 0.2, 0.3, 0.4]), requires_grad=False)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (1, 2, T) -> (1, 4, 2, T)
        self.calls += 1
        return x[:, None] * self.gains[None, :, None, None]


@pytest.mark.parametrize("seconds", [0.3, 1.0, 2.2, 5.03])
def test_overlap_add_over_chunks_reconstructs_a_linear_model_exactly(seconds):
    model = ScaleModel()
    separator = StemSeparator(model, SeparatorConfig(weights="random", segment_s=1.0, overlap_s=0.5), is_random=True)
    mix = noise(2, seconds, 44100) + 0.05
    fractions: list[float] = []
    stems = separator.separate(mix, 44100, on_progress=fractions.append)
    mean = mix.mean()  # input normalisation: the model sees (mix - mean) / std; each stem gets mean / 4 back
    for name, gain in zip(("drums", "bass", "vocals"), (0.1, 0.2, 0.4)):
        assert np.allclose(stems[name], mix * gain + mean * (0.25 - gain), atol=1e-5), name
    assert model.calls == max(1, int(np.ceil((seconds - 0.5) / 0.5)))
    assert fractions[-1] == 1.0 and fractions == sorted(fractions)


def test_cancel_between_chunks():
    separator = StemSeparator(ScaleModel(), SeparatorConfig(weights="random", segment_s=1.0, overlap_s=0.0),
                              is_random=True)
    with pytest.raises(Cancelled):
        separator.separate(noise(2, 3.0, 44100), 44100, should_cancel=lambda: True)


def test_missing_weights_file_says_how_to_get_weights(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist.*HDEMUCS_HIGH_MUSDB_PLUS"):
        load_separator(SeparatorConfig(weights=str(tmp_path / "nope.pt")))


def test_weights_file_for_the_wrong_size_is_a_clear_error(tmp_path):
    path = tmp_path / "low.pt"
    from torchaudio.models import hdemucs_low

    torch.save(hdemucs_low(sources=list(STEM_NAMES)).state_dict(), path)
    assert load_separator(SeparatorConfig(weights=str(path), size="low")).is_random is False
    with pytest.raises(ModelLoadError, match="hdemucs_medium"):
        load_separator(SeparatorConfig(weights=str(path), size="medium"))


@pytest.mark.parametrize("field, value", [("size", "huge"), ("segment_s", 0.1), ("overlap_s", 9.0)])
def test_bad_config_names_the_field(field, value):
    with pytest.raises(ModelLoadError, match=field.split("_")[0]):
        SeparatorConfig(**{field: value})


class SlowBuild:
    """A stand-in for ``inference.stems.separator.build_path``: each build blocks until released (no real export)."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.release = threading.Event()

    def __call__(self, path: str, model: torch.nn.Module, config: SeparatorConfig):
        self.calls.append(path)
        assert self.release.wait(30), "the slow build was never released"
        return stems_paths.torch_path(model, bf16=False)


@pytest.fixture
def slow_openvino(monkeypatch, tmp_path) -> tuple[StemSeparator, SlowBuild]:
    """Random low HDemucs asked for openvino-fp32 (OpenVINO taken as installed), its export not cached."""
    build = SlowBuild()
    monkeypatch.setattr(stems, "build_path", build)
    monkeypatch.setattr(stems_paths, "openvino_usable", lambda: None)
    config = SeparatorConfig(weights="random", size="low", segment_s=1.0, overlap_s=0.25, path="openvino-fp32",
                             export_dir=str(tmp_path))
    return load_separator(config), build


def test_a_pending_export_is_announced_and_built_once_however_many_wait(slow_openvino):
    separator, build = slow_openvino
    assert separator.planned_path() == "openvino-fp32" and separator.needs_preparation()
    separator.start_preparing(low_priority=True)  # what the daemon does at start
    separator.start_preparing()
    with pytest.raises(Cancelled, match="goes on for the next job"):
        separator.prepare(should_cancel=lambda: True)  # a cancelled job stops waiting, not the build
    assert separator.preparing() and separator.needs_preparation()
    waiters = [threading.Thread(target=separator.prepare) for _ in range(2)]
    for waiter in waiters:
        waiter.start()
    build.release.set()
    for waiter in waiters:
        waiter.join(30)
    stems_out = separator.separate(noise(2, 1.5, 44100), 44100)
    assert build.calls == ["openvino-fp32"] and separator.path == "openvino-fp32"
    assert not separator.needs_preparation() and set(stems_out) == set(STEM_NAMES)


def test_a_cached_export_or_a_pytorch_path_needs_no_announced_preparation(slow_openvino, separator):
    openvino, _ = slow_openvino
    stems.export_file_for(openvino.model, openvino.config).touch()
    assert not openvino.needs_preparation()  # compiling a cached export takes seconds, not minutes
    assert separator.planned_path() in ("fp32", "bf16") and not separator.needs_preparation()  # random, auto
