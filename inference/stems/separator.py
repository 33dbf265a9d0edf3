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

**Paths.** Each segment is computed by one of ``inference.stems.paths.PATHS`` (fp32, bf16 autocast,
OpenVINO), ``SeparatorConfig.path`` ("auto" picks by CPU feature and installed packages; with random
weights, the tests' weights, it skips the OpenVINO paths and their minutes-long export). A fast path
that fails to build or to run falls back to fp32 with one log line, for that segment and the rest;
``StemSeparator.path`` says which one runs now.

**Preparation.** A path is built once per separator, on its own thread (``StemSeparator.start_preparing``):
the daemon may start it at low priority when it starts, and a job waits for it (``StemSeparator.prepare``,
cancellable between polls; a cancelled wait leaves the preparation running for the next job), so one
separator never builds twice. ``StemSeparator.needs_preparation`` says whether that wait may be long (an
OpenVINO export not yet cached: about 3 minutes on 2 cores), so the job can say so first.

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
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr
import torch

from inference.errors import Cancelled, ModelLoadError
from inference.runtime.device import DeviceCheck, cpu_bf16
from inference.runtime.memory import out_of_memory_errors
from inference.stems import paths as stems_paths
from inference.stems.paths import PATHS, PathUnavailable, SegmentFn

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
    path: str = "auto"  # auto | fp32 | bf16 | openvino-fp32 | openvino-bf16 (inference/stems/paths.py)
    export_dir: str = ""  # where OpenVINO exports are cached; "" = beside the weights (see export_dir_for)

    def __post_init__(self) -> None:
        if self.path != "auto" and self.path not in PATHS:
            raise ModelLoadError(f"stems path must be auto or one of {', '.join(PATHS)}, got {self.path!r}")
        if self.size not in MODEL_SIZES:
            raise ModelLoadError(f"stems model size must be one of {', '.join(MODEL_SIZES)}, got {self.size!r}")
        if not 1.0 <= self.segment_s <= 60.0:
            raise ModelLoadError(f"segment_s must be from 1 to 60 seconds, got {self.segment_s!r}")
        if not 0.0 <= self.overlap_s <= self.segment_s / 2:
            raise ModelLoadError(f"overlap_s must be from 0 to segment_s / 2 ({self.segment_s / 2:g}), "
                                 f"got {self.overlap_s!r}")


ProgressFn = Callable[[float], None]
CancelFn = Callable[[], bool]
EXPORT_TYPICAL = "about 3 minutes on 2 cores"  # the one-time OpenVINO export, docs/benchmarks.md "Stems"
PREPARE_POLL_S = 0.25  # how often a job waiting for the preparation looks at its cancel flag


class StemSeparator:
    """A loaded HDemucs; ``separate`` is safe to call from one thread at a time."""

    def __init__(self, model: torch.nn.Module, config: SeparatorConfig, *, is_random: bool) -> None:
        self.model = model.eval()
        self.config = config
        self.is_random = is_random
        self.sources: tuple[str, ...] = tuple(model.sources)
        self.path = "fp32"  # the path that runs now; chosen on the first segment (an export may take minutes)
        self._segment_fn: SegmentFn | None = None
        self._preparer: threading.Thread | None = None
        self._prepared = threading.Event()
        self._preparer_lock = threading.Lock()

    def segment_fn(self) -> SegmentFn:
        """The chosen path's segment function, built on first use: the first candidate that builds, else fp32."""
        if self._segment_fn is None:
            self.prepare()
        assert self._segment_fn is not None
        return self._segment_fn

    # -- preparation: the path is built once, on its own thread --------------------------------------
    def preparing(self) -> bool:
        """A preparation thread is building the path now."""
        return self._preparer is not None and not self._prepared.is_set()

    def needs_preparation(self) -> bool:
        """Getting the path ready may take minutes: an OpenVINO export runs now or is still to be made."""
        if self._segment_fn is not None:
            return False
        if self.preparing():
            return True
        path = self.planned_path()
        if not path.startswith("openvino"):
            return False
        return not export_file_for(self.model, self.config).is_file()

    def planned_path(self) -> str:
        """The path the preparation will try first (it may still fall back to fp32)."""
        bf16_why, openvino_why = cpu_bf16(), stems_paths.openvino_usable()
        return next(path for path in self._candidates()
                    if not (bf16_why and "bf16" in path) and not (openvino_why and path.startswith("openvino")))

    def start_preparing(self, *, low_priority: bool = False) -> None:
        """Build the path on a thread unless one has started already (``low_priority``: nice +10 on Linux)."""
        with self._preparer_lock:
            if self._preparer is not None or self._segment_fn is not None:
                return
            self._preparer = threading.Thread(target=self._prepare_now, args=(low_priority,),
                                              name="continuo-stems-prepare", daemon=True)
            self._preparer.start()

    def prepare(self, should_cancel: CancelFn | None = None) -> None:
        """Wait until the path is built (starting the build if nobody has); ``Cancelled`` when ``should_cancel``
        says so between polls, leaving the build running for the next job."""
        if self._segment_fn is not None:
            return
        self.start_preparing()
        while not self._prepared.wait(PREPARE_POLL_S):
            if should_cancel is not None and should_cancel():
                raise Cancelled("stem separation cancelled while its path was being prepared "
                                "(the preparation goes on for the next job)")
        if self._segment_fn is None:  # the build thread died on something _build_path does not catch
            self.path, self._segment_fn = "fp32", stems_paths.torch_path(self.model, bf16=False)

    def _prepare_now(self, low_priority: bool) -> None:
        if low_priority:
            _lower_thread_priority()
        try:
            self.path, self._segment_fn = self._build_path()
        except Exception:  # _build_path falls back itself; this is a bug's last resort, prepare() uses fp32
            log.exception("stems: preparing the separation path failed; using fp32")
        finally:
            self._prepared.set()

    def _candidates(self) -> tuple[str, ...]:
        device = next(self.model.parameters()).device
        if device.type != "cpu" or not stems_paths.is_hdemucs(self.model):
            return ("fp32",)
        candidates = candidate_paths(self.config.path)
        if self.is_random and self.config.path == "auto":  # tests' weights: no minutes-long export on auto
            candidates = tuple(path for path in candidates if not path.startswith("openvino"))
        return candidates

    def _build_path(self) -> tuple[str, SegmentFn]:
        candidates = self._candidates()
        if candidates == ("fp32",):
            return "fp32", stems_paths.torch_path(self.model, bf16=False)
        for path in candidates:
            try:
                return path, build_path(path, self.model, self.config)
            except Exception as exc:  # a fast path may fail in many ways (missing package, exporter error)
                if path != "fp32":
                    log.warning("stems: path %s unavailable, trying the next (%s: %s)", path, type(exc).__name__,
                                str(exc).splitlines()[0][:200] if str(exc) else "")
        return "fp32", stems_paths.torch_path(self.model, bf16=False)

    def _run_segment(self, segment: torch.Tensor) -> torch.Tensor:
        """One (1, 2, L) segment through the chosen path; a fast path that fails falls back to fp32 for good."""
        run = self.segment_fn()
        if self.path == "fp32":
            return run(segment)
        try:
            return run(segment)
        except Exception as exc:  # the fallback must never break a job
            log.warning("stems: path %s failed (%s: %s); falling back to fp32", self.path, type(exc).__name__,
                        str(exc).splitlines()[0][:200] if str(exc) else "")
            self.path, self._segment_fn = "fp32", stems_paths.torch_path(self.model, bf16=False)
            return self._segment_fn(segment)

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
            estimate = self._run_segment(padded[None].to(device))[0, ..., :length].float().cpu()  # (S, 2, length)
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


def candidate_paths(requested: str) -> tuple[str, ...]:
    """The paths to try for ``requested`` ("auto": by CPU feature and installed packages), fp32 last."""
    if requested != "auto":
        return (requested,) if requested == "fp32" else (requested, "fp32")
    return stems_paths.auto_order(cpu_bf16() is None, stems_paths.openvino_usable() is None)


def pick_path(requested: str = "auto") -> str:
    """The path ``requested`` runs on this machine for trained weights, without building it (an OpenVINO
    export may take minutes; a path that then fails still falls back to fp32)."""
    bf16_why, openvino_why = cpu_bf16(), stems_paths.openvino_usable()
    return next(path for path in candidate_paths(requested)
                if not (bf16_why and "bf16" in path) and not (openvino_why and path.startswith("openvino")))


def describe_paths(requested: str = "auto") -> list[DeviceCheck]:
    """`continuo doctor`: each separation path on this machine, and the one ``requested`` picks."""
    bf16_why = cpu_bf16()
    openvino_why = stems_paths.openvino_usable()
    chosen = pick_path(requested)
    exported = " (exported on the first stems job, minutes on a small CPU, then cached beside the weights)"
    reasons = {
        "fp32": (True, "PyTorch float32: the reference, and every path's fallback"),
        "bf16": (bf16_why is None, bf16_why or "PyTorch CPU autocast to bfloat16 (oneDNN, AVX-512 BF16 / AMX)"),
        "openvino-fp32": (openvino_why is None, openvino_why or f"OpenVINO float32{exported}"),
        "openvino-bf16": (openvino_why is None and bf16_why is None,
                          openvino_why or bf16_why or f"OpenVINO bfloat16{exported}"),
    }
    rows = [DeviceCheck(f"stems={requested}", True,
                        f"picks {chosen} on this machine (random test weights: PyTorch paths only)")]
    return rows + [DeviceCheck(f"stems={path}", *reasons[path]) for path in PATHS]


def build_path(path: str, model: torch.nn.Module, config: SeparatorConfig) -> SegmentFn:
    """One path's segment function; ``PathUnavailable`` (or the exporter's error) when it cannot run here."""
    if path in ("fp32", "bf16"):
        if path == "bf16" and cpu_bf16():
            raise PathUnavailable(cpu_bf16())
        return stems_paths.torch_path(model, bf16=path == "bf16")
    if path == "openvino-bf16" and cpu_bf16():
        raise PathUnavailable(cpu_bf16())
    frames = round(config.segment_s * MODEL_SAMPLE_RATE)
    return stems_paths.openvino_path(model, frames=frames, bf16=path == "openvino-bf16",
                                     export_dir=export_dir_for(config), identity=_export_identity(model, config))


def _export_identity(model: torch.nn.Module, config: SeparatorConfig) -> str:
    return f"{config.size}-{stems_paths.weights_identity(model)}"


def export_file_for(model: torch.nn.Module, config: SeparatorConfig) -> Path:
    """The OpenVINO export these weights and ``segment_s`` use (present once exported)."""
    return stems_paths.export_file(export_dir_for(config), _export_identity(model, config),
                                   round(config.segment_s * MODEL_SAMPLE_RATE))


def _lower_thread_priority(step: int = 10) -> None:
    """Nice this thread (and the threads it starts) by ``step``: Linux nices threads one by one; elsewhere
    the call would nice the whole process, so it is left alone."""
    if not sys.platform.startswith("linux"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + step))
    except OSError as exc:
        log.debug("stems: cannot lower the preparation thread's priority: %s", exc)


