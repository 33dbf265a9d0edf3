"""Stems for the DAW: the separator as the daemon configures it, and the stem outputs of a job.

Decisions:

- Stems are separated from the **delivered mix** (after the master chain,
  loop fold and loudness), so without stem chains they sum to ``mix.wav``
  within ``inference.stems.separator.SUM_TOLERANCE`` (the separator puts the residual in
  ``other``). They keep the mix's gain: no per-stem loudness normalisation
  (that would break the sum); their own LUFS and true peak are measured and
  reported per output.
- A preset's ``[[stem_chains.<stem>]]`` chain runs on that stem afterwards,
  with tails handled like the mix (folded in loop mode, a ``<stem>-tail``
  output otherwise, dropped with ``hard_cut``). A stem with a chain no longer
  sums to the mix, by design.
- The separator is loaded on first use and kept warm; separation starts after
  the generator's intermediate tensors are freed (``empty_cuda_cache``).
- Where the path ``auto`` picks needs a one-time OpenVINO export (trained
  weights, OpenVINO installed, nothing cached yet), the daemon starts it when it
  starts, on a low-priority thread (``LazySeparator.start_background_preparation``,
  setting ``stems_prepare_at_start``), so the first stems job usually finds it
  ready; a job that comes earlier waits for that one with a ``preparing`` stage.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from bridge.audio.effects import EffectSpec
from bridge.audio.render import RenderedAudio, map_channels, measured, resample, shape_length
from bridge.errors import BadRequest
from inference.stems.separator import (
    EXPORT_TYPICAL,
    SeparatorConfig,
    StemSeparator,
    empty_cuda_cache,
    load_separator,
    pick_path,
)

ProgressFn = Callable[[float], None]
log = logging.getLogger("continuo.stems")


def separator_config(weights: str, size: str, device: str) -> SeparatorConfig:
    """The separator the daemon's settings ask for (``device`` "auto" picks CUDA when present)."""
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    return SeparatorConfig(weights=weights, size=size, device=device)


class LazySeparator:
    """Loads the separator on first use and keeps it: the daemon's one, shared by every worker (and the background
    preparation); thread-safe."""

    def __init__(self, config: SeparatorConfig, loader: Callable[[SeparatorConfig], StemSeparator] = load_separator):
        self.config = config
        self._loader = loader
        self._separator: StemSeparator | None = None
        self._lock = threading.Lock()

    def __call__(self) -> StemSeparator:
        with self._lock:
            if self._separator is None:
                self._separator = self._loader(self.config)
            return self._separator

    def start_background_preparation(self) -> threading.Thread | None:
        """Daemon start: load the separator and, if its path still needs its one-time export, make it on a
        low-priority thread. Only where that can be: trained weights (random ones, the tests', never export on
        auto), the CPU, and a path that picks OpenVINO here; the thread, or None when there is nothing to do."""
        if self.config.weights == "random" or self.config.device != "cpu" \
                or not pick_path(self.config.path).startswith("openvino"):
            return None
        thread = threading.Thread(target=self._prepare_in_background, name="continuo-stems-load", daemon=True)
        thread.start()
        return thread

    def _prepare_in_background(self) -> None:
        try:
            separator = self()
        except Exception as exc:  # the first stems job reports the same error to its client
            log.warning("stems: not preparing the separator at start: %s", str(exc).splitlines()[0][:300])
            return
        if not separator.needs_preparation():
            return
        started = time.monotonic()
        log.info("stems: preparing path=%s in the background at low priority (a one-time export, %s)",
                 separator.planned_path(), EXPORT_TYPICAL)
        separator.start_preparing(low_priority=True)
        separator.prepare()
        log.info("stems: background preparation done path=%s preparing_s=%.1f", separator.path,
                 time.monotonic() - started)


def stem_outputs(
    separator: StemSeparator,
    mix: RenderedAudio,
    *,
    stems: Sequence[str],
    chains: Mapping[str, Sequence[EffectSpec]],
    loop: bool,
    hard_cut: bool,
    on_progress: ProgressFn | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> dict[str, RenderedAudio]:
    """name -> rendered stem (and ``<stem>-tail`` for chains with a tail), in ``STEMS`` order."""
    empty_cuda_cache()
    separated = separator.separate(mix.audio, mix.sample_rate, stems=tuple(stems), on_progress=on_progress,
                                   should_cancel=should_cancel)
    return apply_stem_chains(separated, mix.sample_rate, chains=chains, loop=loop, hard_cut=hard_cut)


def apply_stem_chains(stems: Mapping[str, np.ndarray], sample_rate: int, *, chains: Mapping[str, Sequence[EffectSpec]],
                      loop: bool, hard_cut: bool) -> dict[str, RenderedAudio]:
    """A preset's per-stem chains (``Preset.stem_chains``) run on their stems; tails as for the mix."""
    outputs: dict[str, RenderedAudio] = {}
    for name, audio in stems.items():
        chain = chains.get(name, ())
        tail = None
        if chain:
            audio, tail = shape_length(audio, sample_rate, frames=audio.shape[1], chain=chain, loop=loop,
                                       hard_cut=hard_cut)
        outputs[name] = measured(audio, sample_rate)
        if tail is not None:
            outputs[f"{name}-tail"] = measured(tail, sample_rate)
    return outputs


def input_stems(
    separator: StemSeparator,
    audio: np.ndarray,
    rate: int,
    *,
    sample_rate: int,
    stems: Sequence[str],
    source: str,
    on_progress: ProgressFn | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> dict[str, RenderedAudio]:
    """/continuo/stems: the input (C, T) at ``rate`` -> stems at the session's ``sample_rate``, input level."""
    if audio.shape[0] > 2:
        audio = map_channels(audio, 2)
    at_session_rate = resample(audio, rate, sample_rate)
    if at_session_rate.shape[1] == 0:
        raise BadRequest(f"input file {source} has no audio frames; send a file with sound in it")
    separated = separator.separate(at_session_rate, sample_rate, stems=tuple(stems),
                                   on_progress=on_progress, should_cancel=should_cancel)
    return {name: measured(stem, sample_rate) for name, stem in separated.items()}
