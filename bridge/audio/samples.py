"""The sample arrays the audio wing passes around: (C, T) float32, C >= 1 channels, T frames.

``as_audio`` is the one check every audio function runs on the arrays it is handed (the model's
output, a decoded file, a chain's result). A broken array is the audio's fault, never the
client's: it raises ``AudioError`` (code ``audio_error``).
"""

from __future__ import annotations

import numpy as np

from bridge.errors import AudioError


def as_audio(audio: np.ndarray, *, finite: bool = False) -> np.ndarray:
    """``audio`` as a contiguous (C, T) float32 array; with ``finite``, NaN and infinities are refused too."""
    if not isinstance(audio, np.ndarray) or audio.ndim != 2 or audio.shape[0] == 0:
        raise AudioError(f"audio must be a (channels, frames) array, got shape {np.shape(audio)}")
    if not np.issubdtype(audio.dtype, np.floating):
        raise AudioError(f"audio must be floating point, got {audio.dtype}")
    if finite and not np.isfinite(audio).all():
        raise AudioError("audio contains non-finite samples (nan or inf)")
    return np.ascontiguousarray(audio, dtype=np.float32)
