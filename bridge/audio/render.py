"""Rendering generated audio for the DAW: bar-exact, at the session rate, mastered.

``render_mix`` runs, in order:

1. channel mapping: mono is duplicated to stereo; with ``channels=1`` the
   channels are averaged;
2. resampling with soxr (VHQ) from the model rate to the session rate, and
   dropping ``lead_frames`` from the start (a continuation generated from the
   input's end up to the next downbeat keeps only what follows the downbeat);
3. ``shape_length``: the source is cut to ``frames`` (plus, in loop mode, up
   to ``LOOP_CROSSFADE_S`` more for the crossfade) with a 5 ms
   (``FADE_OUT_S``) raised-cosine fade when something was cut, or padded with
   silence; the preset's master chain runs over it with ``TAIL_S`` of silence
   appended when the chain has a Reverb, Delay or VST3 (``TAIL_PLUGINS``;
   other chains get ``SHORT_TAIL_S``, used in loop mode only), so reverb and
   delay tails are computed, then:

   - loop mode: the material past ``frames`` folds into the head: an
     equal-power crossfade (sin/cos) over the crossfade region, and the effect
     tail after it is added onto the head (wrapping), so the file loops
     without a click and the reverb of the end rings into the start;
   - one-shot, ``hard_cut`` off (default): the file is cut at ``frames`` and
     the audible effect tail (down to ``TAIL_FLOOR_DB``) is returned as
     ``RenderedAudio.tail``: ``mix`` followed by ``tail`` is the uncut signal;
   - ``hard_cut`` on: the effect tail is dropped (with the 5 ms fade at the
     cut in one-shot mode; loop mode still crossfades the source);
4. loudness normalisation to ``preset.target_lufs`` with the true-peak ceiling
   ``preset.true_peak_db`` (``bridge.audio.loudness``); the tail gets the same gain;
5. measurement of the final signal's loudness and true peak for the report.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
import soxr

from bridge.audio.effects import apply_chain
from bridge.audio.loudness import measure_lufs, normalize_loudness, true_peak_db
from bridge.audio.presets import Preset
from bridge.audio.samples import as_audio
from bridge.errors import BadRequest

FADE_OUT_S = 0.005
RESAMPLE_QUALITY = "VHQ"
LOOP_CROSSFADE_S = 0.1  # extra source the worker asks the model for in loop mode
TAIL_S = 6.0  # effect tail computed past the last bar
TAIL_FLOOR_DB = -80.0  # a tail is trimmed after its last sample above this (dBFS)
TAIL_PLUGINS = frozenset({"Reverb", "Delay", "vst3"})  # chains with these ring on after the input ends
SHORT_TAIL_S = 0.05  # filter and dynamics ringing, folded into the head in loop mode


@dataclass(frozen=True)
class RenderedAudio:
    audio: np.ndarray  # (C, T) float32 at sample_rate
    sample_rate: int
    lufs: float
    peak_db: float  # true peak, dBTP
    tail: np.ndarray | None = None  # (C, T') effect tail after the last bar (one-shot, hard_cut off)

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
    audio = as_audio(audio, finite=True)
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
    loop: bool = False,
    hard_cut: bool = False,
    lead_frames: int = 0,
) -> RenderedAudio:
    """The mastered mix: exactly ``frames`` frames of ``channels`` at ``sample_rate``.

    ``audio`` is (C, T) (or (T,) for mono) at ``source_rate``. See the module
    docstring for the steps.
    """
    if not isinstance(frames, numbers.Integral) or isinstance(frames, bool) or frames < 0:
        raise BadRequest(f"frames must be an integer >= 0, got {frames!r}")
    if isinstance(channels, bool) or channels not in (1, 2):
        raise BadRequest(f"channels must be 1 or 2, got {channels!r}")
    audio = as_audio(audio[np.newaxis] if np.ndim(audio) == 1 else audio, finite=True)
    mapped = map_channels(audio, channels)
    if not isinstance(lead_frames, numbers.Integral) or isinstance(lead_frames, bool) or lead_frames < 0:
        raise BadRequest(f"lead_frames must be an integer >= 0, got {lead_frames!r}")
    mixed = resample(mapped, source_rate, sample_rate)[:, lead_frames:]
    cut, tail = shape_length(mixed, sample_rate, frames=frames, chain=preset.master, loop=loop, hard_cut=hard_cut)
    final = normalize_loudness(
        cut, sample_rate, target_lufs=preset.target_lufs, true_peak_db=preset.true_peak_db
    )
    if tail is not None:
        tail = _follow_gain(cut, final, tail, sample_rate, preset.true_peak_db)
    return measured(final, sample_rate, tail=tail)


def measured(audio: np.ndarray, sample_rate: int, *, tail: np.ndarray | None = None) -> RenderedAudio:
    """``audio`` with its loudness and true peak measured for the report."""
    return RenderedAudio(audio=audio, sample_rate=sample_rate, lufs=measure_lufs(audio, sample_rate),
                         peak_db=true_peak_db(audio, sample_rate), tail=tail)


def shape_length(
    audio: np.ndarray,
    sample_rate: int,
    *,
    frames: int,
    chain=(),
    loop: bool = False,
    hard_cut: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """``audio`` (C, T) at ``sample_rate`` -> (exactly ``frames`` frames, effect tail or None).

    Runs ``chain`` with its tail handled as the module docstring describes. In
    loop mode up to ``LOOP_CROSSFADE_S`` of ``audio`` past ``frames`` becomes
    the crossfade into the head.
    """
    fade = round(FADE_OUT_S * sample_rate)
    crossfade = min(round(LOOP_CROSSFADE_S * sample_rate), max(audio.shape[1] - frames, 0), frames) if loop else 0
    keep = frames + crossfade
    source = audio[:, :keep].copy()
    if audio.shape[1] > keep:
        fade_out_(source, fade)
    if source.shape[1] < keep:
        source = np.pad(source, ((0, 0), (0, keep - source.shape[1])))
    rings = any(getattr(spec, "plugin", "") in TAIL_PLUGINS for spec in chain)
    with_tail = bool(chain) and not hard_cut and frames > 0 and (rings or loop)
    tail_s = (TAIL_S if rings else SHORT_TAIL_S) if with_tail else 0.0
    processed = apply_chain(source, sample_rate, chain, tail_s=tail_s) if chain else source
    body = processed[:, :frames].copy()
    if loop:
        fold_into_head_(body, processed[:, frames:], crossfade)
        return body, None
    tail = _audible(processed[:, frames:]) if with_tail else None
    if tail is None and (audio.shape[1] > frames or chain):
        fade_out_(body, fade)
    elif tail is not None:
        fade_out_(tail, fade)
    return body, tail


def fold_into_head_(body: np.ndarray, rest: np.ndarray, crossfade: int) -> None:
    """Loop ``body`` in place: equal-power crossfade of ``rest[:, :crossfade]`` over the head,
    then the remainder of ``rest`` added on from ``crossfade`` onwards, wrapping around."""
    frames = body.shape[1]
    if frames == 0:
        return
    if crossfade > 0:
        theta = (np.arange(crossfade) + 0.5) / crossfade * (np.pi / 2)
        body[:, :crossfade] = body[:, :crossfade] * np.sin(theta) + rest[:, :crossfade] * np.cos(theta)
    remainder = rest[:, crossfade:]
    position = crossfade
    while remainder.shape[1]:
        span = min(frames - position, remainder.shape[1])
        body[:, position:position + span] += remainder[:, :span]
        remainder = remainder[:, span:]
        position = (position + span) % frames


def _audible(tail: np.ndarray) -> np.ndarray | None:
    """``tail`` up to its last sample above ``TAIL_FLOOR_DB``; None when it never is."""
    loud = np.flatnonzero(np.abs(tail).max(axis=0) > 10 ** (TAIL_FLOOR_DB / 20))
    return None if loud.size == 0 else tail[:, : loud[-1] + 1].copy()


def _follow_gain(before: np.ndarray, after: np.ndarray, tail: np.ndarray, sample_rate: int,
                 ceiling_db: float) -> np.ndarray | None:
    """The tail with the gain loudness normalisation gave the body (least squares), under the ceiling."""
    energy = float(np.vdot(before, before))
    gain = float(np.vdot(before, after)) / energy if energy > 0 else 1.0
    tail = (tail * gain).astype(np.float32)
    peak = true_peak_db(tail, sample_rate)
    if peak > ceiling_db:
        tail *= np.float32(10 ** ((ceiling_db - peak) / 20))
    return _audible(tail)


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


def _check_rate(name: str, rate: int) -> None:
    if not isinstance(rate, numbers.Integral) or isinstance(rate, bool) or not 1000 <= rate <= 768000:
        raise BadRequest(f"{name} must be an integer from 1000 to 768000 Hz, got {rate!r}")
