"""Jam outputs: bar chunks on their way to ears, ahead of the playhead.

The jam (bridge/jobs/jam.py) hands every output each bar as a `JamChunk`, in bar order, ahead of time. An output
(`JamSink`) plays it from the chunk's start beat on the session's clock (bridge/audio/clocks.py): the local audio
device through PortAudio/JACK from a real callback over a lock-free ring buffer, clients over OSC/ZeroMQ/HTTP, the
session recording.
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import logging
import os
import queue
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import soxr

from bridge.audio.clocks import JamClock
from bridge.audio.render import RESAMPLE_QUALITY, map_channels
from bridge.errors import AudioError, BadRequest

log = logging.getLogger("continuo.playback")


@dataclass(frozen=True)
class JamChunk:
    """One bar (or a few beats) of a jam, cut to the exact length at its tempo."""

    jam_id: str
    bar: int  # 0, 1, 2, ... from the jam's start; bar n starts at start_beat on the clock's timeline
    start_beat: float
    beats: float  # its length in beats (beats_per_bar for a bar)
    bpm: float
    audio: np.ndarray  # (C, T) float32, T = round(beats * 60 / bpm * sample_rate) exactly
    sample_rate: int
    prompt_id: int  # which prompt/settings made it: it changes when a control lands at a bar line
    held: bool = False  # the model fell behind: this bar repeats an earlier one (said in an event)
    path: Path | None = None  # the bar's WAV in the session recording, once written


_STOP = object()  # DeviceOutput's queue: stop_after was called (wakes the feeder)


class JamSink(Protocol):
    name: str

    def play(self, chunk: JamChunk) -> None:
        """Queue the chunk to sound from its start beat; returns at once (never blocks the jam)."""
        ...

    def stop_after(self, bar: int) -> None:
        """The jam stops at the end of `bar` (-1: before bar 0): drop every later bar already queued, play up to that
        bar's last frame and no further; a later bar played after this is dropped too. Returns at once."""
        ...

    def close(self) -> None: ...


# ---------------------------------------------------------------------------------------------------------------------
# The lock-free ring between the jam's thread and the audio callback


class RingBuffer:
    """A single-producer/single-consumer ring of audio frames over one preallocated numpy array (frames, channels).

    One thread writes (`write`), one other thread reads (`read_into`, `skip`); neither ever waits for the other and no
    lock is taken. Each side owns one counter and only reads the other's: the writer copies frames in and then
    publishes them by storing its new total (one reference store, atomic in CPython), the reader copies frames out and
    then frees them the same way. So the reader never sees a frame before it is written, and the writer never
    overwrites a frame before it is read: a write that does not fit writes what fits and says how many
    (never more than `capacity` frames are held). Reads copy into the caller's memory with `np.copyto` over views:
    no buffer is allocated on the reading side, which is the audio callback's.
    """

    def __init__(self, capacity_frames: int, channels: int, dtype: np.typing.DTypeLike = np.float32) -> None:
        if capacity_frames < 1 or channels < 1:
            raise ValueError(f"RingBuffer needs capacity_frames >= 1 and channels >= 1, got {capacity_frames}, "
                             f"{channels}")
        self.capacity = int(capacity_frames)
        self.channels = int(channels)
        self._data = np.zeros((self.capacity, self.channels), dtype=dtype)
        self._written = 0  # total frames ever written; stored only by the writer
        self._read = 0  # total frames ever read or skipped; stored only by the reader

    def readable(self) -> int:
        return self._written - self._read

    def writable(self) -> int:
        return self.capacity - (self._written - self._read)

    def write(self, frames: np.ndarray) -> int:
        """Copy as many of `frames` (T, channels) as fit; returns how many were written (0 when full). Writer only."""
        written = self._written
        count = min(len(frames), self.capacity - (written - self._read))
        if count <= 0:
            return 0
        start = written % self.capacity
        first = min(count, self.capacity - start)
        np.copyto(self._data[start:start + first], frames[:first])
        if count > first:
            np.copyto(self._data[:count - first], frames[first:count])
        self._written = written + count  # publish after the copy
        return count

    def read_into(self, out: np.ndarray) -> int:
        """Fill the head of `out` (n, channels) with up to n frames; returns how many. Reader only; never allocates."""
        read = self._read
        count = min(len(out), self._written - read)
        if count <= 0:
            return 0
        start = read % self.capacity
        first = min(count, self.capacity - start)
        np.copyto(out[:first], self._data[start:start + first])
        if count > first:
            np.copyto(out[first:count], self._data[:count - first])
        self._read = read + count  # free after the copy
        return count

    def skip(self, count: int) -> int:
        """Drop up to `count` frames unread; returns how many. Reader only."""
        read = self._read
        count = min(count, self._written - read)
        if count <= 0:
            return 0
        self._read = read + count
        return count


