"""Basic Pitch on onnxruntime: audio in, note posteriors and notes out.

The model (nmp.onnx, see the package docstring) reads 22050 Hz mono in windows of ``WINDOW_SAMPLES`` (2 s less a
hop) and gives, per 256-sample frame, 88 note and 88 onset posteriors (A0 to C8) and 264 pitch contours. As in
basic-pitch's ``run_inference``, the audio gets half an overlap of silence in front, windows start every
``HOP_SAMPLES`` (30 frames of overlap), and half the overlap is cut from each side of every window's output
before they are joined.

Frame times are computed per window (``frame_times``): window i starts at ``i * HOP_SAMPLES`` of the padded audio
and its frame j sits at ``j * FFT_HOP`` in it, so a joined frame k lies ``FRAME_S * k`` less 188 samples per
window before it (142 frames kept per window span 36352 samples; windows advance 36164). basic-pitch writes this
as a correction per 172 frames plus a "magic" 1.8 ms; ours is the same slope without the staircase, with the
offset measured on synthetic notes (``TIME_OFFSET_S``). The joined frames are kept up to the clip's end by
these times; basic-pitch keeps ``floor(samples * 86 / 22050)`` of them, which (joined frames come 86.6 a second)
drops the last 0.6 % of the clip: the last 0.2 s of 30 s, and any note that starts there.

Cost: about 70 ms per window on one core of this machine, 19 windows for 30 s; ``threads`` sets onnxruntime's
threads (0: as many as cores). Windows go to the session ``BATCH_WINDOWS`` at a time, so memory stays bounded
for any length (a window's posteriors are about 0.3 MB).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr

from inference.errors import Cancelled, InferenceError, ModelLoadError
from inference.transcription.notes import Note, NoteSettings, decode_notes

MODEL_PATH = Path(__file__).with_name("nmp.onnx")
MODEL_SHA256 = "2c3c1d144bfa61ad236e92e169c13535c880469a12a047d4e73451f2c059a0ec"
SAMPLE_RATE = 22050
FFT_HOP = 256
FRAME_S = FFT_HOP / SAMPLE_RATE
WINDOW_SAMPLES = SAMPLE_RATE * 2 - FFT_HOP  # 43844
OVERLAP_FRAMES = 30
OVERLAP_SAMPLES = OVERLAP_FRAMES * FFT_HOP
HOP_SAMPLES = WINDOW_SAMPLES - OVERLAP_SAMPLES
FRAMES_PER_WINDOW = 172
KEPT_FRAMES = FRAMES_PER_WINDOW - OVERLAP_FRAMES  # 142 per window once the overlap is cut
TIME_OFFSET_S = 0.0  # frame k's posterior describes the audio this long after frame_times' k
BATCH_WINDOWS = 8
INPUT_NAME = "serving_default_input_2:0"
OUTPUT_NAMES = ("StatefulPartitionedCall:1", "StatefulPartitionedCall:2", "StatefulPartitionedCall:0")  # note,
# onset, contour


@dataclass(frozen=True)
class Posteriors:
    """The model's output for one clip: per frame (T), note and onset posteriors (T, 88) and their times."""

    frames: np.ndarray
    onsets: np.ndarray
    times_s: np.ndarray


