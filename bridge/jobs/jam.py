"""The jam: a live stream generated a bar at a time ahead of the playhead, locked to the session's bars.

A `JamSession` runs two threads. Its generator makes bar after bar with the engine (whose torch work runs on the
engine's compute thread, as every job's does: inference/api.py:Compute), each continuing the stream's own recent
codes (`GenerationRequest.prompt_codes`: a sliding context of `context_bars`, kept as codes, never re-encoded
audio), and hands each bar to the outputs (`bridge/audio/playback.py:JamSink`) as soon as it is made: the lead
over the playhead is the buffer. Its watch thread keeps time: when the next bar is due within `guard_s` and the
generator has not made it, the last bar is played again at the bar line (a held bar, said in /continuo/jam/state),
never a gap or a click mid-bar; the generated bar then takes the next free bar line. A bar the measured speed says
will be late is held at once, not at the last moment: on a busy machine the watch itself was once held up and a
held bar went out 0.38 s after its line (docs/benchmarks.md, "Jam").

Kept stream. Where the engine offers it (Capability.CODE_STREAM: our MusicGen engine, inference/musicgen/
code_stream.py), the jam's bars come from one `CodeStream` per jam that keeps the decoder's KV cache and delay
pattern from bar to bar: a bar costs its own frames' steps, not its context prefilled again (CFG: two rows). The
requests stay what they were (the context as `prompt_codes`): the stream continues its state when they are its own
end, and otherwise starts over from them, as a per-bar request would: a bank recalled, CFG turned on or off by a
guidance change, or the stream past `keep_cache_s` (0: the model's 30 s window; MusicGen's absolute positions
cannot slide, so a long jam prefills its context once per window, not once per bar). A prompt or preset recomputes
only the cross-attention keys and values (the stream's history stays); temperature, guidance and top-k are the
sampler's; a tempo change only changes the frames the next bar asks for. The stream's steps run one per call on the
engine's compute thread, so renders interleave with a jam's bar and never corrupt its state (tested). Elsewhere (the
compiled engine; `keep_cache` off) every bar is a request of its own that prefills its context, as before; so is a
bar whose context and frames pass what the stream may hold (many context_bars at a slow tempo): never a refusal.
A bar that fails or is cancelled leaves the stream nothing to continue: its next request starts over.

Unwanted bars. A bar being made that will not sound (a stop landed before it, or the jam closes) stops decoding at
the model's next step (`should_cancel`: Cancelled), kept stream or not, and the jam ends stopped, not failed.

Bar-exact. The model makes 50 frames a second and a bar is rarely a whole number of frames (4 beats at 127 BPM:
94.49 frames, 60472.4 samples at 32 kHz). The stream keeps one timeline in samples: bar n spans
[round(start_n), round(start_n + exact_n)), the fractional remainder carried to the next bar, so bars never drift
from the clock (their lengths differ by one sample at most); frames are generated past each bar's end by at least
the crossfade, and that overhang is the next bar's context. The seam: each new bar starts with a raised-cosine
crossfade (`crossfade_s`, 10 ms) from the previous decode's rendition of the same samples (its overhang) into the
new decode's (whose codec saw the context's last frames: `GeneratedAudio.lead_in`). The two agree but at the
previous decode's edge (the codec is not causal), so the seam is inaudible; a repeated bar crossfades the same way.

Controls land at a bar line, never mid-bar. A control that changes the sound (prompt, preset, temperature, guidance,
bpm, mute, keep_loop, a bank recall) lands at the first bar not yet made when it arrives, answered with that bar
(/continuo/jam/scheduled): the bars already handed out (the lead: `lookahead_bars`, one or two bars on a model that
keeps up) are in the outputs' buffers, the clients' hands and the recording as they were made, and remaking them
would cost the very time the lead buys, so they play as made. Stop is the exception, because nothing needs making:
it lands at the end of the bar playing (`heard_bar`: the first bar line still to come, `STOP_MARGIN_S` ahead of now
so the word reaches the outputs first), and every output drops the bars after it that it already holds
(`JamSink.stop_after`: the device ends at that bar's last frame, clients are told in /continuo/jam/state 'stopping'
whose bar is the last to sound, the take ends there). prompt,
preset (with its temperature and guidance), temperature, guidance change what the model makes (the bar's
`prompt_id` counts them); bpm changes the
internal clock's tempo at that bar (other clocks are the host's: refused); keep_loop N repeats the N bars before that
bar line until keep_loop 0 (generation pauses meanwhile); mute sends silence. Banks save the stream's context and
settings and recall them at the next bar. Stop: see above; then the take is written.

Tempo from the clock. A tempo changed elsewhere (a Link peer, the DAW's transport, a MIDI clock's measured tempo)
is taken at the next bar line not yet made (`follow_clock_tempo`): that bar is cut bar-exact at the clock's tempo at
its line, its start beat is the clock's bar line (Link's beat stays continuous through a tempo change; quantum = one
bar), its chunk's bpm says the new tempo and /continuo/jam/state's message says from which bar. The bars already
ahead of the playhead keep the tempo they were cut at (never re-cut mid-bar). A held bar takes the clock's tempo at
its line. A jam joining a Link session takes the session's tempo from its first bar. The model continues its context
at the old tempo (it has no tempo input): the new tempo's groove comes from the cut and the context that follows.

Recording. Every bar is written to <output_root>/<jam_id>/bars/bar-000000.wav before any output sees it, and at
stop the whole take to <output_root>/<jam_id>/<musical name>.wav (never over an existing file), ending at the stop's
bar: bars made past it never sounded, so they are cut from the take and their WAVs moved (never deleted) to
<output_root>/<jam_id>/unplayed/; a jam id that names a folder or job already there is refused by the daemon
(bridge/jobs/jams.py).

Speed. The lookahead adapts: `lookahead_bars` 0 keeps ahead by (1.5 x the measured RTF + 0.25) bars and at least
one bar; the RTF is each bar's clock time over its audio (a running mean). A jam that cannot keep up says so before
it starts (`check_speed`: the best figure known, else the engine's measured speed at warm-up). Measured
(docs/benchmarks.md, "Jam"): 0 samples of bar-boundary error in every run; the tiny model keeps up; musicgen-small's
shape ran at RTF 1.97 here (2 cores, shared), so about one bar in two was held.

Not built: live stem mute/solo (no live separation); audio at the session's sample rate (bars are at the model's
rate, `JamChunk.sample_rate` says which); loudness normalisation (a jam keeps the model's level; effects apply).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import soundfile

from bridge.audio.clocks import JamClock
from bridge.audio.context import MusicalContext
from bridge.audio.effects import build_pedalboard
from bridge.audio.files import daw_file_name, musical_title, partial_name, write_wav_atomic
from bridge.audio.playback import JamChunk, JamSink
from bridge.audio.presets import Preset
from bridge.errors import BadRequest, BridgeError
from inference.api import Capability, CodeStream, Engine, GeneratedAudio, GenerationRequest, MeasuredSpeed
from inference.errors import Cancelled

log = logging.getLogger("continuo.jam")

TEMPO_CLOCKS = ("internal", "link")  # clocks that take a tempo from the jam (the others follow their sender)
CONTROLS = ("prompt", "preset", "temperature", "guidance", "bpm", "keep_loop", "mute", "stop")
SOUND_CONTROLS = ("prompt", "preset", "temperature", "guidance")  # a change makes a new prompt_id
STATES = ("starting", "playing", "stopping", "stopped", "failed")
BANK_SLOTS = 16
MIN_LEAD_BARS = 1
RTF_SAFETY = 1.5  # the lead kept: this many times the bar's measured generation time, plus LEAD_MARGIN_BARS
LEAD_MARGIN_BARS = 0.25
STOP_MARGIN_S = 0.05  # a stop this close to a bar line lands at the line after it (the outputs must hear of it first)


@dataclass(frozen=True)
class JamSettings:
    """What a jam starts with (the /continuo/jam/start request, settled against the preset)."""

    jam_id: str
    prompt: str
    preset: Preset
    bpm: float = 120.0
    beats_per_bar: int = 4
    key: str = ""
    seed: int = 0
    temperature: float | None = None  # None: the preset's
    guidance: float | None = None
    # the context each bar continues, in bars: where the engine keeps a stream (keep_cache) it is prefilled only
    # when the stream starts over; else every bar, which costs: on the musicgen-small shape here 2 bars ran at RTF
    # 1.50 and 4 bars at 3.69 that way (docs/benchmarks.md, "Jam")
    context_bars: int = 2
    keep_cache: bool = True  # the engine's kept stream where it offers one (Capability.CODE_STREAM), else per bar
    keep_cache_s: float = 0.0  # how long the stream grows before it starts over from context_bars (0: the model's
    # window, 30 s)
    lookahead_bars: int = 0  # 0: adapt to the measured speed
    crossfade_s: float = 0.01
    guard_s: float = 0.15  # a held bar goes out this long before its bar line when the generated one is not there
    count_in: bool = True  # the first bar continues a bar of clicks at the session tempo (the model's context on
    # the grid: MusicGen takes no tempo); the clicks are never played


@dataclass(frozen=True)
class JamSound:
    """What makes the bars now: changed by controls at bar lines, saved and recalled by banks."""

    prompt: str  # the user's words
    preset: Preset
    temperature: float
    guidance: float
    bpm: float
    prompt_id: int = 0
    mute: bool = False


@dataclass
class Stream:
    """The stream's own recent codes and where the next bar starts on their timeline."""

    codes: np.ndarray | None = None  # (K, F): the context kept, F frames (trimmed to the context plus overhang)
    start: float = 0.0  # the next bar's first sample, from codes' frame 0 (fractional: the carried remainder)
    tail: np.ndarray | None = None  # (C, crossfade): the last decode's audio past the last bar's end

    def copy(self) -> Stream:
        return Stream(None if self.codes is None else self.codes.copy(), self.start,
                      None if self.tail is None else self.tail.copy())


