"""Jam clocks: where the session's bars are, now. One clock is chosen per jam session.

A clock answers `reading()`: the beat position on the session's timeline at a moment of `time.monotonic()`, the
tempo, the metre (the quantum is one bar) and whether the transport plays. The jam (bridge/jobs/jam.py) plans bar n
to start at beat n * beats_per_bar and asks the clock when that is; outputs (bridge/audio/playback.py) start sound at
that moment. Kinds: internal (BPM and metre), midi (24 ppqn clock with start/stop/continue and song position),
host (transport sent over OSC by the Max for Live and Pd clients: bpm, beat, playing) and link (Ableton Link, the
optional `continuo[link]` extra; Link is GPL-licensed).

Decisions, kind by kind (`make_clock(kind, **settings)` builds any of them; each is thread-safe: MIDI, OSC and
Link feed them from their own threads while the jam reads; none is meant for the audio callback, which plays from
times computed ahead):

- **internal** (`InternalClock`): a piecewise-linear timeline. A tempo change lands at a bar line (the next one,
  or a bar the caller names) and the beat stays continuous through it; until it lands, readings carry it
  (`ClockReading.change_beat`/`change_bpm`), so `time_of_beat` is exact across it.
- **midi** (`MidiClockSource` over `MidiClock`, the one tempo estimator; bridge/midi.py's controller uses the same
  one): MIDI clock speaks in quarter notes, 24 ticks each. The tempo is the least-squares tick interval over the
  last `CLOCK_WINDOW_TICKS` ticks, settled with `TEMPO_STEP_BPM` of hysteresis (jitter does not flood the session
  with tempo changes); a gap over `CLOCK_GAP_S` restarts the measurement. After Start (position 0) or Continue
  (the song position pointer's position), the next tick *is* that position, each later tick one tick on (the MIDI
  spec's rule): the beat is followed from the ticks with a `BeatLine` and extrapolated between them. A clock that
  stops arriving for `CLOCK_GAP_S` reads as stopped (a pulled cable does not run the jam on into nothing).
  Measured (tests/bridge/audio/test_clocks.py, ticks at 120 BPM with +-2 ms of jitter): the beat read between ticks
  is 0.42 ms RMS off, against 1.1 ms taking each tick as it came; a jump from 120 to 150 BPM is followed within two
  beats.
- **host** (`HostTransportClock`): the DAW's own transport, sent by the Max for Live and Pd clients
  (/continuo/jam/transport bpm, beat, playing, beats_per_bar), stamped on arrival. Between messages the beat is
  extrapolated at the host's tempo; arrival jitter is smoothed (`BeatLine`: each message pulls the line a fifth of
  the way), while a new tempo, a locate or a loop jump (over `HOST_SNAP_S` off) re-anchors at once: smoothing never
  lags a tempo change. Measured (tests/bridge/audio/test_clocks.py, messages every 50 ms arriving 0-8 ms late): the
  spread of the beat read falls from 2.3 ms (each message as it came) to 0.7 ms, and the reading is within 4 ms of
  a new tempo's beat from the first message after the change (an easing smoother: 20 ms off). The messages carry no
  send time, so the mean delay on the way (here 4 ms) stays as a constant offset; extrapolation goes on while the
  DAW plays, however long since its last message.
- **link** (`LinkClock`, Ableton Link through LinkPython-extern, import name `link`; `pip install 'continuo[link]'`;
  Link is GPLv2+, so it stays an optional extra): quantum = one bar, so bar lines agree with every peer (Link shares
  the phase; the beat count is this peer's own, so bar *numbers* need not agree: the jam numbers its own bars).
  Start and stop follow the session's (Link's start/stop sync) unless `start_stop_sync=False`; `set_playing` starts
  or stops the session (peers with start/stop sync follow). Link's clock (CLOCK_MONOTONIC_RAW on Linux) is mapped
  to `time.monotonic()` on every reading. A tempo set here lands at a bar line: a timer commits it there.

Tempo changes: `set_tempo(bpm, at_s=None, bar=None) -> bar` on internal and link clocks; midi and host clocks follow
their sender and refuse it, saying where to change the tempo.
"""

from __future__ import annotations

import importlib
import inspect
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import mido

from bridge.errors import BadRequest