# ---------------------------------------------------------------------------------------------------------------------
# PortAudio, loaded on first use

PORTAUDIO_HINT = (
    "Continuo plays the jam on this machine through PortAudio (the Python package sounddevice). Install it with: "
    "Debian/Ubuntu `sudo apt-get install libportaudio2` (and `jackd2` to play through JACK); Fedora `sudo dnf install "
    "portaudio`; Arch `sudo pacman -S portaudio`; macOS and Windows: `pip install sounddevice` (its wheels include "
    "PortAudio). Without it, leave `device` out of the jam's outputs (clients and the recording still play)."
)
_open_streams = 0  # DeviceOutputs whose stream is open: PortAudio is only rescanned while this is 0
JACK_LOST = ("The JACK server this Continuo process played through has quit. PortAudio cannot reconnect to JACK "
             "inside a running process: restart Continuo to play on an audio device again (clients and the recording "
             "still get the jam).")


class JackWatch:
    """A JACK client of our own beside PortAudio's, only to hear when the JACK server quits.

    After that, PortAudio's JACK host API aborts the whole process in Pa_Terminate (an assert in pa_jack.c, which
    Debian's build keeps) and hangs in Pa_StopStream: checked here with a killed `jackd -d dummy`. So once the server
    is gone Continuo never rescans PortAudio, never stops a JACK stream, and drops sounddevice's exit handler (it
    would do both at exit). The client has no ports and no process callback.
    """

    def __init__(self, server: str) -> None:
        self.server, self.lost, self._client = server, False, None
        name = ctypes.util.find_library("jack") or "libjack.so.0"
        try:
            self._lib = ctypes.CDLL(name)
        except OSError:
            return  # no libjack of our own: PortAudio's JACK host API found one, so this is unexpected; watch nothing
        self._lib.jack_client_open.restype = ctypes.c_void_p
        self._quiet = ctypes.CFUNCTYPE(None, ctypes.c_char_p)(lambda message: None)
        self._lib.jack_set_error_function(self._quiet)  # "server is not running" is an answer here, not an error
        self._lib.jack_set_info_function(self._quiet)
        self._on_shutdown = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(self._shutdown)
        status = ctypes.c_int(0)
        no_start_server, server_name = 0x01, 0x04
        client = self._lib.jack_client_open(b"continuo-watch", ctypes.c_int(no_start_server | server_name),
                                            ctypes.byref(status), server.encode())
        if client:
            self._lib.jack_on_shutdown(ctypes.c_void_p(client), self._on_shutdown, None)
            self._lib.jack_activate(ctypes.c_void_p(client))
            self._client = client
        else:
            self.lost = True  # PortAudio connected a moment ago and the server is already gone

    def _shutdown(self, _arg: int) -> None:  # JACK's thread
        self.lost = True

    def close(self) -> None:
        if self._client is not None and not self.lost:
            self._lib.jack_client_close(ctypes.c_void_p(self._client))
        self._client = None


_jack_watch: JackWatch | None = None
_loaded = False  # load_sounddevice has set up the watch and the exit hook


def jack_lost() -> bool:
    """The JACK server PortAudio is connected to in this process has quit (see JackWatch)."""
    return _jack_watch is not None and _jack_watch.lost


def _watch_jack(sounddevice: Any) -> None:
    global _jack_watch
    if any("JACK" in host_api["name"] for host_api in sounddevice.query_hostapis()):
        _jack_watch = JackWatch(os.environ.get("JACK_DEFAULT_SERVER") or "default")


def _skip_portaudio_exit() -> None:
    """At exit, after JACK quit: sounddevice's own exit handler would abort or hang the process (see JackWatch)."""
    if jack_lost():
        atexit.unregister(sys.modules["sounddevice"]._exit_handler)