@dataclass(frozen=True)
class Bar:
    """One made bar, before crossfade and effects: its raw audio and the audio just past its end."""

    audio: np.ndarray  # (C, T)
    tail: np.ndarray  # (C, crossfade)
    bpm: float
    prompt_id: int
    seconds_to_make: float = 0.0
    mute: bool = False


@dataclass
class JamStatus:
    jam_id: str
    state: str = "starting"
    bar: int = -1  # the last bar handed to the outputs
    bpm: float = 0.0  # its tempo (message says where the tempo changed)
    lead_s: float = 0.0  # how far the stream runs ahead of the playhead
    rtf: float = 0.0
    lookahead_bars: int = MIN_LEAD_BARS
    underruns: int = 0  # bars the generator missed (each a held bar)
    held_bars: int = 0  # held bars played (underruns and keep_loop repeats are told apart: loops are chosen)
    message: str = ""
    take_path: Path | None = None


@dataclass
class _Pending:
    """Controls waiting for the next bar line."""

    changes: dict = field(default_factory=dict)


def bar_samples(bpm: float, beats_per_bar: int, sample_rate: int) -> float:
    """Samples in one bar, exact (fractional)."""
    return beats_per_bar * 60.0 / bpm * sample_rate


def crossfade(before: np.ndarray | None, after: np.ndarray) -> np.ndarray:
    """after, its first samples crossfaded (raised cosine) from before (the same span as the previous audio had it)."""
    if before is None or before.shape[-1] == 0:
        return after
    n = min(before.shape[-1], after.shape[-1])
    ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)
    out = after.copy()
    out[:, :n] = before[:, :n] * (1.0 - ramp) + after[:, :n] * ramp
    return out


