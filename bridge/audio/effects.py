"""Effect chains: a preset's list of ``EffectSpec`` becomes a ``pedalboard.Pedalboard``.

Built-in plugins are named by their pedalboard class name and take pedalboard's
own keyword parameters (units in the names: ``threshold_db``, ``delay_seconds``).
``PLUGIN_PARAMS`` lists the supported plugins and the valid range of each
parameter. pedalboard rejects unknown parameters and some out-of-range values
itself, but silently accepts others (a negative ``cutoff_frequency_hz``, a
``gain_db`` of 1000, ``threshold_db`` of ``true``), so every value is checked
against the table first and then by instantiating the plugin.

``plugin = "vst3"`` loads an external plugin with ``pedalboard.load_plugin``;
its ``path`` parameter is required (and must exist), ``plugin_name`` picks one
plugin out of a multi-plugin bundle, and every other parameter is set by the
name the plugin reports in ``.parameters``. It is loaded at build time; a
plugin that cannot be loaded is a ``BadRequest`` (the preset is wrong), never a
crash. A plugin that throws while processing, or output that is broken, is an
``AudioError`` (code ``audio_error``): the request was fine, the audio failed.

``Convolution`` takes ``impulse_response_filename`` (in a preset, relative to
the preset file; it must exist); ``quality`` of ``Resample`` and
``GSMFullRateCompressor`` is a ``pedalboard.Resample.Quality`` name, and
``BrickwallLimiter.true_peak`` a boolean.

Filter frequencies at or above the Nyquist frequency of the rate being
processed are clamped to ``NYQUIST_FRACTION * sample_rate``, so a preset
written for 48 kHz still works in a 22.05 kHz session.
"""

from __future__ import annotations

import math
import numbers
import os
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pedalboard

from bridge.audio.samples import as_audio
from bridge.errors import AudioError, BadRequest

ParamValue = float | int | bool | str

VST3 = "vst3"
NYQUIST_FRACTION = 0.45

_FREQ_HZ = (10.0, 20000.0)
_UNIT = (0.0, 1.0)
_THRESHOLD_DB = (-60.0, 0.0)
_ATTACK_MS = (0.01, 1000.0)
_RELEASE_MS = (1.0, 5000.0)
_LADDER_MODES = tuple(pedalboard.LadderFilter.Mode.__members__)
_RESAMPLE_QUALITIES = tuple(pedalboard.Resample.Quality.__members__)
_BOOL = ("<bool>",)  # a parameter that takes true or false
_PATH = ("<path>",)  # a file path (relative to the preset file in presets); it must exist
PATH_PARAMS = frozenset({"impulse_response_filename"})

# plugin -> parameter -> (min, max) inclusive, or the tuple of valid strings.
PLUGIN_PARAMS: Mapping[str, Mapping[str, tuple[float, float] | tuple[str, ...]]] = {
    "Bitcrush": {"bit_depth": (1.0, 32.0)},
    "Chorus": {
        "rate_hz": (0.0, 99.0),
        "depth": _UNIT,
        "centre_delay_ms": (1.0, 100.0),
        "feedback": (-0.95, 0.95),
        "mix": _UNIT,
    },
    "BrickwallLimiter": {
        "ceiling_db": _THRESHOLD_DB,
        "release_ms": _RELEASE_MS,
        "lookahead_ms": (0.1, 100.0),
        "true_peak": _BOOL,
    },
    "Clipping": {"threshold_db": _THRESHOLD_DB},
    "Convolution": {"impulse_response_filename": _PATH, "mix": _UNIT},
    "Compressor": {
        "threshold_db": _THRESHOLD_DB,
        "ratio": (1.0, 100.0),
        "attack_ms": _ATTACK_MS,
        "release_ms": _RELEASE_MS,
    },
    "Delay": {"delay_seconds": (0.0, 30.0), "feedback": _UNIT, "mix": _UNIT},
    "Distortion": {"drive_db": (0.0, 60.0)},
    "GSMFullRateCompressor": {"quality": _RESAMPLE_QUALITIES},
    "Gain": {"gain_db": (-60.0, 24.0)},
    "HighShelfFilter": {"cutoff_frequency_hz": _FREQ_HZ, "gain_db": (-24.0, 24.0), "q": (0.05, 20.0)},
    "HighpassFilter": {"cutoff_frequency_hz": _FREQ_HZ},
    "Invert": {},
    "LadderFilter": {
        "mode": _LADDER_MODES,
        "cutoff_hz": _FREQ_HZ,
        "resonance": _UNIT,
        "drive": (1.0, 100.0),
    },
    "Limiter": {"threshold_db": _THRESHOLD_DB, "release_ms": _RELEASE_MS},
    "LowShelfFilter": {"cutoff_frequency_hz": _FREQ_HZ, "gain_db": (-24.0, 24.0), "q": (0.05, 20.0)},
    "LowpassFilter": {"cutoff_frequency_hz": _FREQ_HZ},
    "MP3Compressor": {"vbr_quality": (0.0, 10.0)},
    "NoiseGate": {
        "threshold_db": (-100.0, 0.0),
        "ratio": (1.0, 100.0),
        "attack_ms": _ATTACK_MS,
        "release_ms": _RELEASE_MS,
    },
    "PeakFilter": {"cutoff_frequency_hz": _FREQ_HZ, "gain_db": (-24.0, 24.0), "q": (0.05, 20.0)},
    "Phaser": {
        "rate_hz": (0.0, 99.0),
        "depth": _UNIT,
        "centre_frequency_hz": _FREQ_HZ,
        "feedback": (-0.95, 0.95),
        "mix": _UNIT,
    },
    "PitchShift": {"semitones": (-72.0, 72.0)},
    "Resample": {"target_sample_rate": (1000.0, 192000.0), "quality": _RESAMPLE_QUALITIES},
    "Reverb": {
        "room_size": _UNIT,
        "damping": _UNIT,
        "wet_level": _UNIT,
        "dry_level": _UNIT,
        "width": _UNIT,
        "freeze_mode": _UNIT,
    },
}