def load_sounddevice(*, rescan: bool = False) -> Any:
    """The sounddevice module, imported on first use; `rescan` re-reads the devices (a JACK server started later).

    Raises AudioError saying what to install where the package or the PortAudio library is missing, and, on a rescan,
    where the JACK server PortAudio was connected to has quit (only a new process can reconnect).
    """
    global _jack_watch, _loaded
    try:
        import sounddevice
    except ImportError as error:
        raise AudioError(f"The sounddevice package is not installed ({error}). `pip install sounddevice`. "
                         f"{PORTAUDIO_HINT}") from error
    except OSError as error:  # sounddevice raises OSError('PortAudio library not found') at import
        raise AudioError(f"The PortAudio library could not be loaded ({error}). {PORTAUDIO_HINT}") from error
    if not _loaded:
        _loaded = True
        atexit.register(_skip_portaudio_exit)  # registered after sounddevice's, so it runs first
        _watch_jack(sounddevice)
    if rescan and _open_streams == 0:
        if jack_lost():
            raise AudioError(JACK_LOST)
        if _jack_watch is not None:
            _jack_watch.close()
            _jack_watch = None
        sounddevice._terminate()  # the documented way to see devices that appeared after import
        sounddevice._initialize()
        _watch_jack(sounddevice)
    return sounddevice


@dataclass(frozen=True)
class OutputDevice:
    index: int
    name: str
    host_api: str  # "JACK Audio Connection Kit", "ALSA", "Core Audio", "Windows WASAPI", ...
    channels: int  # output channels
    default_sample_rate: int
    low_latency_s: float
    high_latency_s: float
    is_default: bool

    def describe(self) -> str:
        mark = "*" if self.is_default else " "
        return (f"{mark} {self.index:>3}  {self.name}  ({self.host_api}; {self.channels} out, "
                f"{self.default_sample_rate} Hz, latency {self.low_latency_s * 1000:.1f}-"
                f"{self.high_latency_s * 1000:.1f} ms)")


def list_devices() -> list[OutputDevice]:
    """The output devices PortAudio sees now (JACK's appear while a JACK server runs); * marks the default."""
    sd = load_sounddevice(rescan=True)
    host_apis = sd.query_hostapis()
    try:
        default = sd.query_devices(kind="output")["index"]
    except sd.PortAudioError:
        default = -1
    return [
        OutputDevice(index=info["index"], name=info["name"], host_api=host_apis[info["hostapi"]]["name"],
                     channels=info["max_output_channels"], default_sample_rate=int(info["default_samplerate"]),
                     low_latency_s=info["default_low_output_latency"],
                     high_latency_s=info["default_high_output_latency"], is_default=info["index"] == default)
        for info in sd.query_devices() if info["max_output_channels"] > 0
    ]


def describe_devices() -> str:
    """`continuo jam --list-devices`: one line per output device, or what to do when there is none."""
    devices = list_devices()
    if not devices:
        return ("No audio output device found. On Linux without a sound card, start a JACK server "
                "(`jackd -d dummy` or your interface's backend) and list again.")
    return "\n".join(device.describe() for device in devices)


# ---------------------------------------------------------------------------------------------------------------------
# The local audio device