def click_bar(bpm: float, beats_per_bar: int, sample_rate: int, channels: int) -> np.ndarray:
    """One bar of clicks at bpm, (channels, samples), whole codec frames long: a decaying 1.5 kHz burst on every
    beat, the downbeat louder. What the first bar continues (JamSettings.count_in)."""
    samples = round(bar_samples(bpm, beats_per_bar, sample_rate))
    t = np.arange(round(0.03 * sample_rate)) / sample_rate
    burst = (np.sin(2 * np.pi * 1500.0 * t) * np.exp(-t / 0.012)).astype(np.float32)
    bar = np.zeros(samples, np.float32)
    for beat in range(beats_per_bar):
        start = round(beat * 60.0 / bpm * sample_rate)
        piece = burst[: samples - start] * (0.6 if beat == 0 else 0.3)
        bar[start : start + piece.size] += piece
    return np.repeat(bar[None], channels, axis=0)


def fit_length(audio: np.ndarray, samples: int) -> np.ndarray:
    """audio cut, or repeated from its start, to exactly samples (a held bar at another tempo)."""
    if audio.shape[-1] >= samples:
        return audio[:, :samples]
    reps = math.ceil(samples / max(1, audio.shape[-1]))
    return np.tile(audio, (1, reps))[:, :samples]


def check_speed(engine: Engine, bpm: float, beats_per_bar: int, speed: MeasuredSpeed | None = None) -> str:
    """'' when the measured speed keeps up with a jam, else what a musician reads before it starts. speed: the best
    figure known (an earlier jam's, the daemon's from finished jobs), else the engine's warm-up measurement."""
    speed = speed or engine.measured_speed
    if speed is None:
        return ""
    bar_s = beats_per_bar * 60.0 / bpm
    if speed.keeps_up():
        return ""
    return (f"this model cannot keep up with a live jam here: {speed.describe()}; each {bar_s:.1f} s bar takes about "
            f"{bar_s * speed.rtf:.1f} s to make, so bars would be held (repeated) while it catches up. Use a smaller "
            "model or a faster machine, or start with behind_ok 1 to jam with held bars")


class JamRecording:
    """The session recording: each bar's WAV, and at stop the whole take under its musical name."""

    def __init__(self, folder: Path, sample_rate: int, channels: int) -> None:
        self.folder, self.sample_rate = folder, sample_rate
        (folder / "bars").mkdir(parents=True, exist_ok=False)
        self.take_partial = partial_name(folder / "take.wav")
        self._take = soundfile.SoundFile(self.take_partial, "w", samplerate=sample_rate, channels=channels,
                                         subtype="PCM_24", format="WAV")
        self.frames = 0
        self.bar_ends: dict[int, int] = {}  # bar -> the take's frames once it is written

    def bar_path(self, bar: int) -> Path:
        return self.folder / "bars" / f"bar-{bar:06d}.wav"

    def write(self, chunk: JamChunk) -> Path:
        path = self.bar_path(chunk.bar)
        write_wav_atomic(path, chunk.audio, chunk.sample_rate)
        self._take.write(np.clip(chunk.audio.T, -1.0, 1.0))
        self.frames += chunk.audio.shape[-1]
        self.bar_ends[chunk.bar] = self.frames
        return path

    def close(self, name: str, last_bar: int | None = None) -> Path | None:
        """The whole take under name (a free name beside any existing file), or None when no bar was played.
        last_bar: the take ends with that bar; the WAVs of bars written past it move to unplayed/ (never deleted)."""
        if last_bar is not None:
            later = sorted(bar for bar in self.bar_ends if bar > last_bar)
            self.frames = max([end for bar, end in self.bar_ends.items() if bar <= last_bar], default=0)
            if later:
                self._take.truncate(self.frames)
                unplayed = self.folder / "unplayed"
                unplayed.mkdir(exist_ok=True)
                for bar in later:
                    path = self.bar_path(bar)
                    if path.exists() and not (unplayed / path.name).exists():
                        path.rename(unplayed / path.name)
        self._take.close()
        if self.frames == 0:
            self.take_partial.unlink(missing_ok=True)
            return None
        target = self.folder / name
        stem, n = target.stem, 2
        while target.exists():
            target = target.with_name(f"{stem}-{n}{target.suffix}")
            n += 1
        self.take_partial.rename(target)
        return target


