"""A musician's folder of recordings made into training clips for a style adapter (issue #29's data preparation).

`prepare_clips(folder, ...)`: every file of the folder (sorted by name, hidden files left out) is read with
libsndfile (`files.read_audio`), mapped to the model's channel count and resampled to its rate (`render.map_channels`,
`render.resample`, soxr VHQ), listened to once (`analysis.analyze`: tempo, downbeats, key) and cut into clips of at
most `clip_s`:

- **At downbeats** where the tempo was heard with confidence (`MIN_BPM_CONFIDENCE`) and downbeats were found: a clip
  starts on a downbeat and holds the whole bars that fit in clip_s, so every clip starts on a "one" as the model's
  renders do. A bar longer than clip_s falls back to fixed lengths.
- **Fixed lengths** otherwise, from the file's start.

A piece shorter than `MIN_CLIP_FRACTION` of clip_s (a file's tail, a short file) is skipped, and so is a clip whose
RMS level is under `SILENCE_DBFS` (silence, room noise between takes). Each clip is captioned from the musician's
text plus the tempo and key heard in its file, where they were heard with confidence ("dusty soul drums, 92 bpm,
A minor").

The `PreparedClips.report()` says what was used and what was skipped, and why, per file and per clip. Refused with a
clear error (BadRequest / NotFound, in the words of the CLI and the wire): a folder that does not exist or holds no
files, a folder none of whose files can be read as audio (each file's reason listed), less than `MIN_TOTAL_S` of
usable audio. Nothing in the folder is changed: the clips live in memory; a file's sha256 goes into the report (and
the adapter's card).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bridge.audio.analysis import analyze
from bridge.audio.files import read_audio
from bridge.audio.inbox import sha256_of
from bridge.audio.render import map_channels, resample
from bridge.errors import BadRequest, BridgeError, NotFound

MIN_TOTAL_S = 60.0  # less usable audio than this teaches the model nothing but the clips themselves
MIN_CLIP_FRACTION = 0.5  # a piece shorter than this share of clip_s is skipped
SILENCE_DBFS = -50.0  # a clip whose RMS level is under this is silence
MIN_BPM_CONFIDENCE = 0.3  # cut at downbeats, and caption the tempo, only when the tempo was heard this surely
MIN_KEY_CONFIDENCE = 0.5  # caption the key only when it was heard this surely


@dataclass(frozen=True)
class Clip:
    """One training clip: (C, T) float32 at the model's rate, with its caption and where it came from."""

    audio: np.ndarray
    caption: str
    source: str  # the file's name in the folder
    start_s: float  # in the file, before resampling

    @property
    def frames(self) -> int:
        return self.audio.shape[-1]


@dataclass
class SourceFile:
    """What was done with one file of the folder."""

    name: str
    sha256: str = ""
    seconds: float = 0.0
    bpm: float = 0.0  # 0: no tempo heard
    key: str = ""
    cut: str = ""  # "downbeats" or "fixed"
    clips: int = 0
    used_s: float = 0.0
    skipped: str = ""  # why the whole file was skipped; "" when it was read
    skipped_clips: list[str] = field(default_factory=list)  # "12.0-16.5 s: silent (-63 dBFS)"

    def to_json(self) -> dict:
        return {"name": self.name, "sha256": self.sha256, "seconds": round(self.seconds, 3), "bpm": round(self.bpm, 2),
                "key": self.key, "cut": self.cut, "clips": self.clips, "used_s": round(self.used_s, 3),
                "skipped": self.skipped, "skipped_clips": list(self.skipped_clips)}


@dataclass
class PreparedClips:
    """The clips of a folder and what was done with every file."""

    folder: Path
    sample_rate: int
    clip_s: float
    clips: list[Clip]
    files: list[SourceFile]

    @property
    def used_s(self) -> float:
        return sum(clip.frames for clip in self.clips) / self.sample_rate

    @property
    def minutes(self) -> float:
        return self.used_s / 60.0

    def report(self) -> str:
        """What was used and what was skipped, and why: one line per file, one per skipped piece."""
        used = [f for f in self.files if not f.skipped]
        lines = [f"{self.folder}: {len(self.clips)} clips of up to {self.clip_s:g} s, {self.used_s / 60:.1f} min of "
                 f"audio from {len(used)} of {len(self.files)} files"]
        for source in self.files:
            if source.skipped:
                lines.append(f"  skipped {source.name}: {source.skipped}")
                continue
            heard = ", ".join(part for part in (f"{source.bpm:.1f} bpm" if source.bpm else "", source.key) if part)
            lines.append(f"  used {source.name}: {source.clips} clips, {source.used_s:.1f} of {source.seconds:.1f} s,"
                         f" cut at {source.cut}" + (f" ({heard})" if heard else ""))
            lines.extend(f"    skipped {piece}" for piece in source.skipped_clips)
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"folder": str(self.folder), "sample_rate": self.sample_rate, "clip_s": self.clip_s,
                "clips": len(self.clips), "minutes": round(self.minutes, 3),
                "files": [source.to_json() for source in self.files]}


