"""The jam's local audio output: the lock-free ring, and DeviceOutput playing for real through a JACK dummy server.

The JACK tests start their own `jackd -d dummy` (a unique server name, stopped afterwards) and play through
PortAudio's JACK host API with sounddevice. What they check comes from the callback itself: its counts, and a monitor
ring that receives every frame it outputs. When the first chunk sounds is checked against PortAudio's own times
(outputBufferDacTime), recorded raw by a test subclass beside the output's own arithmetic.
"""

from __future__ import annotations

import importlib.abc
import os
import random
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from bridge.audio.clocks import ClockReading
from bridge.audio.playback import DeviceOutput, JamChunk, PlaybackSettings, RingBuffer, list_devices, load_sounddevice
from bridge.errors import AudioError, BadRequest

# A real device (jackd -d dummy) plays against the wall clock, and the ring's tests race two threads: on a quiet CPU
pytestmark = pytest.mark.serial

RATE = 48000
PERIOD = 256  # the JACK server's block
BPM = 480.0  # a bar of 4 beats is 0.5 s: short bars keep the tests short
BEATS = 1.0  # one beat per chunk: 0.125 s
LEAD_IN_S = 0.3  # beat 0 sounds this long after the clock is made


# ---------------------------------------------------------------------------------------------------------------------
# The ring


def test_ring_wraps_around_in_order() -> None:
    ring = RingBuffer(8, 2)
    frames = np.arange(26, dtype=np.float32).reshape(13, 2)
    assert ring.write(frames[:5]) == 5
    out = np.zeros((3, 2), np.float32)
    assert ring.read_into(out) == 3 and np.array_equal(out, frames[:3])
    assert ring.write(frames[5:13]) == 6  # 2 still unread: 6 fit, across the end of the array
    out = np.zeros((10, 2), np.float32)
    assert ring.read_into(out) == 8
    assert np.array_equal(out[:8], frames[3:11])
    assert ring.readable() == 0 and ring.read_into(out) == 0


def test_ring_never_holds_more_than_its_capacity() -> None:
    ring = RingBuffer(8, 1)
    assert ring.write(np.ones((20, 1), np.float32)) == 8
    assert ring.write(np.ones((1, 1), np.float32)) == 0
    assert ring.readable() == 8 and ring.writable() == 0
    assert ring.skip(3) == 3
    assert ring.write(np.full((5, 1), 2, np.float32)) == 3
    assert ring.readable() == 8 and ring.skip(100) == 8 and ring.readable() == 0


def test_ring_concurrent_writer_and_reader_see_every_sample_in_order() -> None:
    total, capacity = 300_000, 1000  # a small ring: it wraps and fills hundreds of times
    ring = RingBuffer(capacity, 2)
    source = np.stack([np.arange(total), -np.arange(total)], axis=1).astype(np.float32)  # exact below 2**24
    received = np.full((total, 2), np.nan, np.float32)
    worst = [0]

    def write() -> None:
        rng, done = random.Random(1), 0
        while done < total:
            done += ring.write(source[done:done + rng.randint(1, 700)])
            worst[0] = max(worst[0], ring.readable())
            time.sleep(0)

    writer = threading.Thread(target=write)
    writer.start()
    rng, got, deadline = random.Random(2), 0, time.monotonic() + 20
    while got < total and time.monotonic() < deadline:
        got += ring.read_into(received[got:got + rng.randint(1, 700)])
        time.sleep(0)
    writer.join(5)
    assert got == total
    assert np.array_equal(received, source)
    assert worst[0] <= capacity


# ---------------------------------------------------------------------------------------------------------------------
# A real JACK server and the device