class JamSession:
    """One live jam. `start`, then `control`, `bank`, `stop` from any thread; `status` any time; `wait` for the end.

    on_state(status) after every bar and change of state; on_scheduled(name, value, bar) when a control is set for
    a bar line. `now` is the clock's time source (time.monotonic, a fake one in tests).
    """

    def __init__(self, settings: JamSettings, engine: Engine, clock: JamClock, sinks: Sequence[JamSink], *,
                 presets: Callable[[], dict[str, Preset]] | None = None, recording: JamRecording | None = None,
                 on_state: Callable[[JamStatus], None] | None = None,
                 on_scheduled: Callable[[str, str, int], None] | None = None,
                 now: Callable[[], float] = time.monotonic) -> None:
        if not engine.info.supports(Capability.CODE_PROMPT):
            raise BadRequest(f"{engine.info.name} cannot jam: a jam continues the model's own codes bar after bar; "
                             "serve a MusicGen model with our engine (backend 'engine')", job_id=settings.jam_id)
        self.settings, self.engine, self.clock, self.sinks = settings, engine, clock, list(sinks)
        self.presets = presets or (lambda: {settings.preset.name: settings.preset})
        self.recording, self.now = recording, now
        self.on_state = on_state or (lambda status: None)
        self.on_scheduled = on_scheduled or (lambda name, value, bar: None)
        info = engine.info
        self.sample_rate, self.channels = info.sample_rate, info.channels
        self.hop = round(info.sample_rate / info.frame_rate)
        self.fade = max(1, round(settings.crossfade_s * info.sample_rate))
        preset = settings.preset
        self.sound = JamSound(prompt=settings.prompt, preset=preset,
                              temperature=preset.temperature if settings.temperature is None else settings.temperature,
                              guidance=preset.guidance_scale if settings.guidance is None else settings.guidance,
                              bpm=settings.bpm)
        self.board = build_pedalboard(preset.master, sample_rate=self.sample_rate)
        self.stream = Stream()
        self.status_ = JamStatus(settings.jam_id)
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.pending = _Pending()
        self.banks: dict[int, tuple[Stream, JamSound]] = {}
        self.origin_bar: int | None = None  # the clock's bar where jam bar 0 starts
        self.next_bar = 0  # the next jam bar to hand to the outputs
        self.out_start = 0.0  # where it starts, in samples from bar 0 (fractional: the carried remainder)
        self.out_bpm: float | None = None  # the tempo of the last bar handed out
        # the tempo the clock was given for the bars handed out (None: the clock's own, a host's or MIDI's)
        self.told_bpm: float | None = settings.bpm if clock.kind in TEMPO_CLOCKS else None
        self.making_bar: int | None = None  # the bar the generator is making (controls land after it)
        self.making_since = 0.0  # clock time it began
        self.last: Bar | None = None  # the last bar handed out (held bars repeat it)
        self.history: list[Bar] = []  # the last bars handed out (keep_loop repeats them), at most BANK of them
        self.loop: list[Bar] = []  # keep_loop's bars while it holds
        self.loop_index = 0
        self.stop_bar: int | None = None  # no bar from this one on
        self.finished = threading.Event()
        self.closing = threading.Event()  # close(): the take is written without waiting for the queued bars
        self.threads: list[threading.Thread] = []
        self.rtf = 0.0
        self.made = 0
        self.code_stream: CodeStream | None = None  # the engine's kept stream (opened with the first bar)
        self.log: list[tuple[int, int, bool]] = []  # (bar, prompt_id, held) per bar handed out: benches read it

    # ---- the public surface ------------------------------------------------------------------------------

    def start(self) -> None:
        for target, name in ((self._generate_loop, "gen"), (self._watch_loop, "watch")):
            thread = threading.Thread(target=target, name=f"continuo-jam-{name}-{self.settings.jam_id}", daemon=True)
            self.threads.append(thread)
            thread.start()

    def status(self) -> JamStatus:
        with self.lock:
            status = replace(self.status_)
        if self.origin_bar is not None and status.state in ("playing", "stopping"):
            status.lead_s = round(self.bar_time(self.next_bar) - self.now(), 3)
        if status.state == "stopping" and self.stop_bar is not None:
            status.bar = self.stop_bar - 1  # the last bar that will sound: clients drop any later one they hold
        return status

    def control(self, name: str, value: str) -> int:
        """Set a control for the next bar line: the bar it lands on (also told through on_scheduled)."""
        name = name.strip().lower()
        if name not in CONTROLS:
            raise BadRequest(f"unknown jam control {name!r}; controls are {', '.join(CONTROLS)}",
                             job_id=self.settings.jam_id)
        if name == "stop":
            return self.stop()
        parsed = self.parse_control(name, value)
        with self.lock:
            self.ensure_running()
            self.pending.changes[name] = parsed
            bar = self.landing_bar()
            self.changed.notify_all()
        log.info("job=%s jam control %s=%s at bar %d", self.settings.jam_id, name, value, bar)
        self.on_scheduled(name, str(value), bar)
        return bar

    def stop(self) -> int:
        """Stop at the end of the bar playing (see the module's docstring): the first bar that will not sound. Bars
        already handed out past it are dropped by every output (`JamSink.stop_after`) and cut from the take."""
        with self.lock:
            told = self.stop_bar is None
            if told:
                self.stop_bar = self.heard_bar()
                if self.status_.state in ("starting", "playing"):
                    self.status_.state = "stopping"
            self.changed.notify_all()
            bar = self.stop_bar
        if told:
            for sink in self.sinks:
                try:
                    sink.stop_after(bar - 1)
                except Exception:  # one output's failure never keeps the others playing on
                    log.exception("job=%s jam output %s failed to stop after bar %d", self.settings.jam_id,
                                  sink.name, bar - 1)
            self._tell()
        self.on_scheduled("stop", "", bar)
        return bar

    def bank(self, action: str, slot: int) -> int:
        """save: this moment's context and settings into slot (now); recall: back to them at the next bar line."""
        if not 0 <= slot < BANK_SLOTS:
            raise BadRequest(f"bank slot must be 0..{BANK_SLOTS - 1}, got {slot}", job_id=self.settings.jam_id)
        with self.lock:
            self.ensure_running()
            if action == "save":
                self.banks[slot] = (self.stream.copy(), self.sound)
                bar = self.next_bar
            elif action == "recall":
                if slot not in self.banks:
                    raise BadRequest(f"bank slot {slot} is empty; save it first (/continuo/jam/bank ... save {slot})",
                                     job_id=self.settings.jam_id)
                self.pending.changes["bank"] = slot
                bar = self.landing_bar()
            else:
                raise BadRequest(f"bank action must be save or recall, got {action!r}", job_id=self.settings.jam_id)
            self.changed.notify_all()
        self.on_scheduled(f"bank_{action}", str(slot), bar)
        return bar

    def wait(self, timeout_s: float | None = None) -> bool:
        return self.finished.wait(timeout_s)

    def close(self) -> None:
        """Stop now (the daemon's shutdown): no more bars; the take is written at once (not after the bars queued)."""
        self.closing.set()
        with self.lock:
            if self.stop_bar is None:
                self.stop_bar = self.next_bar
            self.changed.notify_all()
        for thread in self.threads:
            thread.join(5.0)

    # ---- controls ----------------------------------------------------------------------------------------

    def parse_control(self, name: str, value: str):
        text = str(value).strip()
        jam_id = self.settings.jam_id
        try:
            if name == "prompt":
                return text
            if name == "preset":
                if text not in self.presets():
                    raise BadRequest(f"unknown preset {text!r}; known: {', '.join(sorted(self.presets()))}",
                                     job_id=jam_id)
                return text
            number = float(text)
        except ValueError:
            raise BadRequest(f"jam control {name} takes a number, got {text!r}", job_id=jam_id) from None
        ranges = {"temperature": (0.05, 4.0), "guidance": (0.0, 10.0), "bpm": (20.0, 400.0),
                  "keep_loop": (0, 64), "mute": (0, 1)}
        low, high = ranges[name]
        if not (low <= number <= high) or not math.isfinite(number):
            raise BadRequest(f"jam control {name} must be {low:g}..{high:g}, got {text}", job_id=jam_id)
        if name == "bpm" and self.clock.kind not in TEMPO_CLOCKS:
            raise BadRequest(f"this jam follows the {self.clock.kind} clock's tempo; change the tempo there "
                             "(only an internal clock takes bpm)", job_id=jam_id)
        if name in ("keep_loop", "mute"):
            if not number.is_integer():
                raise BadRequest(f"jam control {name} takes a whole number, got {text}", job_id=jam_id)
            return int(number)
        return number

    def ensure_running(self) -> None:
        if self.finished.is_set() or self.stop_bar is not None:
            raise BadRequest(f"jam {self.settings.jam_id} is {self.status_.state}; start a new one with a new id",
                             job_id=self.settings.jam_id)

    def heard_bar(self) -> int:
        """The first jam bar whose line is still to come, STOP_MARGIN_S from now: the bar after the one playing
        (0 before the first bar line; past next_bar when the generator is behind) (under the lock)."""
        if self.origin_bar is None:
            return 0
        reading = self.clock.reading(self.now())
        playing = reading.bar_of(reading.beat + STOP_MARGIN_S * reading.bpm / 60.0) - self.origin_bar
        return max(0, playing + 1)

    def landing_bar(self) -> int:
        """The first bar not yet made or being made: where a control sent now is heard."""
        return self.next_bar + (1 if self.making_bar is not None and self.making_bar >= self.next_bar else 0)

    def apply_controls(self) -> None:
        """The waiting controls, at this bar line (under the lock)."""
        changes, self.pending.changes = self.pending.changes, {}
        if not changes:
            return
        sound = self.sound
        if "bank" in changes:
            stream, sound = self.banks[changes.pop("bank")]
            self.stream = stream.copy()
            self.board = build_pedalboard(sound.preset.master, sample_rate=self.sample_rate)
            sound = replace(sound, prompt_id=self.sound.prompt_id + 1)
        if "preset" in changes:
            preset = self.presets()[changes["preset"]]
            self.board = build_pedalboard(preset.master, sample_rate=self.sample_rate)
            sound = replace(sound, preset=preset, temperature=preset.temperature, guidance=preset.guidance_scale)
        for name, target in (("prompt", "prompt"), ("temperature", "temperature"), ("guidance", "guidance"),
                             ("bpm", "bpm")):
            if name in changes:
                sound = replace(sound, **{target: changes[name]})
        if "mute" in changes:
            sound = replace(sound, mute=bool(changes["mute"]))
        if any(name in changes for name in SOUND_CONTROLS):
            sound = replace(sound, prompt_id=self.sound.prompt_id + 1)
        self.sound = sound
        if "keep_loop" in changes:
            count = changes["keep_loop"]
            self.loop = self.history[-count:] if count else []
            self.loop_index = 0

    def follow_clock_tempo(self) -> None:
        """The bar about to be made takes the clock's tempo at its line, where it was changed elsewhere (a Link peer,
        the DAW's transport, a MIDI clock), so it is cut bar-exact at it; a bpm control of the jam's own not yet
        told to the clock wins (it is told when its bar goes out). Under the lock, at the bar line."""
        if self.told_bpm is not None and abs(self.sound.bpm - self.told_bpm) > 1e-6:
            return  # the jam's own change, on its way to the clock
        reading = self.clock.reading(self.now())
        if self.origin_bar is None:  # the first bar: its line is placed once made
            if not reading.playing and self.clock.kind not in TEMPO_CLOCKS:
                return  # a host or MIDI clock not yet playing has no tempo of its own: the jam's bpm setting
            bpm = reading.bpm_at(reading.next_bar_beat())
        else:
            bpm = reading.bpm_at(self.bar_beat(self.next_bar))
        if abs(bpm - self.sound.bpm) <= 1e-6:
            return
        log.info("job=%s jam follows the %s clock's tempo: %g BPM from bar %d (was %g)", self.settings.jam_id,
                 self.clock.kind, bpm, self.next_bar, self.sound.bpm)
        self.sound = replace(self.sound, bpm=bpm)
        if self.told_bpm is not None:
            self.told_bpm = bpm  # the clock has it already: never told back

    def clock_bpm(self, bar: int) -> float:
        """The clock's tempo at bar's line as far as it knows now (a held bar's length)."""
        return self.clock.reading(self.now()).bpm_at(self.bar_beat(bar))

    # ---- time --------------------------------------------------------------------------------------------

    def bar_beat(self, bar: int) -> float:
        return float((self.origin_bar + bar) * self.settings.beats_per_bar)

    def bar_time(self, bar: int) -> float:
        return self.clock.reading(self.now()).time_of_beat(self.bar_beat(bar))

    def lead_bars_target(self) -> int:
        if self.settings.lookahead_bars > 0:
            return self.settings.lookahead_bars
        return max(MIN_LEAD_BARS, math.ceil(RTF_SAFETY * self.rtf + LEAD_MARGIN_BARS))

    # ---- the generator --------------------------------------------------------------------------------------

    def _generate_loop(self) -> None:
        try:
            self._run()
        except BaseException as error:  # the jam fails; the daemon keeps serving
            log.exception("job=%s jam failed", self.settings.jam_id)
            with self.lock:
                self.status_.state, self.status_.message = "failed", f"{type(error).__name__}: {error}"
        finally:
            self._finish()

    def _run(self) -> None:
        jam_id = self.settings.jam_id
        while True:
            with self.lock:
                if self.stop_bar is not None and self.next_bar >= self.stop_bar:
                    return
                if self.origin_bar is not None:
                    self._wait_for_room()
                    if self.stop_bar is not None and self.next_bar >= self.stop_bar:
                        return
                self.apply_controls()
                self.follow_clock_tempo()
                if self.loop:
                    self._hand_out(self.loop[self.loop_index % len(self.loop)], held=True, chosen=True)
                    self.loop_index += 1
                    continue
                self.making_bar, self.making_since = self.next_bar, self.now()
                sound, stream = self.sound, self.stream
            try:
                bar = self.make_bar(sound, stream)
            except Cancelled:
                if not self._unwanted():
                    raise
                log.info("job=%s jam: bar %d no longer wanted (stopped or closed); its decode cancelled", jam_id,
                         self.making_bar)
                return
            with self.lock:
                self.making_bar = None
                if self.origin_bar is None:
                    self._place_origin()
                    self.status_.state = "stopping" if self.stop_bar is not None else "playing"
                    log.info("job=%s jam playing from clock bar %d (rtf %.2f)", jam_id, self.origin_bar, self.rtf)
                if self.stop_bar is not None and self.next_bar >= self.stop_bar:
                    return
                self._hand_out(bar, held=False)

    def _wait_for_room(self) -> None:
        """Until the lead falls under the target (or a stop or control wakes it), under the lock."""
        while self.stop_bar is None or self.next_bar < self.stop_bar:
            ahead = self.bar_time(self.next_bar) - self.now()
            bar_s = self.bar_seconds(self.sound.bpm)
            room = ahead - self.lead_bars_target() * bar_s
            if room <= 0:
                return
            if not self.clock.reading(self.now()).playing:
                self.stop_bar = self.next_bar
                self.status_.message = f"the {self.clock.kind} clock's transport stopped"
                return
            self.changed.wait(min(room, 0.05))

    def _place_origin(self) -> None:
        """Bar 0 starts at the first clock bar line at least guard_s from now, once the clock's transport plays
        (under the lock)."""
        reading = self.clock.reading(self.now())
        while not reading.playing and self.stop_bar is None:
            self.status_.message = f"waiting for the {self.clock.kind} clock's transport to play"
            self.changed.wait(0.05)
            reading = self.clock.reading(self.now())
        self.status_.message = ""
        margin_beats = (self.settings.guard_s + 0.05) * reading.bpm / 60.0
        self.origin_bar = reading.bar_of(reading.beat + margin_beats) + 1

    def bar_seconds(self, bpm: float) -> float:
        return self.settings.beats_per_bar * 60.0 / bpm

    def make_bar(self, sound: JamSound, stream: Stream) -> Bar:
        """The next bar of the stream at sound's settings: generated, cut bar-exact, the stream moved on."""
        started = self.now()
        exact = bar_samples(sound.bpm, self.settings.beats_per_bar, self.sample_rate)
        first, last = round(stream.start), round(stream.start + exact)
        have = 0 if stream.codes is None else stream.codes.shape[1]
        need = math.ceil((last + self.fade) / self.hop) - have
        context_frames = round(self.settings.context_bars * exact / self.hop)
        prompt_codes = None if stream.codes is None else stream.codes[:, max(0, have - context_frames):]
        count_in = None
        if stream.codes is None and self.settings.count_in:
            count_in = click_bar(sound.bpm, self.settings.beats_per_bar, self.sample_rate, self.channels)
        preset = sound.preset
        context = MusicalContext(bpm=sound.bpm, beats_per_bar=self.settings.beats_per_bar, key=self.settings.key)
        request = GenerationRequest(
            prompt=preset.render_prompt(sound.prompt, context), duration_s=need / self.engine.info.frame_rate,
            seed=self.settings.seed + self.made, temperature=sound.temperature, top_k=preset.top_k,
            top_p=preset.top_p, guidance_scale=sound.guidance, prompt_codes=prompt_codes, audio_prompt=count_in)
        out = self.generate(request)
        if out.codes is None or out.codes.shape[-1] != need:
            raise RuntimeError(f"the engine gave {None if out.codes is None else out.codes.shape[-1]} frames of codes "
                               f"for {need}")
        lead_in = out.lead_in if out.lead_in is not None else np.zeros((self.channels, 0), np.float32)
        audio = np.concatenate([lead_in, out.audio], axis=-1)
        base = have * self.hop - lead_in.shape[-1]  # the timeline sample of audio[:, 0]
        if first < base:
            raise RuntimeError(f"the bar starts {base - first} samples before the audio decoded for it")
        bar_audio = audio[:, first - base : last - base]
        tail = audio[:, last - base : last - base + self.fade]
        codes = out.codes if stream.codes is None else np.concatenate([stream.codes, out.codes], axis=1)
        keep = context_frames + math.ceil((exact + self.fade) / self.hop) + 2
        drop = max(0, codes.shape[1] - keep)
        with self.lock:
            if self.stream is stream:  # a bank recalled meanwhile wins
                self.stream = Stream(codes[:, drop:], stream.start + exact - drop * self.hop, tail)
        elapsed = self.now() - started  # clock seconds
        bar_s = exact / self.sample_rate
        self.made += 1
        self.rtf = elapsed / bar_s if self.made == 1 else 0.7 * self.rtf + 0.3 * elapsed / bar_s
        made = Bar(np.ascontiguousarray(bar_audio, dtype=np.float32), tail, sound.bpm, sound.prompt_id, elapsed,
                   sound.mute)
        return self._seam(made, stream.tail)

    def generate(self, request: GenerationRequest) -> GeneratedAudio:
        """The bar's frames: from the engine's kept stream where it offers one (it continues its own KV cache when
        the context is its end, else prefills it: a bank recalled, past keep_cache_s), else a request of their own
        that prefills the context. Either stops at the next step once the bar is unwanted (Cancelled)."""
        if self.code_stream is None and self.settings.keep_cache and self.engine.info.supports(
                Capability.CODE_STREAM):
            frames = round(self.settings.keep_cache_s * self.engine.info.frame_rate)
            self.code_stream = self.engine.open_stream(max_frames=frames)
            self.code_stream.label = f"job={self.settings.jam_id}"  # its log lines carry the jam's id
        if self.code_stream is not None:
            return self.code_stream.generate(request, should_cancel=self._unwanted)
        return self.engine.generate(request, should_cancel=self._unwanted)

    def _unwanted(self) -> bool:
        """The bar being made will not sound: the jam closes, or a stop came before its bar (its decode stops at
        the next step; read without the lock, between the model's steps)."""
        making, stop = self.making_bar, self.stop_bar
        return self.closing.is_set() or (stop is not None and making is not None and making >= stop)

    @staticmethod
    def _seam(bar: Bar, before: np.ndarray | None) -> Bar:
        """The bar as the stream plays it: crossfaded from the previous decode's overhang."""
        return replace(bar, audio=crossfade(before, bar.audio))

    # ---- handing bars out ------------------------------------------------------------------------------------

    def _hand_out(self, bar: Bar, *, held: bool, chosen: bool = False) -> None:
        """Bar next_bar to the recording and every output (under the lock)."""
        index = self.next_bar
        bpm = bar.bpm if not held else self.clock_bpm(index)
        exact = bar_samples(bpm, self.settings.beats_per_bar, self.sample_rate)
        samples = round(self.out_start + exact) - round(self.out_start)  # the output's own carried remainder
        self.out_start += exact
        audio = bar.audio
        if held and self.last is not None:
            audio = crossfade(self.last.tail, audio)  # the repeat's seam, from what follows the bar before
        if audio.shape[-1] != samples:  # a sample either way (the stream's remainder), or a held bar's new tempo
            audio = fit_length(np.concatenate([audio, bar.tail], axis=-1), samples)
        if bar.mute or self.sound.mute:
            audio = np.zeros_like(audio)
        elif len(self.board):
            audio = self.board.process(audio, float(self.sample_rate), reset=False).astype(np.float32)
        chunk = JamChunk(jam_id=self.settings.jam_id, bar=index, start_beat=self.bar_beat(index),
                         beats=float(self.settings.beats_per_bar), bpm=bpm, audio=audio,
                         sample_rate=self.sample_rate, prompt_id=bar.prompt_id, held=held)
        if self.recording is not None:
            chunk = replace(chunk, path=self.recording.write(chunk))
        if self.told_bpm is not None and abs(self.told_bpm - bpm) > 1e-6 and not held:
            try:  # the clock takes the jam's new tempo at this bar's line (a line still to come: bars go out ahead)
                self.clock.set_tempo(bpm, bar=self.origin_bar + index)
            except BridgeError as error:
                log.warning("job=%s jam tempo %g not set on the clock: %s", self.settings.jam_id, bpm, error)
            self.told_bpm = bpm
        if self.out_bpm is not None and abs(bpm - self.out_bpm) > 1e-6:
            self.status_.message = f"tempo {bpm:g} BPM from bar {index} (was {self.out_bpm:g})"
        self.out_bpm = bpm
        for sink in self.sinks:
            try:
                sink.play(chunk)
            except Exception:  # an output's failure never stops the music for the others
                log.exception("job=%s jam output %s failed on bar %d", self.settings.jam_id, sink.name, index)
        self.last = bar if not held or chosen else self.last
        if not held:
            self.history = (self.history + [bar])[-64:]
        self.next_bar += 1
        self.log.append((index, bar.prompt_id, held))
        status = self.status_
        status.bar, status.rtf, status.bpm = index, round(self.rtf, 3), bpm
        status.lookahead_bars = self.lead_bars_target()
        if held:
            status.held_bars += 1
            if not chosen:
                status.underruns += 1
                status.message = f"the model fell behind: bar {index} repeats the last bar"
                log.warning("job=%s jam %s", self.settings.jam_id, status.message)
        elif status.message.startswith("the model fell behind"):
            status.message = ""
        self.changed.notify_all()
        self._tell()

    def _tell(self) -> None:
        try:
            self.on_state(self.status())
        except Exception:
            log.exception("job=%s jam state event failed", self.settings.jam_id)

    # ---- the watch: held bars when the generator is late ---------------------------------------------------

    def _watch_loop(self) -> None:
        while not self.finished.is_set():
            with self.lock:
                if self.origin_bar is not None and self.last is not None and not self.loop and (
                        self.stop_bar is None or self.next_bar < self.stop_bar):
                    line = self.bar_time(self.next_bar)
                    due = line - self.settings.guard_s
                    soon = self.now() >= line - self.bar_seconds(self.sound.bpm)  # the bar after the one playing
                    if self.now() >= due or (soon and self._predicted_late(due)):
                        self._hand_out(self.last, held=True)
                        continue
                    wait = min(0.02, max(0.001, due - self.now()))
                else:
                    wait = 0.02
                self.changed.wait(wait)

    def _predicted_late(self, due: float) -> bool:
        """The bar being made will not be there by due, at the measured speed (under the lock)."""
        if self.making_bar is None or self.made == 0:
            return False
        bar_s = self.bar_seconds(self.sound.bpm)
        return self.making_since + self.rtf * bar_s > due

    def _finish(self) -> None:
        """After the last bar: its end passes, the take is written, the state is stopped (or failed)."""
        with self.lock:
            self.stop_bar = self.next_bar if self.stop_bar is None else min(self.stop_bar, self.next_bar)
            self.changed.notify_all()
        if self.origin_bar is not None and self.status_.state != "failed":
            end = self.bar_time(self.stop_bar)  # the stop's bar line (bars handed out past it are dropped)
            while self.now() < end and self.clock.reading(self.now()).playing and not self.closing.is_set():
                time.sleep(min(0.05, max(0.0, end - self.now())))
        take = None
        if self.recording is not None:
            name = daw_file_name(musical_title(self.settings.prompt) or "jam", "mix", bars=self.stop_bar,
                                 bpm=self.sound.bpm, key=self.settings.key)
            try:
                take = self.recording.close(name, last_bar=self.stop_bar - 1)
            except OSError as error:
                log.error("job=%s jam take not written: %s", self.settings.jam_id, error)
        with self.lock:
            self.status_.take_path = take
            if self.status_.state != "failed":
                self.status_.state = "stopped"
                self.status_.message = f"take: {take}" if take else self.status_.message or "no bar was played"
        if self.code_stream is not None:
            self.code_stream.close()  # its cache goes now, not with the session object
        for sink in self.sinks:  # the device plays out what it holds (the last bar's end has passed)
            try:
                sink.close()
            except Exception:
                log.exception("job=%s jam output %s failed to close", self.settings.jam_id, sink.name)
        # its line before the news: whoever waits on `finished` may close the log's stream next (a test's capture)
        log.info("job=%s jam stopped after %d bars (%d held), take %s", self.settings.jam_id, self.stop_bar,
                 self.status_.held_bars, take)
        self.finished.set()
        self._tell()