def prepare_clips(folder: Path, *, sample_rate: int, channels: int, clip_s: float, text: str = "",
                  min_total_s: float = MIN_TOTAL_S) -> PreparedClips:
    """The training clips of every audio file in folder (module docstring); errors say what to do next."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise NotFound(f"no such folder of recordings: {folder}")
    paths = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if not paths:
        raise BadRequest(f"{folder} holds no files: put the recordings to learn from (WAV, FLAC, AIFF, OGG, MP3) there")
    if not (clip_s > 0 and math.isfinite(clip_s)):
        raise BadRequest(f"clip_s must be a positive number of seconds, got {clip_s}")
    clips: list[Clip] = []
    files: list[SourceFile] = []
    for path in paths:
        source = SourceFile(name=path.name)
        files.append(source)
        try:
            audio, rate = read_audio(path)
        except BridgeError as error:
            source.skipped = f"not readable as audio ({error.message})"
            continue
        if not np.isfinite(audio).all():
            source.skipped = "holds NaN or infinite samples"
            continue
        source.sha256, source.seconds = sha256_of(path), audio.shape[1] / rate
        clips.extend(cut_file(source, audio, rate, sample_rate=sample_rate, channels=channels, clip_s=clip_s,
                              text=text))
    prepared = PreparedClips(folder=folder, sample_rate=sample_rate, clip_s=clip_s, clips=clips, files=files)
    if all(source.skipped for source in files):
        raise BadRequest(f"none of the {len(files)} files in {folder} could be used:\n"
                         + "\n".join(f"  {source.name}: {source.skipped}" for source in files)
                         + "\nexport the recordings as WAV or FLAC and try again")
    if prepared.used_s < min_total_s:
        raise BadRequest(f"only {prepared.used_s:.1f} s of usable audio in {folder}; a style needs at least "
                         f"{min_total_s:.0f} s (10 minutes is what the design plans for): add recordings\n"
                         + prepared.report())
    return prepared


def cut_file(source: SourceFile, audio: np.ndarray, rate: int, *, sample_rate: int, channels: int, clip_s: float,
             text: str) -> list[Clip]:
    """One file's clips (filling in source); its tempo and key are heard once, on the whole file."""
    heard = analyze(audio, rate)
    bpm = heard.bpm if heard.bpm_confidence >= MIN_BPM_CONFIDENCE else 0.0
    key = heard.key if heard.key_confidence >= MIN_KEY_CONFIDENCE else ""
    source.bpm, source.key = bpm, key
    spans = bar_spans(heard.downbeats_s, heard.bar_s, source.seconds, clip_s) if bpm and heard.downbeats_s else []
    source.cut = "downbeats" if spans else "fixed"
    spans = spans or fixed_spans(source.seconds, clip_s)
    if spans and spans[0][0] > 0.05:
        source.skipped_clips.append(f"0.0-{spans[0][0]:.1f} s: before the first downbeat")
    caption = caption_for(text, bpm, key)
    mapped = resample(map_channels(audio, channels), rate, sample_rate)
    clips = []
    for start_s, end_s in spans:
        where = f"{start_s:.1f}-{end_s:.1f} s"
        if end_s - start_s < MIN_CLIP_FRACTION * clip_s:
            source.skipped_clips.append(f"{where}: shorter than {MIN_CLIP_FRACTION * clip_s:g} s")
            continue
        piece = mapped[:, round(start_s * sample_rate):round(end_s * sample_rate)]
        level = rms_dbfs(piece)
        if level < SILENCE_DBFS:
            source.skipped_clips.append(f"{where}: silent ({level:.0f} dBFS RMS)")
            continue
        clips.append(Clip(audio=np.ascontiguousarray(piece), caption=caption, source=source.name, start_s=start_s))
    source.clips = len(clips)
    source.used_s = sum(clip.frames for clip in clips) / sample_rate
    if not clips:
        source.skipped = "no usable clip: " + "; ".join(source.skipped_clips or ["too short"])
    return clips


def bar_spans(downbeats_s, bar_s: float, seconds: float, clip_s: float) -> list[tuple[float, float]]:
    """(start, end) of clips from downbeat to downbeat, the whole bars that fit in clip_s each; the grid's bars
    continue past the last heard downbeat. [] when one bar is longer than clip_s."""
    bars_per_clip = int(clip_s / bar_s + 1e-9) if bar_s > 0 else 0
    if bars_per_clip < 1:
        return []
    starts = list(downbeats_s)
    while starts[-1] + bar_s < seconds:
        starts.append(starts[-1] + bar_s)
    spans = []
    for index in range(0, len(starts), bars_per_clip):
        start = starts[index]
        end = starts[index + bars_per_clip] if index + bars_per_clip < len(starts) else seconds
        spans.append((start, min(end, seconds)))
    return spans


def fixed_spans(seconds: float, clip_s: float) -> list[tuple[float, float]]:
    """(start, end) of clips of clip_s from the start; the last one shorter."""
    count = max(1, math.ceil(seconds / clip_s - 1e-9))
    return [(i * clip_s, min((i + 1) * clip_s, seconds)) for i in range(count)]


def caption_for(text: str, bpm: float, key: str) -> str:
    """The musician's words plus what was heard: "dusty soul drums, 92 bpm, A minor"."""
    parts = [text.strip()] if text.strip() else []
    if bpm:
        parts.append(f"{bpm:.0f} bpm")
    if key:
        parts.append(key)
    return ", ".join(parts)


def rms_dbfs(audio: np.ndarray) -> float:
    power = float(np.mean(np.square(audio, dtype=np.float64))) if audio.size else 0.0
    return 10.0 * math.log10(power) if power > 0 else -math.inf
