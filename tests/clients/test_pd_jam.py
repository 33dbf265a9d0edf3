"""The Pure Data client's jam mode (clients/pd/continuo.pd, [pd jam]) in a real Pd.

A harness patch uses the patch as [continuo <port> <reply>], starts a jam at 240 BPM in 4/4 (a bar a second) and
records the patch's jam outlets with [writesf~] from the same logical time. On <port> this test plays the daemon:
it reads what the patch sends (the jam's start, the transport each beat, a control, a bank save), and once the
transport runs it sends three bars of the patch's jam (constant levels, so each bar is recognisable in the
recording, in 32 kHz files: not Pd's rate) and a bar of another jam. The recording must hold each bar from its own
bar line (4, 8, 12 beats in) to the next, to the sample, the other jam's bar nowhere. Pd: Debian's puredata; the
test skips only where no `pd` is installed.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from tests.clients.osc_signatures import signature_problems
from tests.clients.test_pd import PD, PD_DIR, free_udp_port, jam_and_record, log_outlets, needs_pd, read_log

pytestmark = pytest.mark.serial  # Pd plays the bars in real time, `took < 12` s of wall time: a quiet CPU

RATE = 48000  # Pd's
FILE_RATE = 32000  # the bars' files
BPM, BEATS_PER_BAR = 240.0, 4
BAR = int(RATE * 60 / BPM * BEATS_PER_BAR)  # 48000 samples


def harness(port: int, reply_port: int, log_path: Path, recording: Path) -> str:
    """[continuo port reply_port]: jam at 240 BPM, record its jam outlets, steer it, stop, quit."""
    c = jam_and_record(port, reply_port, recording, "rate 48000, metre 4 4, tempo 240, jam pd jam test")
    c.obj("later", "delay 1500", 500, 20)
    c.msg("steer", "jamprompt add strings, jamset temperature 1.2, jambank save 2", 500, 50)
    c.wire("start", 0, "later")
    c.chain("later", "steer", "continuo")
    c.obj("end", "delay 4800", 700, 20)
    c.obj("end-steps", "t b b b", 700, 50)
    c.msg("stop", "stop", 700, 80)
    c.msg("transport-off", "jamstop, transport 0", 800, 80)
    c.obj("quit-wait", "delay 200", 700, 110)
    c.msg("quit", "; pd quit", 700, 140)
    c.wire("start", 0, "end")
    c.chain("end", "end-steps")
    c.wire("end-steps", 2, "transport-off")
    c.wire("transport-off", 0, "continuo")
    c.wire("end-steps", 1, "stop")
    c.wire("stop", 0, "writesf")
    c.wire("end-steps", 0, "quit-wait")
    c.chain("quit-wait", "quit")
    log_outlets(c, log_path, 300)
    return "\n".join(c.lines()) + "\n"


def osc(address: str, *args) -> bytes:
    builder = OscMessageBuilder(address)
    for value in args:
        builder.add_arg(value)
    return builder.build().dgram


class FakeDaemon:
    """The daemon's side of the jam on a UDP port: keeps what the patch sends; when the patch's transport runs,
    sends the bars (a list of (jam_id, bar, level, path)) to the patch's reply port."""

    def __init__(self, port: int, reply_port: int, bars: list[tuple[str | None, int, float, Path]],
                 stopping: tuple[float, int] | None = None) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", port))
        self.socket.settimeout(0.1)
        self.reply_port, self.bars = reply_port, bars
        self.stop_at = stopping  # (seconds after the transport starts, the last bar to sound): a stop's state
        self.received: list[tuple[str, str, list]] = []  # (address, type tags, args)
        self.stopping = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        jam_id, sent = None, False
        while not self.stopping:
            try:
                data, _ = self.socket.recvfrom(65536)
            except TimeoutError:
                continue
            message = OscMessage(data)
            tags = message.dgram[len(message.address) // 4 * 4 + 4:].split(b"\0", 1)[0].decode().lstrip(",")
            self.received.append((message.address, tags, list(message.params)))
            if message.address == "/continuo/jam/start":
                jam_id = message.params[0]
            if message.address == "/continuo/jam/transport" and message.params[2] == 1 and jam_id and not sent:
                sent = True
                for owner, bar, _, path in self.bars:
                    start_beat = float(bar * BEATS_PER_BAR)
                    self.socket.sendto(osc("/continuo/jam/chunk", owner or jam_id, bar, start_beat,
                                           float(BEATS_PER_BAR), BPM, 1 + (bar >= 3), 0, str(path),
                                           f"/api/jam/{owner or jam_id}/bars/{bar}", 1.0, FILE_RATE),
                                       ("127.0.0.1", self.reply_port))
                self.socket.sendto(osc("/continuo/jam/state", jam_id, "playing", 0, 2.5, 0.4, 2, 0, 0, ""),
                                   ("127.0.0.1", self.reply_port))
                if self.stop_at is not None:
                    delay_s, last = self.stop_at
                    state = osc("/continuo/jam/state", jam_id, "stopping", last, 1.0, 0.4, 2, 0, 0, "")
                    threading.Timer(delay_s, self.socket.sendto, (state, ("127.0.0.1", self.reply_port))).start()

    def close(self) -> None:
        self.stopping = True
        self.thread.join(2)
        self.socket.close()


def run_pd(folder: Path, timeout_s: float = 20) -> str:
    pd = subprocess.Popen([PD, "-nogui", "-nosound", "-nomidi", "-r", str(RATE), "-stderr", "harness.pd"],
                          cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        return pd.communicate(timeout=timeout_s)[0]
    except subprocess.TimeoutExpired:
        pd.kill()
        return pd.communicate()[0] + f"\n(killed after {timeout_s} s)"


def level_runs(channel: np.ndarray) -> list[tuple[int, float]]:
    """(first sample, level) of each run of one value, in order."""
    changes = np.flatnonzero(np.abs(np.diff(channel)) > 1e-4) + 1
    starts = np.concatenate([[0], changes])
    return [(int(start), round(float(channel[start]), 4)) for start in starts]


@needs_pd
def test_pd_jam_plays_each_bar_at_its_bar_line_and_sends_the_transport(tmp_path):
    folder = tmp_path / "pd"
    folder.mkdir()
    shutil.copy(PD_DIR / "continuo.pd", folder / "continuo.pd")
    bars = []
    for owner, bar, level in ((None, 1, 0.1), ("someone-else", 2, 0.9), (None, 2, 0.2), (None, 3, 0.3)):
        path = tmp_path / f"{owner or 'ours'}-bar-{bar}.wav"
        frames = [[level]] if bar == 3 else [[level, -level]]  # bar 3 mono (MusicGen small's), the others stereo
        soundfile.write(path, np.tile(frames, (FILE_RATE, 1)).astype(np.float32), FILE_RATE, subtype="FLOAT")
        bars.append((owner, bar, level, path))
    port, reply_port = free_udp_port(), free_udp_port()
    log_path, recording = tmp_path / "said.txt", tmp_path / "jam.wav"
    (folder / "harness.pd").write_text(harness(port, reply_port, log_path, recording))
    daemon = FakeDaemon(port, reply_port, bars)
    try:
        started = time.monotonic()
        said = run_pd(folder)
        took = time.monotonic() - started
    finally:
        daemon.close()
    log = read_log(log_path)
    context = f"pd said:\n{said}\nthe patch's outlets gave:\n{log}\nit sent:\n{daemon.received}"
    assert "couldn't create" not in said, context
    assert [line for line in said.splitlines() if "error" in line and "continuo-session.txt" not in line] == [], \
        context  # Pd's only complaint: no session counter file yet on a first run
    assert took < 12, context

    # what the patch sent: each message in the schema, the jam's start with the patch's tempo and metre on the host
    # clock, the transport every beat from 0, the controls of its jam
    sent = daemon.received
    for address, tags, args in sent:
        names = tuple(args[2::2]) if address == "/continuo/jam/start" else ()  # its settings' names
        assert signature_problems(address, tags, names) == [], (address, tags, args)
    (start,) = [args for address, _, args in sent if address == "/continuo/jam/start"]
    jam_id = start[0]
    assert jam_id.startswith("pd-") and start[1:] == ["pd jam test", "bpm", 240.0, "beats_per_bar", 4, "clock",
                                                      "host", "behind_ok", 0, "preset", "default"], start
    beats = [args for address, _, args in sent if address == "/continuo/jam/transport"]
    playing = [args for args in beats if args[2] == 1]
    assert [args[1] for args in playing[:5]] == [0.0, 1.0, 2.0, 3.0, 4.0], beats
    assert all(args[0] == 240.0 and args[3] == 4 for args in beats), beats
    assert beats[-1][2] == 0  # transport 0: one last message saying it stopped
    assert ["/continuo/jam/control", [jam_id, "prompt", "add strings"]] in [[a, p] for a, _, p in sent]
    assert ["/continuo/jam/control", [jam_id, "temperature", "1.2"]] in [[a, p] for a, _, p in sent]
    assert ["/continuo/jam/bank", [jam_id, "save", 2]] in [[a, p] for a, _, p in sent]
    assert ["/continuo/jam/stop", [jam_id]] in [[a, p] for a, _, p in sent]

    # what it said: each bar of its jam received, then played at its bar line; the state passed on
    played = [entry for entry in log if entry[:3] == ["status", "jam", "playing"]]
    assert [entry[3:5] for entry in played] == [["1", "4"], ["2", "8"], ["3", "12"]], context
    assert all(entry[7] == str(FILE_RATE) and entry[8] == "1000" for entry in played), context  # frames, ms
    assert ["status", "jam", "state", "playing", "0", "2.5", "0.4", "2", "0", "0"] in [e[:10] for e in log], context

    # what it played: silence through bar 0, then each bar from its own bar line to the next, to the sample
    audio, rate = soundfile.read(recording, dtype="float32")
    assert rate == RATE and audio.shape[1] == 2
    runs = level_runs(audio[:, 0])
    levels = [level for _, level in runs]
    assert levels[:4] == [0.0, 0.1, 0.2, 0.3] and 0.9 not in levels, runs
    first = runs[1][0]
    assert abs(first - BAR) <= 64, runs  # bar 1 at its bar line (the recording starts within a block of beat 0)
    assert [start - first for start, _ in runs[1:4]] == [0, BAR, 2 * BAR], runs  # each bar line, exactly
    assert runs[4] == (first + 3 * BAR, 0.0), runs  # silence after bar 3: nothing was loaded for bar 4
    np.testing.assert_allclose(audio[first:first + 2 * BAR, 1], -audio[first:first + 2 * BAR, 0])  # stereo as is
    np.testing.assert_allclose(audio[first + 2 * BAR:first + 3 * BAR, 1], 0.3, atol=1e-6)  # mono on both sides


def test_the_recording_check_fails_on_a_bar_off_its_line():
    """Control for the check above: a bar one block late (what [tabplay~] at a block boundary would give) fails."""
    audio = np.zeros(5 * BAR, np.float32)
    audio[BAR:2 * BAR], audio[2 * BAR + 64:3 * BAR], audio[3 * BAR:4 * BAR] = 0.1, 0.2, 0.3
    runs = level_runs(audio)
    first = runs[1][0]
    assert [start - first for start, _ in runs[1:4]] != [0, BAR, 2 * BAR]


@needs_pd
def test_pd_jam_drops_the_bars_past_a_stops_last_bar(tmp_path):
    """The jam stops at the end of the bar playing: /continuo/jam/state stopping 2 arrives during bar 2, when bar 3
    is already loaded for its bar line and bar 4 waits in the queue. Neither sounds (the old patch played both)."""
    folder = tmp_path / "pd"
    folder.mkdir()
    shutil.copy(PD_DIR / "continuo.pd", folder / "continuo.pd")
    bars = []
    for bar, level in ((1, 0.1), (2, 0.2), (3, 0.3), (4, 0.4)):
        path = tmp_path / f"bar-{bar}.wav"
        soundfile.write(path, np.full((FILE_RATE, 2), level, np.float32), FILE_RATE, subtype="FLOAT")
        bars.append((None, bar, level, path))
    port, reply_port = free_udp_port(), free_udp_port()
    log_path, recording = tmp_path / "said.txt", tmp_path / "jam.wav"
    (folder / "harness.pd").write_text(harness(port, reply_port, log_path, recording))
    daemon = FakeDaemon(port, reply_port, bars, stopping=(2.6, 2))  # beat 10.4: bar 2 plays, bar 3 is loaded
    try:
        said = run_pd(folder)
    finally:
        daemon.close()
    log = read_log(log_path)
    context = f"pd said:\n{said}\nthe patch's outlets gave:\n{log}"
    assert "couldn't create" not in said, context
    played = [entry[3] for entry in log if entry[:3] == ["status", "jam", "playing"]]
    assert played == ["1", "2"], context
    audio, _ = soundfile.read(recording, dtype="float32")
    runs = level_runs(audio[:, 0])
    assert [level for _, level in runs] == [0.0, 0.1, 0.2, 0.0], runs  # bars 1 and 2 whole, then silence
    assert runs[3][0] - runs[2][0] == BAR, runs  # bar 2 to its end: the stop lands at a bar line
