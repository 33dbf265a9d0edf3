"""Stem separation with HDemucs: a mix becomes drums, bass, other and vocals.

Weights come from (``SeparatorConfig.weights``):

- ``"pipeline"``: torchaudio's ``HDEMUCS_HIGH_MUSDB_PLUS`` (downloaded once into
  the torch hub cache on a machine with network; offline it is a
  ``ModelLoadError`` saying how to get the weights);
- a path to a local state-dict file (``torch.save(model.state_dict(), path)``)
  for the chosen ``size`` (low, medium or high);
- ``"random"``: a randomly initialised model (tests and benchmarks only: its
  stems are noise-shaped nonsense, but they go through the same code).

Separation runs at the model's rate (44.1 kHz) in segments of ``segment_s``
with ``overlap_s`` of linear cross-fade between neighbours, normalised by the
summed window (overlap-add), so memory stays bounded however long the file is.

**Stems sum to the mix.** The four stems are made to sum to the input exactly
(within float32 rounding, ``SUM_TOLERANCE``): after the stems are resampled
back to the input rate, ``other`` is replaced by ``mix - drums - bass - vocals``.
With trained weights the residual the model missed lands in ``other`` (where
demucs puts what is neither drums, bass nor vocals anyway); with random
weights ``other`` is simply whatever the other three did not take.

This module never imports ``bridge``.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr
import torch

from inference.errors import Cancelled, ModelLoadError
from inference.memory import out_of_memory_errors

log = logging.getLogger("continuo.stems")

STEM_NAMES: tuple[str, ...] = ("drums", "bass", "other", "vocals")
MODEL_SAMPLE_RATE = 44100
MODEL_SIZES: tuple[str, ...] = ("low", "medium", "high")
SUM_TOLERANCE = 1e-4  # max |mix - sum(stems)| per sample, full scale 1.0
_PIPELINE_HELP = (
    "download them once on a machine with network: "
    "python -c 'import torchaudio; torchaudio.pipelines.HDEMUCS_HIGH_MUSDB_PLUS.get_model()' "
    "(they land in the torch hub cache, ~/.cache/torch/hub), or set stems_weights to a local "
    "state-dict file saved with torch.save(model.state_dict(), path)"
)


@dataclass(frozen=True)
class SeparatorConfig:
    """How to build the separator; ``weights`` is "pipeline", "random" or a state-dict path."""

    weights: str = "pipeline"
    size: str = "high"  # low | medium | high (the pipeline is always high)
    device: str = "cpu"
    segment_s: float = 10.0
    overlap_s: float = 1.0
    seed: int = 0  # for "random" weights

    def __post_init__(self) -> None:
        if self.size not in MODEL_SIZES:
            raise ModelLoadError(f"stems model size must be one of {', '.join(MODEL_SIZES)}, got {self.size!r}")
        if not 1.0 <= self.segment_s <= 60.0:
            raise ModelLoadError(f"segment_s must be from 1 to 60 seconds, got {self.segment_s!r}")
        if not 0.0 <= self.overlap_s <= self.segment_s / 2:
            raise ModelLoadError(f"overlap_s must be from 0 to segment_s / 2 ({self.segment_s / 2:g}), "
                                 f"got {self.overlap_s!r}")


ProgressFn = Callable[[float], None]
CancelFn = Callable[[], bool]


class StemSeparator:
    """A loaded HDemucs; ``separate`` is safe to call from one thread at a time."""

    def __init__(self, model: torch.nn.Module, config: SeparatorConfig, *, is_random: bool) -> None:
        self.model = model.eval()
        self.config = config
        self.is_random = is_random
        self.sources: tuple[str, ...] = tuple(model.sources)

    @out_of_memory_errors("separating stems", "try a smaller stems_model_size, fewer bars, or --device cpu")
    @torch.inference_mode()
    def separate(
        self,
        audio: np.ndarray,
        sample_rate: int,
        *,
        stems: Sequence[str] = STEM_NAMES,
        on_progress: ProgressFn | None = None,
        should_cancel: CancelFn | None = None,
    ) -> dict[str, np.ndarray]:
        """``audio`` (C, T) float at ``sample_rate`` -> {stem: (C, T) float32 at ``sample_rate``}.

        All four stems are computed (the sum rule needs them); ``stems`` picks
        the ones returned, in the order of ``STEM_NAMES``.
        """
        unknown = [s for s in stems if s not in STEM_NAMES]
        if unknown:
            raise ValueError(f"unknown stem(s) {', '.join(unknown)}; valid: {', '.join(STEM_NAMES)}")
        mix = _as_audio(audio)
        channels, frames = mix.shape
        stereo = mix if channels == 2 else np.repeat(mix.mean(axis=0, keepdims=True), 2, axis=0)
        at_model_rate = _resample(stereo, sample_rate, MODEL_SAMPLE_RATE)
        started = time.monotonic()
        separated = self._separate_chunks(torch.from_numpy(at_model_rate), on_progress, should_cancel)  # (S, 2, T')
        out: dict[str, np.ndarray] = {}
        for index, name in enumerate(self.sources):
            stem = _resample(separated[index].numpy(), MODEL_SAMPLE_RATE, sample_rate)
            stem = _fit_length(stem, frames)
            out[name] = stem if channels == 2 else stem.mean(axis=0, keepdims=True).repeat(channels, axis=0)
        out["other"] = mix - out["drums"] - out["bass"] - out["vocals"]
        log.debug("separated %.2f s of audio in %.2f s", frames / sample_rate, time.monotonic() - started)
        return {name: np.ascontiguousarray(out[name], dtype=np.float32) for name in STEM_NAMES if name in stems}

    def _separate_chunks(self, mix: torch.Tensor, on_progress: ProgressFn | None,
                         should_cancel: CancelFn | None) -> torch.Tensor:
        """(2, T) at the model rate -> (S, 2, T): overlap-add of windowed segments."""
        device = next(self.model.parameters()).device
        frames = mix.shape[-1]
        segment = round(self.config.segment_s * MODEL_SAMPLE_RATE)
        overlap = min(round(self.config.overlap_s * MODEL_SAMPLE_RATE), segment // 2)
        hop = segment - overlap
        ref = mix.mean(0)
        mean, std = ref.mean(), ref.std().clamp_min(1e-8) if frames > 1 else torch.tensor(1.0)
        normalised = (mix - mean) / std
        window = _overlap_window(segment, overlap)
        out = torch.zeros(len(self.sources), 2, frames)
        weight = torch.zeros(frames)
        starts = list(range(0, max(frames - overlap, 1), hop))
        for count, start in enumerate(starts, 1):
            if should_cancel is not None and should_cancel():
                raise Cancelled("stem separation cancelled")
            chunk = normalised[:, start:start + segment]
            length = chunk.shape[-1]
            padded = torch.nn.functional.pad(chunk, (0, segment - length))
            estimate = self.model(padded[None].to(device))[0, ..., :length].float().cpu()  # (S, 2, length)
            out[..., start:start + length] += estimate * window[:length]
            weight[start:start + length] += window[:length]
            if on_progress is not None:
                on_progress(count / len(starts))
        return out / weight.clamp_min(1e-8) * std + mean / len(self.sources)


def load_separator(config: SeparatorConfig) -> StemSeparator:
    """Build HDemucs and load its weights; ``ModelLoadError`` says how to get them when missing."""
    from torchaudio.models import hdemucs_high, hdemucs_low, hdemucs_medium

    builders = {"low": hdemucs_low, "medium": hdemucs_medium, "high": hdemucs_high}
    if config.weights == "random":
        torch.manual_seed(config.seed)
        model = builders[config.size](sources=list(STEM_NAMES))
        log.warning("stems: RANDOM %s HDemucs weights (tests only: the stems are not real separations)",
                    config.size)
        return StemSeparator(model.to(config.device), config, is_random=True)
    if config.weights == "pipeline":
        return StemSeparator(_load_pipeline().to(config.device), config, is_random=False)
    path = Path(config.weights).expanduser()
    if not path.is_file():
        raise ModelLoadError(f"stems weights file {str(path)!r} does not exist; {_PIPELINE_HELP}")
    model = builders[config.size](sources=list(STEM_NAMES))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state.get("state_dict", state) if isinstance(state, dict) else state)
    except Exception as exc:  # torch.load and load_state_dict raise many types for a wrong file
        raise ModelLoadError(f"cannot load stems weights {str(path)!r} into hdemucs_{config.size}: {exc}; "
                             "check that the file is a state dict for that size") from exc
    return StemSeparator(model.to(config.device), config, is_random=False)


def empty_cuda_cache() -> None:
    """Free what the generator no longer references and hand CUDA's cached blocks back before separating
    (on the CPU only the collection runs)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _load_pipeline() -> torch.nn.Module:
    from torchaudio.pipelines import HDEMUCS_HIGH_MUSDB_PLUS

    try:
        return HDEMUCS_HIGH_MUSDB_PLUS.get_model()
    except Exception as exc:  # URLError offline, HTTPError, a corrupt download...
        raise ModelLoadError(f"the HDemucs stems weights are not on this machine and cannot be downloaded "
                             f"({type(exc).__name__}: {exc}); {_PIPELINE_HELP}") from exc


