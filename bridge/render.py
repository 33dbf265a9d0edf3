"""Rendering generated audio for the DAW: bar-exact, at the session rate, mastered.

``render_mix`` runs, in order:

1. channel mapping: mono is duplicated to stereo; with ``channels=1`` the
   channels are averaged;
2. resampling with soxr (VHQ) from the model rate to the session rate;
3. the preset's master chain, on the whole signal padded with silence up to
   ``frames``, so effect tails that fall inside the bar range are kept;
4. the exact cut to ``frames``. Whenever something is cut at the end (the
   input ran past ``frames``, or a master chain whose tail always runs past
   it), the last 5 ms (``FADE_OUT_S``) get a raised-cosine fade-out so the
   cut does not click. Without a chain and with input no longer than
   ``frames`` there is no fade;
5. loudness normalisation to ``preset.target_lufs`` with the true-peak ceiling
   ``preset.true_peak_db`` (``bridge.loudness``);
6. measurement of the final signal's loudness and true peak for the report.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
import soxr

from bridge.effects import apply_chain
from bridge.errors import BadRequest
from bridge.loudness import measure_lufs, normalize_loudness, true_peak_db
from bridge.presets import Preset

FADE_OUT_S = 0.005
RESAMPLE_QUALITY = "VHQ"


@dataclass(frozen=True)
class RenderedAudio:
    audio: np.ndarray  # (C, T) float32 at sample_rate
    sample_rate: int
    lufs: float
    peak_db: float  # true peak, dBTP

    @property
    def channels(self) -> int:
        return self.audio.shape[0]

    @property
    def frames(self) -> int:
        return self.audio.shape[1]

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate


def resample(audio: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """``audio`` (C, T) resampled with soxr VHQ to (C, ~T * target / source) float32."""
    audio = _check_audio(audio)
    _check_rate("source_rate", source_rate)
    _check_rate("target_rate", target_rate)
    if source_rate == target_rate or audio.shape[1] == 0:
        return audio.copy()
    out = soxr.resample(np.ascontiguousarray(audio.T), source_rate, target_rate, quality=RESAMPLE_QUALITY)
    return np.ascontiguousarray(out.reshape(-1, audio.shape[0]).T, dtype=np.float32)


def render_mix(
    audio: np.ndarray,
    source_rate: int,
    *,
    frames: int,
    sample_rate: int,
    preset: Preset,
    channels: int = 2,
) -> RenderedAudio:
    """The mastered mix: exactly ``frames`` frames of ``channels`` at ``sample_rate``.

    ``audio`` is (C, T) (or (T,) for mono) at ``source_rate``. See the module
    docstring for the steps.
    """
    if not isinstance(frames, numbers.Integral) or isinstance(frames, bool) or frames < 0:
        raise BadRequest(f"frames must be an integer >= 0, got {frames!r}")
    if isinstance(channels, bool) or channels not in (1, 2):
        raise BadRequest(f"channels must be 1 or 2, got {channels!r}")
    audio = _check_audio(audio[np.newaxis] if np.ndim(audio) == 1 else audio)
    mapped = map_channels(audio, channels)
    mixed = resample(mapped, source_rate, sample_rate)
    length = mixed.shape[1]
    if length < frames:
        mixed = np.pad(mixed, ((0, 0), (0, frames - length)))
    if preset.master:
        mixed = apply_chain(mixed, sample_rate, preset.master)
    cut = mixed[:, :frames].copy()
    if length > frames or preset.master:
        fade_out_(cut, round(FADE_OUT_S * sample_rate))
    final = normalize_loudness(
        cut, sample_rate, target_lufs=preset.target_lufs, true_peak_db=preset.true_peak_db
    )
    return RenderedAudio(
        audio=final,
        sample_rate=sample_rate,
        lufs=measure_lufs(final, sample_rate),
        peak_db=true_peak_db(final, sample_rate),
    )


def map_channels(audio: np.ndarray, channels: int) -> np.ndarray:
    """(C, T) -> (channels, T): mono duplicated, anything else averaged to mono first."""
    have = audio.shape[0]
    if have == channels:
        return audio
    mono = audio if have == 1 else audio.mean(axis=0, keepdims=True, dtype=np.float32)
    return mono if channels == 1 else np.repeat(mono, channels, axis=0)


def fade_out_(audio: np.ndarray, fade_frames: int) -> None:
    """Raised-cosine fade to zero over the last ``fade_frames`` frames, in place."""
    fade_frames = min(fade_frames, audio.shape[1])
    if fade_frames <= 0:
        return
    ramp = 0.5 * (1.0 + np.cos(np.linspace(0.0, np.pi, fade_frames)))
    audio[:, -fade_frames:] *= ramp.astype(np.float32)


def _check_audio(audio: np.ndarray) -> np.ndarray:
    if not isinstance(audio, np.ndarray) or audio.ndim != 2 or audio.shape[0] == 0:
        raise BadRequest(f"audio must be a (channels, frames) array, got shape {np.shape(audio)}")
    if not np.issubdtype(audio.dtype, np.floating):
        raise BadRequest(f"audio must be floating point, got {audio.dtype}")
    if not np.isfinite(audio).all():
        raise BadRequest("audio contains non-finite samples (nan or inf)")
    return np.ascontiguousarray(audio, dtype=np.float32)


def _check_rate(name: str, rate: int) -> None:
    if not isinstance(rate, numbers.Integral) or isinstance(rate, bool) or not 1000 <= rate <= 768000:
        raise BadRequest(f"{name} must be an integer from 1000 to 768000 Hz, got {rate!r}")