@pytest.fixture(scope="module")
def jack_server() -> Iterator[str]:
    """A `jackd -d dummy` server of our own at 48 kHz, 256 frames; yields its name, stops it afterwards."""
    if shutil.which("jackd") is None:
        pytest.skip("jackd is not installed (Debian: apt-get install jackd2; .ci/debian-packages lists it)")
    try:
        load_sounddevice()
    except AudioError as error:
        pytest.skip(str(error))
    name = f"continuo-test-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    saved = {key: os.environ.get(key) for key in ("JACK_DEFAULT_SERVER", "JACK_NO_START_SERVER")}
    # Realtime scheduling where allowed (jackd goes on without it where not); -t: a loaded 2-core machine must not get
    # the client dropped
    server = subprocess.Popen(["jackd", "-t", "5000", "-n", name, "-d", "dummy", "-r", str(RATE),
                               "-p", str(PERIOD)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        waited = subprocess.run(["jack_wait", "-s", name, "-w", "-t", "5"], capture_output=True, text=True,
                                timeout=10) if shutil.which("jack_wait") else None
        if server.poll() is not None or (waited is not None and waited.returncode != 0):
            server.kill()
            pytest.skip(f"jackd -d dummy could not start here: {server.communicate(timeout=5)[0][-500:]}")
        os.environ["JACK_DEFAULT_SERVER"] = name
        os.environ["JACK_NO_START_SERVER"] = "1"
        if not any("JACK" in device.host_api for device in list_devices()):
            pytest.skip("PortAudio here has no JACK host API (libportaudio2 built without JACK)")
        yield name
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        load_sounddevice(rescan=True)  # PortAudio lets go of the server while it still runs
        server.terminate()
        try:
            server.wait(5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)


class FixedClock:
    """The session's timeline at a steady tempo: beat 0 falls at `origin_s` on time.monotonic()."""

    kind = "internal"

    def __init__(self, origin_s: float, bpm: float = BPM) -> None:
        self.origin_s, self.bpm = origin_s, bpm

    def reading(self, at_s: float | None = None) -> ClockReading:
        at_s = time.monotonic() if at_s is None else at_s
        return ClockReading(at_s=at_s, beat=(at_s - self.origin_s) * self.bpm / 60.0, bpm=self.bpm, beats_per_bar=4,
                            playing=True)

    def close(self) -> None:
        pass


class RecordingOutput(DeviceOutput):
    """DeviceOutput that also keeps PortAudio's raw times of each callback, from before the output's own code runs:
    (stream frame of the block, time.monotonic(), outputBufferDacTime - currentTime)."""

    def __init__(self, *args, **kwargs) -> None:
        self.blocks_seen = np.zeros((4096, 3))
        self.block_count = 0
        self.frame_count = 0
        super().__init__(*args, **kwargs)

    def _callback(self, out, frames, time_info, status) -> None:
        if self.block_count < len(self.blocks_seen):
            self.blocks_seen[self.block_count] = (self.frame_count, time.monotonic(),
                                                  time_info.outputBufferDacTime - time_info.currentTime)
        self.block_count += 1
        self.frame_count += frames
        super()._callback(out, frames, time_info, status)

    def sound_time_s(self, frame: int) -> float:
        """When stream frame `frame` reached the output, by PortAudio's times for its block."""
        blocks = self.blocks_seen[:min(self.block_count, len(self.blocks_seen))]
        row = blocks[np.searchsorted(blocks[:, 0], frame, side="right") - 1]
        return row[1] + row[2] + (frame - row[0]) / self.sample_rate


class LatencyBlindOutput(RecordingOutput):
    """A broken output for the control: it ignores the output latency (aims the chunk at the callback's time)."""

    def _block_time_s(self, time_info) -> float:
        return time.monotonic()


MODULUS = 1 << 16  # the counter repeats after 1.4 s at 48 kHz


def counter_chunk(index: int, frames: int) -> JamChunk:
    """Chunk `index` of a recognisable signal: frame n of the stream is ((n % 2**16) + 1) / 2**17 on the left and its
    negative on the right: never zero, exact in float32, so where each played frame came from can be read back."""
    n = index * frames + np.arange(frames)
    left = ((n % MODULUS) + 1) / (2.0 * MODULUS)
    return JamChunk(jam_id="t", bar=index, start_beat=index * BEATS, beats=BEATS, bpm=BPM,
                    audio=np.stack([left, -left]).astype(np.float32), sample_rate=RATE, prompt_id=0)


def stream_frame(value: float) -> int:
    """Which frame of the counter stream (mod 2**16) a played value is."""
    return round(value * 2 * MODULUS) - 1


def stream_origin(audio: np.ndarray) -> int:
    """The monitor frame at which the stream's frame 0 sounded (or would have, where a late start skipped it): read
    from the first frame played and its counter value."""
    first = first_sound(audio)
    return first - stream_frame(audio[first, 0])


def chunk_frames(rate: int = RATE) -> int:
    return round(BEATS * 60.0 / BPM * rate)


def played(monitor: RingBuffer) -> np.ndarray:
    out = np.zeros((monitor.readable(), monitor.channels), np.float32)
    monitor.read_into(out)
    return out


@pytest.fixture
def open_output(jack_server: str) -> Iterator[Callable[..., tuple[DeviceOutput, RingBuffer, float]]]:
    """Opens DeviceOutputs on the JACK server's device with a monitor of all they play; closes them afterwards.
    Returns (output, monitor, origin_s): beat 0 of the output's clock falls at origin_s."""
    made: list[DeviceOutput] = []

    def open_(cls: type[DeviceOutput] = RecordingOutput, **settings) -> tuple[DeviceOutput, RingBuffer, float]:
        jack = next(device for device in list_devices() if "JACK" in device.host_api)
        monitor, clock = RingBuffer(RATE * 6, 2), FixedClock(0.0)
        made.append(cls(clock, PlaybackSettings(device=jack.index, **settings), monitor=monitor))
        clock.origin_s = time.monotonic() + LEAD_IN_S  # opening the device takes a while (PortAudio rescans)
        return made[-1], monitor, clock.origin_s

    yield open_
    for output in made:
        output.close(drain=False)


def first_sound(audio: np.ndarray) -> int:
    nonzero = np.flatnonzero(audio[:, 0])
    assert len(nonzero), "nothing played"
    return int(nonzero[0])


def test_bars_play_in_order_at_their_clock_time_with_no_underruns(open_output) -> None:
    output, monitor, origin_s = open_output()
    frames, count, fade = chunk_frames(), 6, round(PlaybackSettings().fade_s * RATE)
    for index in range(count):
        output.play(counter_chunk(index, frames))
    output.close(drain=True)
    status = output.status()
    audio = played(monitor)

    assert status.device and "JACK" in status.host_api and status.sample_rate == RATE and status.latency_s > 0
    # 0 underruns by the callback's own count. PortAudio's output_underflow flags (status.xruns) are not asserted:
    # they count the JACK server's own missed cycles, which a loaded machine has.
    assert status.started and status.underruns == 0 and status.underrun_frames == 0, status
    late = round(status.late_start_s * RATE)  # a stalled start skips what is already late (0 on a quiet machine)
    assert status.frames_played + late == count * frames
    origin, end = stream_origin(audio), stream_origin(audio) + count * frames
    expected = np.concatenate([counter_chunk(index, frames).audio for index in range(count)], axis=1).T
    assert np.array_equal(audio[origin + late:end], expected[late:])  # every frame, in order, on both channels
    assert not audio[:origin + late].any() and not audio[end + fade:].any()  # silence before; the end fades out
    # frame 0 sounded at beat 0 on the clock, within one block, by PortAudio's own times for its callback
    assert abs(output.sound_time_s(origin) - origin_s) < PERIOD / RATE, output.sound_time_s(origin) - origin_s
    assert abs(status.clock_offset_s) < 0.2  # the last bar is due about where the clock says (the dummy drifts)


def test_control_an_output_blind_to_latency_misses_the_clock_by_more_than_a_block(open_output) -> None:
    output, monitor, origin_s = open_output(LatencyBlindOutput)
    frames = chunk_frames()
    for index in range(2):
        output.play(counter_chunk(index, frames))
    output.close(drain=True)
    error_s = output.sound_time_s(stream_origin(played(monitor))) - origin_s
    assert error_s > PERIOD / RATE  # the timing check above fails on this output: it sounds late by its latency


def test_starved_output_counts_underruns_fades_to_silence_and_keeps_the_grid(open_output) -> None:
    output, monitor, origin_s = open_output(fade_s=0.005)
    frames, fade, bar_s = chunk_frames(), round(0.005 * RATE), BEATS * 60.0 / BPM
    output.play(counter_chunk(0, frames))
    deadline = time.monotonic() + 5.0
    while output.status().underrun_frames < 0.05 * RATE and time.monotonic() < deadline:  # the ring runs dry
        time.sleep(0.01)
    starved = output.status()
    due = int(np.ceil((time.monotonic() + 0.25 - origin_s) / bar_s))  # the jam comes back with bars due next
    for index in (due, due + 1):
        output.play(counter_chunk(index, frames))
    output.close(drain=True)
    audio = played(monitor)[:, 0]

    assert starved.underruns > 0 and starved.underrun_frames >= 0.05 * RATE, starved
    origin = stream_origin(audio[:, None])
    end = origin + frames  # chunk 0 ends here, at a nonzero value
    assert audio[end - 1] != 0 and not audio[end + fade:end + fade + 1000].any()  # faded to silence
    assert np.max(np.abs(np.diff(audio[end - 1:end + fade]))) <= abs(audio[end - 1]) / fade + 1e-6  # no click
    # the next bars sound where the clock puts them, after a fade-in: the grid held through the underrun
    bar = origin + due * frames
    resumed = int(np.flatnonzero(audio[end + fade:])[0]) + end + fade
    assert bar <= resumed <= bar + frames
    grid = ((np.arange(resumed + fade, bar + 2 * frames) - origin) % MODULUS + 1) / (2.0 * MODULUS)
    assert np.array_equal(audio[resumed + fade:bar + 2 * frames], grid.astype(np.float32))
    rise = np.abs(audio[resumed:resumed + fade]) / np.abs(grid[0])
    assert rise[0] < 0.05 and np.all(np.diff(rise) > -0.01)  # it comes back with a ramp, not a step


def test_stop_after_ends_the_sound_at_that_bars_last_frame_dropping_the_bars_queued(open_output) -> None:
    output, monitor, origin_s = open_output()
    frames, fade = chunk_frames(), round(PlaybackSettings().fade_s * RATE)
    for index in range(6):  # all in the ring well ahead (the jam's lead)
        output.play(counter_chunk(index, frames))
    deadline = time.monotonic() + 5.0
    while output.status().frames_played == 0 and time.monotonic() < deadline:  # bar 0 is playing
        time.sleep(0.005)
    output.stop_after(2)
    output.play(counter_chunk(6, frames))  # a bar handed out after the stop: dropped too
    output.close(drain=True)
    status, audio = output.status(), played(monitor)
    assert status.underruns == 0 and status.frames_played == 3 * frames, status  # the old output played all 7
    origin = stream_origin(audio)
    end = origin + 3 * frames
    expected = np.concatenate([counter_chunk(index, frames).audio for index in range(3)], axis=1).T
    assert np.array_equal(audio[origin:end], expected)  # bars 0-2 whole: the stop lands at a bar's natural end
    assert not audio[end + fade:].any()  # then silence
    step = np.max(np.abs(np.diff(audio[end - 1:end + fade, 0])))
    assert step <= abs(audio[end - 1, 0]) / fade + 1e-6  # its last frame fades out over fade_s: no click


def test_model_rate_chunks_are_resampled_seamlessly_to_the_device_rate(open_output) -> None:
    output, monitor, origin_s = open_output()
    model_rate, count, hz = 32000, 4, 441.0
    frames = chunk_frames(model_rate)
    for index in range(count):  # one continuous sine cut into bar-exact chunks
        t = (index * frames + np.arange(frames)) / model_rate
        sine = (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)[None]
        output.play(JamChunk(jam_id="t", bar=index, start_beat=index * BEATS, beats=BEATS, bpm=BPM, audio=sine,
                             sample_rate=model_rate, prompt_id=0))
    output.close(drain=True)
    audio = played(monitor)
    assert output.status().underruns == 0
    start = output._start[0]  # the stream frame where chunk 0 starts (the monitor holds every frame from 0)
    length = count * chunk_frames(RATE)
    ideal = 0.5 * np.sin(2 * np.pi * hz * np.arange(length) / RATE)
    body = slice(480, length - 480)  # the resampler's filter settles over the first and last 10 ms
    assert np.max(np.abs(audio[start:start + length, 0][body] - ideal[body])) < 1e-3
    assert np.array_equal(audio[:, 0], audio[:, 1])  # mono mapped onto both channels


def test_unknown_device_says_how_to_list_them(jack_server: str) -> None:
    with pytest.raises(BadRequest, match="--list-devices"):
        DeviceOutput(FixedClock(time.monotonic()), PlaybackSettings(device="no such device anywhere"))


def test_missing_sounddevice_or_portaudio_says_what_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # as if the package were not installed
    with pytest.raises(AudioError, match="pip install sounddevice") as missing:
        load_sounddevice()
    assert "apt-get install libportaudio2" in missing.value.message

    class NoPortAudio(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "sounddevice":
                raise OSError("PortAudio library not found")  # what sounddevice raises at import without it
            return None

    monkeypatch.delitem(sys.modules, "sounddevice")
    monkeypatch.setattr(sys, "meta_path", [NoPortAudio(), *sys.meta_path])
    with pytest.raises(AudioError, match="PortAudio library could not be loaded.*libportaudio2.*dnf install portaudio"):
        load_sounddevice()


def test_close_without_a_chunk_returns_at_once(open_output) -> None:
    output, _, _ = open_output()
    began = time.monotonic()
    output.close(drain=True)
    assert time.monotonic() - began < 1.0 and not output.status().started


def test_settings_from_the_wire() -> None:
    assert PlaybackSettings.from_wire() == PlaybackSettings()
    assert PlaybackSettings.from_wire("3", 512, "0.02") == PlaybackSettings(device=3, block_frames=512, latency=0.02)
    assert PlaybackSettings.from_wire("Focusrite", 0, "high").device == "Focusrite"
    for bad in ({"latency": "soon"}, {"block": -1}, {"latency": 5.0}):
        with pytest.raises(BadRequest, match="latency|block"):
            PlaybackSettings.from_wire(**bad)


JACK_QUITS = """
import os, subprocess, sys, time
import numpy as np
name = sys.argv[1]
server = subprocess.Popen(["jackd", "-t", "5000", "-n", name, "-d", "dummy", "-r", "48000", "-p", "256"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
subprocess.run(["jack_wait", "-s", name, "-w", "-t", "5"], capture_output=True, timeout=10)
os.environ["JACK_DEFAULT_SERVER"], os.environ["JACK_NO_START_SERVER"] = name, "1"
if sys.argv[2] == "unguarded":  # the control: what PortAudio does on its own after the server quits
    import sounddevice
    server.terminate(); server.wait(5); time.sleep(0.3)
    sounddevice._terminate()
    print("survived"); sys.exit(0)
from bridge.audio.clocks import ClockReading
from bridge.audio.playback import DeviceOutput, JamChunk, PlaybackSettings, list_devices
from bridge.errors import AudioError
class Clock:
    kind = "internal"
    def reading(self, at_s=None):
        return ClockReading(at_s=time.monotonic(), beat=-1.0, bpm=120.0, beats_per_bar=4, playing=True)
jack = next(d for d in list_devices() if "JACK" in d.host_api)
output = DeviceOutput(Clock(), PlaybackSettings(device=jack.index))
output.play(JamChunk("t", 0, 0.0, 4.0, 120.0, np.full((2, 96000), 0.1, np.float32), 48000, 0))
time.sleep(0.3)
server.terminate(); server.wait(5)
deadline = time.monotonic() + 5
while not output.status().error and time.monotonic() < deadline:
    time.sleep(0.05)
print("error:", output.status().error)
began = time.monotonic(); output.close(); print("closed in", round(time.monotonic() - began, 2))
try:
    list_devices()
except AudioError as error:
    print("rescan refused:", error.message)
print("survived")
"""


def run_jack_quits(mode: str) -> subprocess.CompletedProcess:
    name = f"continuo-quit-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", JACK_QUITS, name, mode], capture_output=True, text=True, timeout=30,
                          env=env)


def test_jack_quitting_mid_jam_neither_crashes_nor_hangs_the_process(jack_server: str) -> None:
    done = run_jack_quits("guarded")
    assert done.returncode == 0 and "survived" in done.stdout, (done.returncode, done.stdout, done.stderr[-2000:])
    assert "error: The JACK server this Continuo process played through has quit" in done.stdout
    assert "rescan refused: The JACK server" in done.stdout
    assert float(done.stdout.split("closed in ")[1].split()[0]) < 2.0


def test_control_unguarded_portaudio_aborts_when_jack_has_quit(jack_server: str) -> None:
    done = run_jack_quits("unguarded")
    assert done.returncode != 0 and "survived" not in done.stdout  # what the guard above prevents