_FREQUENCY_PARAMS = frozenset({"cutoff_frequency_hz", "cutoff_hz", "centre_frequency_hz"})


@dataclass(frozen=True)
class EffectSpec:
    """One effect of a chain: a plugin name and its parameters (read-only)."""

    plugin: str
    params: Mapping[str, ParamValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", types.MappingProxyType(dict(self.params)))


def check_effect(spec: EffectSpec) -> list[tuple[str, str]]:
    """Every problem with ``spec`` as ``(key, reason)``; empty when it is valid.

    Built-ins are checked against ``PLUGIN_PARAMS`` and by instantiating the
    plugin; for ``vst3`` only the parameter types and the path are checked here,
    the rest when the plugin is loaded by ``build_pedalboard``.
    """
    if spec.plugin == VST3:
        return _check_vst3(spec)
    table = PLUGIN_PARAMS.get(spec.plugin)
    if table is None:
        valid = ", ".join([*sorted(PLUGIN_PARAMS), VST3])
        return [("plugin", f"unknown plugin {spec.plugin!r}; valid: {valid}")]
    problems = [
        (name, reason)
        for name, value in spec.params.items()
        if (reason := _check_param(spec.plugin, table, name, value))
    ]
    if not problems:
        try:
            _instantiate(spec)
        except Exception as exc:  # pedalboard raises TypeError/ValueError, plugins may raise more
            problems.append(("plugin", f"pedalboard rejected {spec.plugin}: {exc}"))
    return problems


def build_pedalboard(
    chain: Sequence[EffectSpec], *, sample_rate: int | None = None
) -> pedalboard.Pedalboard:
    """A ``Pedalboard`` with one plugin per spec, in order.

    With ``sample_rate`` given, filter frequencies are clamped below Nyquist.
    Raises ``BadRequest`` naming the effect, the parameter and what to fix.
    """
    return pedalboard.Pedalboard(
        [_build_plugin(index, spec, sample_rate) for index, spec in enumerate(chain)]
    )


def apply_chain(
    audio: np.ndarray,
    sample_rate: int,
    chain: Sequence[EffectSpec] | pedalboard.Pedalboard,
    *,
    tail_s: float = 0.0,
) -> np.ndarray:
    """Process ``audio`` (C, T) through ``chain`` from a reset state.

    ``tail_s`` seconds of silence are appended first so reverb and delay tails
    are kept: the result is (C, T + round(tail_s * sample_rate)) float32, with
    the channel count unchanged. ``chain`` may be a built ``Pedalboard`` (to
    reuse loaded VST3 instances; not thread-safe) or a sequence of specs.
    """
    audio = as_audio(audio)
    if not (math.isfinite(tail_s) and tail_s >= 0.0):
        raise BadRequest(f"tail_s must be a finite number >= 0, got {tail_s!r}")
    tail_frames = round(tail_s * sample_rate)
    if tail_frames:
        audio = np.pad(audio, ((0, 0), (0, tail_frames)))
    board = chain if isinstance(chain, pedalboard.Pedalboard) else build_pedalboard(chain, sample_rate=sample_rate)
    if len(board) == 0 or audio.shape[1] == 0:
        return audio.copy()
    # pedalboard guesses the layout from the shape (the smaller side is channels):
    # make very short audio longer than it is wide, then cut the padding off.
    short = max(0, audio.shape[0] + 1 - audio.shape[1])
    try:
        out = board.process(np.pad(audio, ((0, 0), (0, short))), float(sample_rate), reset=True)
    except Exception as exc:  # pedalboard and plugins raise many types; report, never crash
        raise AudioError(f"effect chain failed while processing: {exc}") from exc
    out = out[:, : audio.shape[1]]
    if out.shape != audio.shape:
        raise AudioError(f"effect chain changed the shape {audio.shape} to {out.shape}")
    if not np.isfinite(out).all():
        raise AudioError("effect chain produced non-finite samples; lower feedback, resonance or gain")
    return np.ascontiguousarray(out, dtype=np.float32)


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_param(plugin: str, table: Mapping, name: str, value: object) -> str:
    allowed = table.get(name)
    if allowed is None:
        valid = ", ".join(table) or "none"
        return f"unknown parameter {name!r} for {plugin}; valid: {valid}"
    if allowed is _BOOL:
        return "" if isinstance(value, bool) else f"must be true or false, got {value!r}"
    if allowed is _PATH:
        if not isinstance(value, str) or not os.path.isfile(value):
            return f"must be the path of an existing file (relative to the preset file), got {value!r}"
        return ""
    if isinstance(allowed[0], str):
        if not isinstance(value, str) or value not in allowed:
            return f"must be one of {', '.join(allowed)}, got {value!r}"
        return ""
    lo, hi = allowed
    if not _is_number(value):
        return f"must be a number from {lo:g} to {hi:g}, got {type(value).__name__} {value!r}"
    if not lo <= value <= hi:  # also rejects nan
        return f"must be from {lo:g} to {hi:g}, got {value!r}"
    return ""


def _check_vst3(spec: EffectSpec) -> list[tuple[str, str]]:
    problems = []
    path = spec.params.get("path")
    if not isinstance(path, str) or not path:
        problems.append(("path", "vst3 needs a path to the plugin file or bundle"))
    elif not os.path.exists(path):
        problems.append(("path", f"no such plugin file or bundle {path!r}"))
    name = spec.params.get("plugin_name")
    if name is not None and not isinstance(name, str):
        problems.append(("plugin_name", f"must be a string, got {name!r}"))
    for key, value in spec.params.items():
        if not isinstance(value, (bool, int, float, str)):
            problems.append((key, f"must be a number, boolean or string, got {type(value).__name__}"))
        elif isinstance(value, float) and not math.isfinite(value):
            problems.append((key, f"must be finite, got {value!r}"))
    return problems


def _instantiate(spec: EffectSpec, sample_rate: int | None = None) -> pedalboard.Plugin:
    kwargs = dict(spec.params)
    if "mode" in kwargs and spec.plugin == "LadderFilter":
        kwargs["mode"] = pedalboard.LadderFilter.Mode.__members__[kwargs["mode"]]
    if "quality" in kwargs:
        kwargs["quality"] = pedalboard.Resample.Quality.__members__[kwargs["quality"]]
    if sample_rate is not None:
        for key in _FREQUENCY_PARAMS.intersection(kwargs):
            kwargs[key] = min(float(kwargs[key]), NYQUIST_FRACTION * sample_rate)
    return getattr(pedalboard, spec.plugin)(**kwargs)


def _build_plugin(index: int, spec: EffectSpec, sample_rate: int | None) -> pedalboard.Plugin:
    where = f"effect {index} ({spec.plugin})"
    problems = check_effect(spec)
    if problems:
        raise BadRequest(f"{where}: " + "; ".join(f"{key}: {reason}" for key, reason in problems))
    if spec.plugin == VST3:
        return _load_vst3(where, spec)
    return _instantiate(spec, sample_rate)


def _load_vst3(where: str, spec: EffectSpec) -> pedalboard.Plugin:
    path = str(spec.params["path"])
    try:
        plugin = pedalboard.load_plugin(path, plugin_name=spec.params.get("plugin_name"))
    except Exception as exc:  # load_plugin raises ImportError, RuntimeError, ValueError...
        raise BadRequest(
            f"{where}: cannot load {path!r}: {' '.join(str(exc).split())}; "
            "check that it is a VST3 built for this platform"
        ) from exc
    for key, value in spec.params.items():
        if key in ("path", "plugin_name"):
            continue
        if key not in plugin.parameters:
            valid = ", ".join(sorted(plugin.parameters))
            raise BadRequest(f"{where}: unknown parameter {key!r}; this plugin has: {valid}")
        try:
            setattr(plugin, key, value)
        except (TypeError, ValueError) as exc:
            raise BadRequest(f"{where}: {key}: {exc}") from exc
    return plugin