@dataclass(frozen=True)
class PlaybackSettings:
    """What the user chooses for the local audio output."""

    device: int | str | None = None  # index or a part of the name (see list_devices); None: the default output
    block_frames: int = 0  # frames per callback; 0: the device's choice (JACK always uses its period)
    latency: float | str = "low"  # seconds, or "low"/"high" (PortAudio's defaults for the device)
    sample_rate: int = 0  # 0: the device's default rate (JACK: the server's)
    channels: int = 2  # fewer where the device has fewer
    buffer_s: float = 16.0  # ring capacity: how far ahead the jam may write
    fade_s: float = 0.005  # an empty ring fades to silence over this, and sound comes back with a fade-in

    def __post_init__(self) -> None:
        if isinstance(self.latency, str) and self.latency not in ("low", "high"):
            raise BadRequest(f"latency must be 'low', 'high' or seconds (e.g. 0.01), got {self.latency!r}")
        if not isinstance(self.latency, str) and not 0.0 < self.latency <= 2.0:
            raise BadRequest(f"latency must be between 0 and 2 seconds, got {self.latency}")
        if not 0 <= self.block_frames <= 16384:
            raise BadRequest(f"block must be 0 (the device's choice) to 16384 frames, got {self.block_frames}")
        if not (self.sample_rate == 0 or 8000 <= self.sample_rate <= 384000):
            raise BadRequest(f"sample_rate must be 0 (the device's) or 8000-384000 Hz, got {self.sample_rate}")
        if self.channels < 1 or not 0.1 <= self.buffer_s <= 120.0 or not 0.0 <= self.fade_s <= 0.1:
            raise BadRequest(f"channels >= 1, buffer_s 0.1-120 s and fade_s 0-0.1 s, got {self.channels}, "
                             f"{self.buffer_s}, {self.fade_s}")

    @classmethod
    def from_wire(cls, device: str = "", block: int = 0, latency: str | float = "") -> PlaybackSettings:
        """The jam request's `device s, block i, latency s/f`: "" is the default device and "low" latency; a device
        made of digits is an index, anything else a part of its name; a latency may be "low", "high" or seconds."""
        chosen: int | str | None = int(device) if device.strip().isdigit() else (device.strip() or None)
        if isinstance(latency, str):
            text = latency.strip().lower() or "low"
            try:
                latency = text if text in ("low", "high") else float(text)
            except ValueError:
                raise BadRequest(f"latency must be 'low', 'high' or seconds (e.g. 0.01), got {latency!r}") from None
        return cls(device=chosen, block_frames=int(block), latency=latency)


@dataclass(frozen=True)
class PlaybackStatus:
    device: str
    host_api: str
    sample_rate: int
    channels: int
    block_frames: int  # 0: variable (the host's choice per callback)
    latency_s: float  # PortAudio's reported output latency of the open stream
    buffered_s: float  # audio handed over and not yet played (ring + chunks waiting for room)
    started: bool  # the first chunk has started sounding
    blocks: int  # callbacks run
    frames_played: int  # frames of chunks that reached the device (not counting silence before the start)
    underruns: int  # callbacks that found the ring short while the jam was playing (each fades to silence)
    underrun_frames: int
    xruns: int  # callbacks PortAudio flagged output_underflow (the host missed a deadline)
    late_start_s: float  # how much of the first chunk was skipped because it arrived after its clock time
    drift_s: float  # the device's clock against time.monotonic() since the start (+: the device runs slow)
    clock_offset_s: float  # the last chunk: when it will sound minus its time on the jam's clock (+: late)
    error: str  # why the output stopped working, or ""