def export_dir_for(config: SeparatorConfig) -> Path:
    """Where a path's export is cached: ``export_dir`` if set, beside a state-dict file, in the torch hub's
    checkpoints for the pipeline, else the user cache (random weights)."""
    if config.export_dir:
        return Path(config.export_dir).expanduser()
    if config.weights == "pipeline":
        return Path(torch.hub.get_dir()) / "checkpoints" / "continuo-stems"
    if config.weights != "random":
        path = Path(config.weights).expanduser()
        return path.with_name(path.name + ".continuo-stems")
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()
    return cache / "continuo" / "stems"


def empty_cuda_cache() -> None:
    """Free what the generator no longer references and hand CUDA's cached blocks back before separating
    (on the CPU only the collection runs)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def weights_missing(config: SeparatorConfig) -> str:
    """Why ``load_separator`` cannot load this config's weights from this machine, in a few words ("" when it can):
    a state-dict file that is not there, or the pipeline's weights not yet in the torch hub cache (its first use
    downloads them, which fails offline). Checks files only: cheap enough to ask on every status."""
    if config.weights == "random":
        return ""
    if config.weights == "pipeline":
        from torchaudio.pipelines import HDEMUCS_HIGH_MUSDB_PLUS

        # where torchaudio's _download_asset keeps it: <torch hub dir>/torchaudio/<key>
        cached = (Path(torch.hub.get_dir()) / "torchaudio" / HDEMUCS_HIGH_MUSDB_PLUS._model_path).is_file()
        return "" if cached else "the stems weights are not on this machine yet (downloaded once, online)"
    return "" if Path(config.weights).expanduser().is_file() else "the stems weights file is missing"


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