class BasicPitch:
    """The loaded model. ``transcribe`` is thread-safe: onnxruntime sessions may be run from several threads."""

    def __init__(self, path: Path = MODEL_PATH, *, threads: int = 0) -> None:
        self.path = Path(path)
        self.session = load_session(self.path, threads=threads)

    def posteriors(self, audio: np.ndarray, sample_rate: int, *,
                   on_progress: Callable[[float], None] | None = None,
                   should_cancel: Callable[[], bool] | None = None) -> Posteriors:
        """The posteriors of audio (C, T) float at sample_rate (any rate; mixed to mono and resampled)."""
        mono = to_model_input(audio, sample_rate)
        padded = np.concatenate([np.zeros(OVERLAP_SAMPLES // 2, np.float32), mono])
        starts = list(range(0, padded.size, HOP_SAMPLES))
        frames, onsets = [], []
        for first in range(0, len(starts), BATCH_WINDOWS):
            if should_cancel is not None and should_cancel():
                raise Cancelled("transcription cancelled")
            batch = np.stack([_window(padded, start) for start in starts[first: first + BATCH_WINDOWS]])
            note, onset, _contour = self.session.run(list(OUTPUT_NAMES), {INPUT_NAME: batch[:, :, None]})
            half = OVERLAP_FRAMES // 2
            frames.append(note[:, half:-half].reshape(-1, note.shape[-1]))
            onsets.append(onset[:, half:-half].reshape(-1, onset.shape[-1]))
            if on_progress is not None:
                on_progress(min(1.0, (first + BATCH_WINDOWS) / len(starts)))
        joined = np.concatenate(frames)
        times = frame_times(joined.shape[0])
        count = int(np.searchsorted(times, mono.size / SAMPLE_RATE))  # the frames inside the clip
        return Posteriors(frames=joined[:count], onsets=np.concatenate(onsets)[:count], times_s=times[:count])

    def transcribe(self, audio: np.ndarray, sample_rate: int, settings: NoteSettings = NoteSettings(), *,
                   on_progress: Callable[[float], None] | None = None,
                   should_cancel: Callable[[], bool] | None = None) -> list[Note]:
        """The notes in audio (C, T) at sample_rate, sorted by start."""
        posteriors = self.posteriors(audio, sample_rate, on_progress=on_progress, should_cancel=should_cancel)
        return decode_notes(posteriors.frames, posteriors.onsets, posteriors.times_s, FRAME_S, settings)


def to_model_input(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """(T',) float32 mono at SAMPLE_RATE (soxr HQ, as librosa.load resamples for basic-pitch)."""
    if not isinstance(audio, np.ndarray) or audio.ndim != 2 or audio.shape[0] == 0:
        raise InferenceError(f"audio must be a (channels, frames) array, got shape {np.shape(audio)}")
    mono = np.ascontiguousarray(audio.mean(axis=0), dtype=np.float32)
    if sample_rate != SAMPLE_RATE and mono.size:
        mono = soxr.resample(mono, sample_rate, SAMPLE_RATE, quality="HQ").astype(np.float32)
    return mono


def _window(padded: np.ndarray, start: int) -> np.ndarray:
    window = padded[start: start + WINDOW_SAMPLES]
    return window if window.size == WINDOW_SAMPLES else np.pad(window, (0, WINDOW_SAMPLES - window.size))


def frame_times(count: int) -> np.ndarray:
    """Seconds from the audio's start of each joined frame (see the module docstring)."""
    k = np.arange(count)
    drift = (KEPT_FRAMES * FFT_HOP - HOP_SAMPLES) / SAMPLE_RATE
    return k * FRAME_S - (k // KEPT_FRAMES) * drift + TIME_OFFSET_S


_SESSIONS: dict[tuple[Path, int], object] = {}
_SESSIONS_LOCK = threading.Lock()


def load_session(path: Path = MODEL_PATH, *, threads: int = 0):
    """An onnxruntime session of the model file (one per file and thread count, kept for the process).

    A missing onnxruntime, a missing or altered model file, or one onnxruntime cannot read is a ModelLoadError
    saying what to do.
    """
    key = (Path(path).resolve(), int(threads))
    with _SESSIONS_LOCK:
        if key not in _SESSIONS:
            _SESSIONS[key] = _new_session(Path(path), threads)
        return _SESSIONS[key]


def _new_session(path: Path, threads: int):
    try:
        import onnxruntime
    except ImportError as exc:
        raise ModelLoadError("audio to MIDI needs onnxruntime, a dependency of continuo: reinstall it "
                             "(pip install 'onnxruntime>=1.17')") from exc
    if not path.is_file():
        raise ModelLoadError(f"the Basic Pitch model file {path} is missing: reinstall continuo (the file ships "
                             "inside the package, inference/transcription/nmp.onnx)")
    data = path.read_bytes()
    if path.resolve() == MODEL_PATH.resolve() and hashlib.sha256(data).hexdigest() != MODEL_SHA256:
        raise ModelLoadError(f"the Basic Pitch model file {path} is not the one continuo ships (its sha256 "
                             "differs): reinstall continuo")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = max(0, int(threads))
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return onnxruntime.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own types for a broken or foreign file
        raise ModelLoadError(f"onnxruntime cannot load the Basic Pitch model {path}: {exc}") from exc