class DeviceOutput:
    """The jam on this machine's audio device: a JamSink over a PortAudio stream (sounddevice), JACK where it runs.

    `play(chunk)` queues the bar and returns; a feeder thread resamples it to the device's rate (one continuous soxr
    stream, so bar seams stay seamless), maps its channels and writes it into a RingBuffer, waiting for room when the
    jam runs far ahead. The PortAudio callback only reads the ring: no lock, no buffer allocation, no waiting, no
    logging (in CPython it still needs the GIL, as every Python callback does).

    Timing: the first chunk sounds at its clock time, `clock.reading().time_of_beat(chunk.start_beat)`. Each callback
    knows when its first frame reaches the output (PortAudio's outputBufferDacTime, or the stream's reported latency
    where the host gives no times), so the chunk's first frame is placed at the exact frame that sounds at that
    moment: the device's output latency is taken off. A first chunk that arrives late skips its late frames, so the
    jam stays on the grid. Every later chunk follows back to back (they are bar-exact). An empty ring (the jam fell
    behind) is counted as an underrun, fades to silence over `fade_s` instead of clicking, and keeps the grid: the
    frames it missed are skipped when audio comes back (with a fade-in), so bars still land on the clock's bar lines.
    Bars the jam leaves out (a chunk whose start_beat lies past the previous chunk's end) become silence for the same
    reason. The clock is read once per chunk, in `play`, only to report `clock_offset_s` (how far the stream and the
    clock have moved apart: device clock drift, a MIDI or host clock's jitter); nothing is moved mid-stream, since
    that would be a jump or a gap in the sound: re-syncing is the jam's decision, at a bar line.

    The callback's own wake-up delay (waiting for the GIL) moves the first chunk earlier by as much: here 0.05 ms
    median, 0.2 ms at most over 2 s on JACK's dummy driver with the machine otherwise quiet.
    """

    name = "device"

    def __init__(self, clock: JamClock, settings: PlaybackSettings = PlaybackSettings(), *,
                 monitor: RingBuffer | None = None) -> None:
        """Opens and starts the stream (silence until the first chunk). `monitor`, if given, receives a copy of every
        frame the callback outputs (dropped when full): for meters and tests."""
        global _open_streams
        sd = load_sounddevice(rescan=True)
        self.clock, self.settings, self.monitor = clock, settings, monitor
        info = self._find_device(sd, settings.device)
        self.channels = min(settings.channels, info["max_output_channels"])
        rate = settings.sample_rate or int(info["default_samplerate"])
        self._ring = RingBuffer(max(1, round(settings.buffer_s * rate)), self.channels)
        fade_frames = max(1, round(settings.fade_s * rate))
        self._fall = np.linspace(1.0, 0.0, fade_frames + 1, dtype=np.float32)[1:, None]  # (F, 1) reaches 0
        self._rise = np.ascontiguousarray(1.0 - self._fall)
        self._last = np.zeros(self.channels, dtype=np.float32)  # the last frame of sound, faded from
        self._scratch = np.zeros((fade_frames, self.channels), dtype=np.float32)
        self._fade_pos = fade_frames  # frames of the fall already played (F: silent, nothing to fade)
        self._rising = False
        # Callback state (written only by the callback) and what the jam side publishes to it (single stores)
        self._anchor_s: float | None = None  # when chunk 0's frame 0 must sound, on time.monotonic()
        self._ending = False  # close() asked to play out what is left: an empty ring is then no underrun
        self._drained = False
        self._started = False
        self._debt = 0  # frames the timeline has moved on without sound: skipped when audio comes back
        self._blocks = self._frames_out = self._frames_played = 0
        self._underruns = self._underrun_frames = self._xruns = 0
        self._late_frames = 0
        self._start = (0, 0.0)  # (stream frame, time.monotonic()) at which chunk 0's frame 0 sounds
        self._last_block = (0, 0.0)  # (stream frame, time.monotonic() it sounds) of the latest callback
        # Feeder side
        self._queue: queue.SimpleQueue[tuple[JamChunk, float] | object | None] = queue.SimpleQueue()
        self._handed_frames = 0  # device frames play() queued (the jam's thread stores it)
        self._fed_frames = 0  # ... of which the feeder has taken (the feeder stores it)
        self._resampler: Any = None
        self._resampler_rate = 0
        self._queued_frames = 0.0  # device frames handed to the ring so far (the last chunk's position)
        self._last_chunk = (0.0, 0.0)  # (ring position in frames, its clock time) of the last chunk queued
        self._end_beat: float | None = None  # where the last chunk queued ends on the clock's timeline
        self._error = ""
        self._closing = False
        # A stop at a bar's end (stop_after): the jam's thread stores _stop_bar, the feeder the ring frame where each
        # bar ends; whichever of the two comes second publishes _stop_frame, which the callback never reads past
        self._stop_bar: int | None = None
        self._bar_ends: dict[int, int] = {}  # bar -> ring frame (total frames written) at its end
        self._stop_frame: int | None = None
        if monitor is not None and monitor.channels != self.channels:
            raise ValueError(f"the monitor ring has {monitor.channels} channels, the output {self.channels}")
        self.sample_rate, self.device_name = rate, info["name"]
        self._stream = None
        try:
            self._stream = sd.OutputStream(
                samplerate=rate, blocksize=settings.block_frames, device=info["index"], channels=self.channels,
                dtype="float32", latency=settings.latency, callback=self._callback, finished_callback=self._finished)
            self._stream.start()
        except (sd.PortAudioError, ValueError) as error:
            if self._stream is not None:
                self._stream.close()
            raise AudioError(f"Could not open the audio device {info['name']!r} at {rate} Hz, block "
                             f"{settings.block_frames or 'auto'}, latency {settings.latency}: {error}. Try another "
                             "device, rate or block size (`continuo jam --list-devices`).") from error
        _open_streams += 1
        self.sample_rate = int(self._stream.samplerate)
        self.host_api = sd.query_hostapis(info["hostapi"])["name"]
        self._feeder = threading.Thread(target=self._feed, name="continuo-playback-feeder", daemon=True)
        self._feeder.start()
        log.info("playback device=%r host_api=%r rate=%d block=%s latency_ms=%.1f", self.device_name, self.host_api,
                 self.sample_rate, settings.block_frames or "auto", self._stream.latency * 1000)

    @staticmethod
    def _find_device(sd: Any, device: int | str | None) -> dict[str, Any]:
        try:
            info = sd.query_devices(device, kind="output") if device is None else sd.query_devices(device)
        except (ValueError, sd.PortAudioError) as error:
            choices = "; ".join(f"{d.index}: {d.name}" for d in list_devices()) or "none"
            raise BadRequest(f"No audio output device {device!r} ({error}). Output devices here: {choices}. "
                             "Name one by index or part of its name (`continuo jam --list-devices`).") from error
        if info["max_output_channels"] < 1:
            raise BadRequest(f"The audio device {info['name']!r} has no outputs; pick an output device "
                             "(`continuo jam --list-devices`).")
        return info

    # -- the jam's side ---------------------------------------------------------------------------------------------

    def play(self, chunk: JamChunk) -> None:
        """Queue the chunk (never blocks). The first one fixes when the stream starts: its clock time."""
        if self._closing:
            raise AudioError("This audio output is closed; start a new jam to play again.")
        clock_time_s = self.clock.reading().time_of_beat(chunk.start_beat)
        self._handed_frames += round(chunk.audio.shape[1] * self.sample_rate / chunk.sample_rate)
        self._queue.put((chunk, clock_time_s))

    def stop_after(self, bar: int) -> None:
        """End the sound at `bar`'s last frame (its natural end: no fade is needed, none is cut mid-bar); later bars
        already in the ring are never read, later ones still queued are dropped. Never blocks."""
        if self._stop_bar is not None:
            return
        self._stop_bar = bar  # first: the feeder, having stored a bar's end, then looks at it (see _feed)
        if bar < 0:
            self._stop_frame = 0
        elif bar in self._bar_ends:
            self._stop_frame = self._bar_ends[bar]
        self._queue.put(_STOP)  # wakes the feeder: it flushes the resampler's last frames of that bar

    def status(self) -> PlaybackStatus:
        rate = self.sample_rate
        start_frame, start_s = self._start
        block_frame, block_s = self._last_block
        drift_s = block_s - (start_s + (block_frame - start_frame) / rate) if self._started else 0.0
        position, clock_time_s = self._last_chunk
        offset_s = start_s + position / rate + drift_s - clock_time_s if self._started else 0.0
        return PlaybackStatus(
            device=self.device_name, host_api=self.host_api, sample_rate=rate, channels=self.channels,
            block_frames=self.settings.block_frames, latency_s=float(self._stream.latency),
            buffered_s=(self._ring.readable() + max(0, self._handed_frames - self._fed_frames)) / rate,
            started=self._started,
            blocks=self._blocks, frames_played=self._frames_played, underruns=self._underruns,
            underrun_frames=self._underrun_frames, xruns=self._xruns, late_start_s=self._late_frames / rate,
            drift_s=drift_s, clock_offset_s=offset_s,
            error=self._error or (JACK_LOST if jack_lost() and "JACK" in self.host_api else ""))

    def close(self, *, drain: bool = True, timeout_s: float | None = None) -> None:
        """Stop the output. `drain` plays what is queued to its end first (waiting up to `timeout_s`, default: the
        buffered audio plus two seconds); without it the sound stops now (faded over one block by PortAudio's stop)."""
        global _open_streams
        if self._closing:
            return
        self._closing = True
        self._queue.put(None)
        if drain and not jack_lost():
            if timeout_s is None:  # what is buffered, after the wait for the first chunk's clock time
                timeout_s = self.status().buffered_s + max(0.0, (self._anchor_s or 0.0) - time.monotonic()) + 2.0
            deadline = time.monotonic() + timeout_s
            self._feeder.join(max(0.0, deadline - time.monotonic()))
            self._ending = True
            while (self._anchor_s is not None and not self._drained and time.monotonic() < deadline
                   and self._stream.active):
                time.sleep(0.01)
        self._ending = True
        self._feeder.join(1.0)
        if jack_lost() and "JACK" in self.host_api:
            log.warning("playback device=%r: the JACK server quit; the stream is left as it is", self.device_name)
        else:
            self._stream.stop()  # waits for the callback to return
            self._stream.close()
        _open_streams -= 1
        status = self.status()
        log.info("playback closed device=%r underruns=%d xruns=%d played_s=%.2f", self.device_name, status.underruns,
                 status.xruns, status.frames_played / self.sample_rate)

    def _feed(self) -> None:
        """The feeder thread: chunks -> device rate and channels -> ring, in order, waiting for room."""
        try:
            while (item := self._queue.get()) is not None:
                if item is _STOP:
                    if self._stop_bar is not None and self._stop_bar in self._bar_ends:
                        self._flush_resampler()  # that bar's last frames into the ring
                    continue
                chunk, clock_time_s = item
                if self._stop_bar is not None and chunk.bar > self._stop_bar:
                    continue  # past the stop: never sounds
                after_gap = self._skip_to(chunk)
                self._last_chunk = (self._queued_frames, clock_time_s)
                self._queued_frames += chunk.audio.shape[1] * self.sample_rate / chunk.sample_rate
                self._end_beat = chunk.start_beat + chunk.beats
                frames = self._to_device(chunk.audio, chunk.sample_rate)
                if after_gap:  # sound comes back from silence with a fade-in, as after an underrun
                    count = min(len(frames), len(self._rise))
                    frames[:count] *= self._rise[:count]
                self._write(frames)
                self._bar_ends[chunk.bar] = round(self._queued_frames)  # its end on the ring's frame count
                if self._stop_bar is not None and chunk.bar >= self._stop_bar:  # second: see stop_after
                    self._stop_frame = self._bar_ends.get(self._stop_bar, self._bar_ends[chunk.bar])
                    self._flush_resampler()
                self._fed_frames += round(chunk.audio.shape[1] * self.sample_rate / chunk.sample_rate)
                if self._anchor_s is None:
                    self._anchor_s = clock_time_s  # published once its audio is in the ring
            self._flush_resampler()
        except Exception as error:  # the jam keeps going; status() and the log say why the device went quiet
            self._error = f"{type(error).__name__}: {error}"
            log.exception("playback feeder failed: %s", self._error)

    def _skip_to(self, chunk: JamChunk) -> bool:
        """Bars the jam left out (it skipped ahead) become silence, so the chunk still lands on its own beat."""
        if self._end_beat is None or chunk.start_beat <= self._end_beat + 1e-9:
            return False
        self._flush_resampler()
        gap = round((chunk.start_beat - self._end_beat) * 60.0 / chunk.bpm * self.sample_rate)
        self._queued_frames += gap
        log.info("playback: bars skipped by the jam, %d frames of silence before beat %.2f", gap, chunk.start_beat)
        self._write(np.zeros((gap, self.channels), np.float32))
        return True

    def _flush_resampler(self) -> None:
        """Write the resampler's last few frames; the next chunk at another rate or after a gap starts a new one."""
        if self._resampler is not None:
            self._write(self._resampler.resample_chunk(np.zeros((0, self.channels), np.float32), last=True))
            self._resampler, self._resampler_rate = None, 0

    def _to_device(self, audio: np.ndarray, rate: int) -> np.ndarray:
        """(C, T) at `rate` -> (T', channels) float32 at the device rate."""
        audio = map_channels(np.asarray(audio, dtype=np.float32), self.channels)
        frames = np.array(audio.T, order="C")  # a copy: the jam's chunk stays as it was
        if rate == self.sample_rate:
            return frames
        if self._resampler_rate != rate:  # one stream for the whole jam; a new one only if the model rate changes
            self._resampler = soxr.ResampleStream(rate, self.sample_rate, self.channels, dtype="float32",
                                                  quality=RESAMPLE_QUALITY)
            self._resampler_rate = rate
        return self._resampler.resample_chunk(frames).reshape(-1, self.channels)

    def _write(self, frames: np.ndarray) -> None:
        done = 0
        while done < len(frames) and not (self._closing and self._ending):
            done += self._ring.write(frames[done:])
            if done < len(frames):
                time.sleep(0.02)  # the ring is full: the jam is far ahead; wait for the callback to make room

    # -- the audio callback (PortAudio's thread) ----------------------------------------------------------------------

    def _callback(self, out: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        if status.output_underflow:
            self._xruns += 1
        try:
            self._fill(out, frames, time_info)
        except Exception as error:  # never let a bug stop the stream mid-set: silence, and status() says why
            out.fill(0.0)
            self._error = self._error or f"audio callback: {type(error).__name__}: {error}"

    def _finished(self) -> None:
        """PortAudio's thread, once the stream has stopped: by close(), or by itself (JACK quit, device unplugged)."""
        if not self._closing:
            self._error = self._error or "the audio device stopped (the JACK server quit or the device went away)"
            log.warning("playback device=%r stopped by itself", self.device_name)

    def _fill(self, out: np.ndarray, frames: int, time_info: Any) -> None:
        block_s = self._block_time_s(time_info)
        block_frame = self._frames_out
        self._frames_out = block_frame + frames
        self._blocks += 1
        self._last_block = (block_frame, block_s)
        start = 0
        if not self._started:
            anchor_s = self._anchor_s
            offset = frames if anchor_s is None else round((anchor_s - block_s) * self.sample_rate)
            if offset >= frames:
                out.fill(0.0)
                self._tap(out)
                return
            self._started = True
            self._start = (block_frame + offset, block_s + offset / self.sample_rate)
            if offset < 0:
                self._late_frames = self._debt = -offset
            else:
                out[:offset].fill(0.0)
                start = offset
        self._render(out, start, frames)
        self._tap(out)

    def _block_time_s(self, time_info: Any) -> float:
        """When this callback's first frame sounds, on time.monotonic(): now plus the output latency."""
        lead_s = time_info.outputBufferDacTime - time_info.currentTime
        if not 0.0 < lead_s < 1.0:  # the host gives no usable times: use the stream's reported latency
            lead_s = self._stream.latency
        return time.monotonic() + lead_s

    def _render(self, out: np.ndarray, pos: int, frames: int) -> None:
        stop = self._stop_frame  # one load: the jam's stop may land while this block is filled
        if self._debt:
            self._debt -= self._ring.skip(self._debt if stop is None else min(self._debt, stop - self._ring._read))
        room = frames if stop is None else max(0, min(frames, pos + stop - self._ring._read))
        read = 0 if self._debt else self._ring.read_into(out[pos:room])
        if read:
            if self._rising:
                self._fade_in(out[pos:pos + read])
            self._frames_played += read
            pos += read
            np.copyto(self._last, out[pos - 1])
            self._fade_pos = 0
        if pos < frames:
            stopped = stop is not None and self._ring._read >= stop
            if stopped:
                self._ending = True  # the stop's bar has ended: silence now is no underrun
            if not self._ending:
                self._underruns += 1
                self._underrun_frames += frames - pos
                self._debt += frames - pos
            self._fade_out(out[pos:frames])
            self._rising = True
            self._drained = self._ending and self._fade_pos >= len(self._fall)

    def _fade_out(self, out: np.ndarray) -> None:
        """Hold the last frame and ramp it to zero over the fade (continuing across callbacks), then silence."""
        count = min(len(out), len(self._fall) - self._fade_pos)
        if count > 0:
            np.multiply(self._fall[self._fade_pos:self._fade_pos + count], self._last, out=out[:count])
            self._fade_pos += count
        out[max(count, 0):].fill(0.0)

    def _fade_in(self, out: np.ndarray) -> None:
        """Sound back after an underrun: ramp it up while what is left of the fade-out ramps down (no step)."""
        count = min(len(out), len(self._rise))
        np.multiply(out[:count], self._rise[:count], out=out[:count])
        left = min(count, len(self._fall) - self._fade_pos)
        if left > 0:
            scratch = self._scratch[:left]
            np.multiply(self._fall[self._fade_pos:self._fade_pos + left], self._last, out=scratch)
            np.add(out[:left], scratch, out=out[:left])
        self._rising = False

    def _tap(self, out: np.ndarray) -> None:
        if self.monitor is not None:
            self.monitor.write(out)