def _overlap_window(segment: int, overlap: int) -> torch.Tensor:
    """Ones with linear ramps of ``overlap`` frames at both ends, never zero."""
    window = torch.ones(segment)
    if overlap > 0:
        ramp = torch.arange(1, overlap + 1, dtype=torch.float32) / (overlap + 1)
        window[:overlap] = ramp
        window[-overlap:] = ramp.flip(0)
    return window


def _resample(audio: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    if source_rate == target_rate or audio.shape[-1] == 0:
        return np.ascontiguousarray(audio, dtype=np.float32)
    out = soxr.resample(np.ascontiguousarray(audio.T), source_rate, target_rate, quality="VHQ")
    return np.ascontiguousarray(out.reshape(-1, audio.shape[0]).T, dtype=np.float32)


def _fit_length(audio: np.ndarray, frames: int) -> np.ndarray:
    if audio.shape[1] >= frames:
        return audio[:, :frames]
    return np.pad(audio, ((0, 0), (0, frames - audio.shape[1])))


def _as_audio(audio: np.ndarray) -> np.ndarray:
    """``separate``'s own check: its callers (the bridge, benchmarks, tests) hand it arrays directly, and
    inference never imports the bridge's checker (bridge.audio.samples), so it keeps this one."""
    audio = np.asarray(audio)
    if audio.ndim == 1:
        audio = audio[np.newaxis]
    if audio.ndim != 2 or audio.shape[0] == 0 or not np.issubdtype(audio.dtype, np.floating):
        raise ValueError(f"audio must be a float (channels, frames) array, got {audio.dtype} {audio.shape}")
    return np.ascontiguousarray(audio, dtype=np.float32)