CLOCK_KINDS = ("internal", "midi", "host", "link")
DEFAULT_BPM = 120.0
DEFAULT_BEATS_PER_BAR = 4
BPM_LIMITS: tuple[float, float] = (20.0, 400.0)
BEATS_PER_BAR_LIMITS: tuple[int, int] = (1, 32)
TICKS_PER_BEAT = 24  # MIDI clock: ticks per quarter note
CLOCK_WINDOW_TICKS = 48  # the tempo estimate's window: two beats
CLOCK_GAP_S = 0.5  # a longer silence restarts the tempo measurement and stops a MIDI-clocked jam
TEMPO_STEP_BPM = 0.2  # hysteresis of the settled MIDI tempo
MIDI_GAIN, MIDI_SNAP_S = 0.25, 0.03  # BeatLine for MIDI ticks (48 a second at 120 BPM, about 1 ms of jitter)
HOST_GAIN, HOST_SNAP_S = 0.2, 0.1  # BeatLine for the host's transport messages (tens a second, several ms of jitter)
LINK_INSTALL = "pip install 'continuo[link]'"

Now = Callable[[], float]


@dataclass(frozen=True)
class ClockReading:
    """The session's timeline at one moment."""

    at_s: float  # time.monotonic() of the reading
    beat: float  # beats since the timeline's origin (bar 0 starts at beat 0), continuous while playing
    bpm: float
    beats_per_bar: int  # the quantum: one bar
    playing: bool
    change_beat: float | None = None  # a tempo change scheduled at this beat (a bar line after `beat`), if any
    change_bpm: float | None = None  # the tempo from change_beat on

    def time_of_beat(self, beat: float) -> float:
        """time.monotonic() at which `beat` falls, at this reading's tempo (and its scheduled change, if any)."""
        if self.change_beat is None or self.change_bpm is None or beat <= self.change_beat:
            return self.at_s + (beat - self.beat) * 60.0 / self.bpm
        return self.time_of_beat(self.change_beat) + (beat - self.change_beat) * 60.0 / self.change_bpm

    def bpm_at(self, beat: float) -> float:
        """The tempo at `beat` as far as this reading knows (its scheduled change from change_beat on)."""
        if self.change_beat is not None and self.change_bpm is not None and beat >= self.change_beat:
            return self.change_bpm
        return self.bpm

    def bar_of(self, beat: float) -> int:
        return int(beat // self.beats_per_bar)

    def next_bar_beat(self) -> float:
        """The first bar line strictly after this reading's beat."""
        return (self.bar_of(self.beat) + 1) * float(self.beats_per_bar)


class JamClock(Protocol):
    kind: str  # one of CLOCK_KINDS

    def reading(self, at_s: float | None = None) -> ClockReading:
        """The timeline at time.monotonic() `at_s` (default: now)."""
        ...

    def close(self) -> None: ...


# -- checks -------------------------------------------------------------------------------------------------------
def check_bpm(bpm: float, where: str) -> float:
    """bpm as a float within BPM_LIMITS, or a BadRequest that names `where` and the range."""
    if isinstance(bpm, bool) or not isinstance(bpm, int | float) or not BPM_LIMITS[0] <= bpm <= BPM_LIMITS[1]:
        raise BadRequest(f"{where}: bpm must be a number from {BPM_LIMITS[0]:g} to {BPM_LIMITS[1]:g}, got {bpm!r}")
    return float(bpm)


def check_beats_per_bar(beats_per_bar: int, where: str) -> int:
    lo, hi = BEATS_PER_BAR_LIMITS
    if isinstance(beats_per_bar, bool) or not isinstance(beats_per_bar, int) or not lo <= beats_per_bar <= hi:
        raise BadRequest(f"{where}: beats_per_bar must be a whole number from {lo} to {hi}, got {beats_per_bar!r}")
    return beats_per_bar


def _landing_bar(reading: ClockReading, bar: int | None, where: str) -> int:
    """The bar a tempo change lands on: `bar`, which must start after the reading, or the next bar line."""
    next_bar = reading.bar_of(reading.beat) + 1
    if bar is None:
        return next_bar
    if isinstance(bar, bool) or not isinstance(bar, int) or bar < next_bar:
        raise BadRequest(f"{where}: a tempo change lands at a bar line still to come (bar {next_bar} or later), "
                         f"got bar {bar!r}")
    return bar


# -- following an outside clock -------------------------------------------------------------------------------
@dataclass
class BeatLine:
    """beat(t) = beat + (t - at_s) * bpm / 60: a timeline followed from timed observations of an outside clock.

    Each observation pulls the line `gain` of the way to it, so arrival jitter averages out; the first observation,
    a new tempo, or one more than `snap_s` off re-anchors the line on it at once, so a tempo change, a locate or a
    loop jump is followed without lag.
    """

    gain: float
    snap_s: float
    at_s: float | None = None
    beat: float = 0.0
    bpm: float = DEFAULT_BPM

    def beat_at(self, at_s: float) -> float:
        return self.beat if self.at_s is None else self.beat + (at_s - self.at_s) * self.bpm / 60.0

    def observe(self, at_s: float, beat: float, bpm: float) -> None:
        if self.at_s is not None and abs(bpm - self.bpm) < 1e-6:
            predicted = self.beat_at(at_s)
            error = beat - predicted
            if abs(error) * 60.0 / bpm <= self.snap_s:
                self.at_s, self.beat = at_s, predicted + self.gain * error
                return
        self.at_s, self.beat, self.bpm = at_s, beat, bpm

    def reset(self) -> None:
        self.at_s = None


# -- internal -------------------------------------------------------------------------------------------------
class InternalClock:
    """The jam's own timeline: `bpm` and `beats_per_bar`, beat 0 at `start_s` (default: now).

    Before start_s the beat is negative (a count-in) and the reading says not playing; from start_s it plays.
    """

    kind = "internal"

    def __init__(self, bpm: float = DEFAULT_BPM, beats_per_bar: int = DEFAULT_BEATS_PER_BAR, *,
                 start_s: float | None = None, now: Now = time.monotonic) -> None:
        self.beats_per_bar = check_beats_per_bar(beats_per_bar, "clock internal")
        self._now = now
        self.start_s = now() if start_s is None else float(start_s)
        # (from_s, from_beat, bpm), in time order: tempo segments; the last may still be to come
        self._segments: list[tuple[float, float, float]] = [(self.start_s, 0.0, check_bpm(bpm, "clock internal"))]
        self._lock = threading.Lock()

    def reading(self, at_s: float | None = None) -> ClockReading:
        at_s = self._now() if at_s is None else at_s
        with self._lock:
            index = max(0, sum(1 for from_s, _, _ in self._segments if from_s <= at_s) - 1)
            from_s, from_beat, bpm = self._segments[index]
            change = self._segments[index + 1] if index + 1 < len(self._segments) else None
        return ClockReading(at_s=at_s, beat=from_beat + (at_s - from_s) * bpm / 60.0, bpm=bpm,
                            beats_per_bar=self.beats_per_bar, playing=at_s >= self.start_s,
                            change_beat=None if change is None else change[1],
                            change_bpm=None if change is None else change[2])

    def set_tempo(self, bpm: float, at_s: float | None = None, bar: int | None = None) -> int:
        """Change to `bpm` at the next bar line after `at_s` (default now), or at `bar`; returns the bar.

        A change asked again for the same bar or an earlier one replaces those from that bar on (the last one asked
        wins); asked before the start, it becomes the starting tempo."""
        bpm = check_bpm(bpm, "clock internal")
        reading = self.reading(at_s)
        land_bar = max(0, _landing_bar(reading, bar, "clock internal"))
        land_beat = float(land_bar * self.beats_per_bar)
        with self._lock:
            kept = [segment for segment in self._segments if segment[1] < land_beat]
            if not kept:  # asked before the start: it becomes the starting tempo
                self._segments = [(self.start_s, 0.0, bpm)]
                return land_bar
            from_s, from_beat, old_bpm = kept[-1]
            self._segments = [*kept, (from_s + (land_beat - from_beat) * 60.0 / old_bpm, land_beat, bpm)]
        return land_bar

    def close(self) -> None:
        pass


# -- MIDI clock -----------------------------------------------------------------------------------------------
class MidiClock:
    """Tempo and song position from MIDI real-time messages (24 ticks per quarter note); not thread-safe alone."""

    def __init__(self) -> None:
        self.ticks: deque[float] = deque(maxlen=CLOCK_WINDOW_TICKS + 1)
        self.running = False
        self.position_ticks = 0  # song position: the tick the next clock message marks while running
        self.position_s: float | None = None  # when the last running tick arrived (None since Start/Continue/SPP)
        self.tempo_bpm: float | None = None  # the settled tempo (hysteresis); None until half a beat of ticks

    @property
    def bpm(self) -> float | None:
        """Quarter notes per minute over the window; None until two ticks arrived."""
        count = len(self.ticks)
        if count < 2 or self.ticks[-1] <= self.ticks[0]:
            return None
        # Least-squares slope of tick time over tick index: every tick counts, so jitter averages out.
        mean_index = (count - 1) / 2
        mean_time = math.fsum(self.ticks) / count
        numerator = math.fsum((i - mean_index) * (t - mean_time) for i, t in enumerate(self.ticks))
        interval_s = numerator / math.fsum((i - mean_index) ** 2 for i in range(count))
        return 60.0 / (interval_s * TICKS_PER_BEAT) if interval_s > 0 else None

    @property
    def position_beats(self) -> float:
        return self.position_ticks / TICKS_PER_BEAT

    def handle(self, message: mido.Message, now_s: float) -> bool:
        """Update from one message; True when it was a clock message."""
        if message.type == "clock":
            if self.ticks and now_s - self.ticks[-1] > CLOCK_GAP_S:
                self.ticks.clear()
            self.ticks.append(now_s)
            if self.running:
                self.position_ticks += 1
                self.position_s = now_s
            self._settle_tempo()
        elif message.type in ("start", "continue", "stop", "songpos"):
            if message.type == "start":
                self.running, self.position_ticks = True, 0
            elif message.type == "continue":
                self.running = True
            elif message.type == "stop":
                self.running = False
            else:
                self.position_ticks = message.pos * TICKS_PER_BEAT // 4  # pos counts sixteenths
            self.position_s = None
        else:
            return False
        return True

    def _settle_tempo(self) -> None:
        bpm = self.bpm
        if bpm is None or len(self.ticks) < TICKS_PER_BEAT // 2 + 1:
            return
        bpm = min(max(bpm, BPM_LIMITS[0]), BPM_LIMITS[1])
        if self.tempo_bpm is None or abs(bpm - self.tempo_bpm) >= TEMPO_STEP_BPM:
            self.tempo_bpm = round(bpm, 2)


class MidiClockSource:
    """A jam clock slaved to MIDI clock. `feed(message, now_s)` is what a mido input port's callback calls.

    `bpm` is the tempo assumed until the clock's own is measured (half a beat of ticks); the metre is
    `beats_per_bar` quarter notes from song position 0 (MIDI clock carries no metre). A reading plays from the first
    tick after Start or Continue until Stop, or until no tick came for CLOCK_GAP_S before now (`now()`, whatever
    `at_s` asks about: a reading ahead of time extrapolates at the settled tempo).
    """

    kind = "midi"

    def __init__(self, bpm: float = DEFAULT_BPM, beats_per_bar: int = DEFAULT_BEATS_PER_BAR, *,
                 now: Now = time.monotonic) -> None:
        self.default_bpm = check_bpm(bpm, "clock midi")
        self.beats_per_bar = check_beats_per_bar(beats_per_bar, "clock midi")
        self.clock = MidiClock()
        self._line = BeatLine(MIDI_GAIN, MIDI_SNAP_S)
        self._now = now
        self._lock = threading.Lock()

    def feed(self, message: mido.Message, now_s: float | None = None) -> None:
        """One message as it arrived (`now_s`: time.monotonic() of its arrival, default now); others are ignored."""
        now_s = self._now() if now_s is None else now_s
        with self._lock:
            if not self.clock.handle(message, now_s):
                return
            if self.clock.position_s is None:
                self._line.reset()
            elif message.type == "clock":
                tick_beat = (self.clock.position_ticks - 1) / TICKS_PER_BEAT  # the position this tick marks
                self._line.observe(now_s, tick_beat, self._bpm())

    def reading(self, at_s: float | None = None) -> ClockReading:
        now_s = self._now()
        at_s = now_s if at_s is None else at_s
        with self._lock:
            bpm = self._bpm()
            clock = self.clock
            playing = clock.running and clock.position_s is not None and now_s - clock.position_s <= CLOCK_GAP_S
            beat = self._line.beat_at(at_s) if playing else clock.position_beats
        return ClockReading(at_s=at_s, beat=beat, bpm=bpm, beats_per_bar=self.beats_per_bar, playing=playing)

    def set_tempo(self, bpm: float, at_s: float | None = None, bar: int | None = None) -> int:
        raise BadRequest("clock midi: the tempo follows the MIDI clock; change it on the device sending the clock")

    def close(self) -> None:
        pass

    def _bpm(self) -> float:
        return self.default_bpm if self.clock.tempo_bpm is None else self.clock.tempo_bpm


# -- host transport -------------------------------------------------------------------------------------------
class HostTransportClock:
    """A jam clock following the DAW's transport, as the Max for Live and Pd clients send it.

    `update(bpm, beat, playing, beats_per_bar, at_s)` takes each /continuo/jam/transport message (at_s: its
    arrival, time.monotonic(), default now). Until the first one the reading is stopped at beat 0, at `bpm` and
    `beats_per_bar`.
    """

    kind = "host"

    def __init__(self, bpm: float = DEFAULT_BPM, beats_per_bar: int = DEFAULT_BEATS_PER_BAR, *,
                 now: Now = time.monotonic) -> None:
        self.bpm = check_bpm(bpm, "clock host")
        self.beats_per_bar = check_beats_per_bar(beats_per_bar, "clock host")
        self.playing = False
        self.beat = 0.0  # the last message's beat (where a stopped transport stands)
        self.last_update_s: float | None = None
        self._line = BeatLine(HOST_GAIN, HOST_SNAP_S)
        self._now = now
        self._lock = threading.Lock()

    def update(self, bpm: float, beat: float, playing: bool, beats_per_bar: int, at_s: float | None = None) -> None:
        bpm = check_bpm(bpm, "jam transport")
        beats_per_bar = check_beats_per_bar(int(beats_per_bar), "jam transport")
        if not math.isfinite(beat):
            raise BadRequest(f"jam transport: beat must be a finite number, got {beat!r}")
        at_s = self._now() if at_s is None else at_s
        with self._lock:
            self.bpm, self.beat, self.playing, self.beats_per_bar = bpm, float(beat), bool(playing), beats_per_bar
            self.last_update_s = at_s
            if self.playing:
                self._line.observe(at_s, self.beat, bpm)
            else:
                self._line.reset()

    def reading(self, at_s: float | None = None) -> ClockReading:
        at_s = self._now() if at_s is None else at_s
        with self._lock:
            beat = self._line.beat_at(at_s) if self.playing else self.beat
            return ClockReading(at_s=at_s, beat=beat, bpm=self.bpm, beats_per_bar=self.beats_per_bar,
                                playing=self.playing)

    def set_tempo(self, bpm: float, at_s: float | None = None, bar: int | None = None) -> int:
        raise BadRequest("clock host: the tempo follows the host's transport; change it in the DAW")

    def close(self) -> None:
        pass


# -- Ableton Link ---------------------------------------------------------------------------------------------
def require_link() -> Any:
    """The `link` module (LinkPython-extern), or a BadRequest that says how to install it."""
    try:
        return importlib.import_module("link")
    except (ImportError, OSError) as exc:
        raise BadRequest(f"clock link needs Ableton Link, which is not installed here ({type(exc).__name__}: {exc}); "
                         f"run `{LINK_INSTALL}` (Link is GPL-licensed, so it is an optional extra), or choose another "
                         "clock: internal, midi or host") from None


class LinkClock:
    """A jam clock that is a peer of an Ableton Link session; quantum = `beats_per_bar` (one bar).

    `bpm` is the tempo the session starts at if this is its first peer; joining a session takes its tempo.
    """

    kind = "link"

    def __init__(self, bpm: float = DEFAULT_BPM, beats_per_bar: int = DEFAULT_BEATS_PER_BAR, *,
                 start_stop_sync: bool = True) -> None:
        bpm = check_bpm(bpm, "clock link")
        self.beats_per_bar = check_beats_per_bar(beats_per_bar, "clock link")
        self.start_stop_sync = bool(start_stop_sync)
        link = require_link()
        self._link = link.Link(bpm)
        self._link.startStopSyncEnabled = self.start_stop_sync
        self._link.enabled = True
        self._clock = self._link.clock()
        self._lock = threading.Lock()
        self._pending: tuple[float, float, threading.Timer] | None = None  # (beat, bpm, its timer)

    @property
    def peers(self) -> int:
        """Other peers in the session now."""
        return int(self._link.numPeers())

    def reading(self, at_s: float | None = None) -> ClockReading:
        with self._lock:
            state, link_us, at_s = self._capture(at_s)
            pending = self._pending
        return ClockReading(at_s=at_s, beat=state.beatAtTime(link_us, float(self.beats_per_bar)),
                            bpm=float(state.tempo()), beats_per_bar=self.beats_per_bar,
                            playing=bool(state.isPlaying()) if self.start_stop_sync else True,
                            change_beat=None if pending is None else pending[0],
                            change_bpm=None if pending is None else pending[1])

    def set_tempo(self, bpm: float, at_s: float | None = None, bar: int | None = None) -> int:
        """Change the session's tempo to `bpm` at the next bar line after `at_s` (default now), or at `bar`;
        returns the bar. A timer commits it at that line (pivoting there, so the beat stays continuous)."""
        bpm = check_bpm(bpm, "clock link")
        reading = self.reading(at_s)
        land_bar = _landing_bar(reading, bar, "clock link")
        land_beat = float(land_bar * self.beats_per_bar)
        with self._lock:
            if self._pending is not None:
                self._pending[2].cancel()
            self._arm(land_beat, bpm, reading.time_of_beat(land_beat) - time.monotonic())
        return land_bar

    def set_playing(self, playing: bool) -> None:
        """Start or stop the Link session now (peers with start/stop sync follow)."""
        with self._lock:
            state, link_us, _ = self._capture(None)
            state.setIsPlaying(bool(playing), link_us)
            self._link.commitSessionState(state)

    def close(self) -> None:
        with self._lock:
            if self._pending is not None:
                self._pending[2].cancel()
                self._pending = None
        self._link.enabled = False

    def _capture(self, at_s: float | None) -> tuple[Any, int, float]:
        """The session state, and `at_s` (default now) on Link's clock (microseconds) and on time.monotonic()."""
        for _ in range(3):  # one instant on both clocks: retried where a thread switch fell between the reads
            before_s = time.monotonic()
            link_now_us = self._clock.micros()
            now_s = time.monotonic()
            if now_s - before_s < 1e-4:
                break
        now_s = (before_s + now_s) / 2
        at_s = now_s if at_s is None else at_s
        return self._link.captureSessionState(), int(link_now_us + round((at_s - now_s) * 1e6)), at_s

    def _arm(self, beat: float, bpm: float, delay_s: float) -> None:
        """Commit the tempo change at `beat` in delay_s (holding the lock)."""
        timer = threading.Timer(max(0.0, delay_s), self._commit_tempo, args=(beat, bpm))
        timer.daemon = True
        self._pending = (beat, bpm, timer)
        timer.start()

    def _commit_tempo(self, beat: float, bpm: float) -> None:
        with self._lock:
            if self._pending is None or self._pending[:2] != (beat, bpm):
                return  # replaced or closed meanwhile
            state, now_us, _ = self._capture(None)
            line_us = state.timeAtBeat(beat, float(self.beats_per_bar))
            if line_us - now_us > 2000:  # a peer slowed the session since: the line is still to come
                self._arm(beat, bpm, (line_us - now_us) / 1e6)
                return
            state.setTempo(bpm, line_us)
            self._link.commitSessionState(state)
            self._pending = None


# -- choosing -------------------------------------------------------------------------------------------------
CLOCK_CLASSES: dict[str, type] = {"internal": InternalClock, "midi": MidiClockSource, "host": HostTransportClock,
                                  "link": LinkClock}


def clock_settings(kind: str) -> tuple[str, ...]:
    """The settings `make_clock(kind, ...)` takes: its class's parameters, but `now` (the time source tests inject)."""
    parameters = inspect.signature(CLOCK_CLASSES[kind]).parameters
    return tuple(name for name in parameters if name != "now")


def make_clock(kind: str, **settings: Any) -> JamClock:
    """The jam clock of `kind` (one of CLOCK_KINDS); a setting given as None takes its default.

    Raises BadRequest naming the kinds, the kind's settings or the missing `continuo[link]` extra."""
    if kind not in CLOCK_CLASSES:
        raise BadRequest(f"clock: unknown kind {kind!r}; choose one of {', '.join(CLOCK_KINDS)}")
    known = clock_settings(kind)
    unknown = sorted(set(settings) - set(inspect.signature(CLOCK_CLASSES[kind]).parameters))
    if unknown:
        raise BadRequest(f"clock {kind}: unknown setting(s) {', '.join(unknown)}; it takes {', '.join(known)}")
    return CLOCK_CLASSES[kind](**{name: value for name, value in settings.items() if value is not None})
