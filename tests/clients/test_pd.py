"""The Pure Data client (clients/pd/continuo.pd) in a real Pd against a real `continuo serve` on the tiny model.

A harness patch, written here beside a copy of continuo.pd, uses it as the abstraction [continuo <port> <reply>],
sets the context, generates 4 bars with a seed, then continues a file that is not there; it logs every message
from continuo's three outlets (outputs, status, errors) to a file and quits. The test reads that log, the daemon's
journal and log, and the output file. A second harness jams with the daemon on the host clock the patch's transport
drives, records the jam outlets and stops (the jam mode's exact bar-line timing: tests/clients/test_pd_jam.py).
Pd: Debian's puredata (.ci/debian-packages); the tests skip only where no `pd` is installed.
"""

from __future__ import annotations

import datetime
import importlib.util
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from bridge.audio.midi_files import read_midi_notes
from bridge.tools.listen_truth import melody, note_f1
from tests.clients.osc_signatures import signature_problems
from tests.daemons import JOB_TIMEOUT_S

ROOT = Path(__file__).resolve().parents[2]
PD_DIR = ROOT / "clients" / "pd"
PD = shutil.which("pd")
needs_pd = pytest.mark.skipif(PD is None, reason="no `pd` here: bash .ci/install-debian-packages installs Debian's "
                                                 "puredata (listed in .ci/debian-packages); it could not run here")


def load_build():
    spec = importlib.util.spec_from_file_location("continuo_pd_build", PD_DIR / "build.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


build = load_build()


def test_committed_patch_is_what_build_writes():
    assert (PD_DIR / "continuo.pd").read_text() == build.render(), "run: python clients/pd/build.py"


def oscformat_boxes(text: str) -> list[tuple[str, str]]:
    """(address, types) of every [oscformat] in a Pd file."""
    found = []
    for match in re.finditer(r"#X obj \d+ \d+ oscformat (?:-f (\S+) )?((?:\S+ ?)+);", text):
        types, address = match[1] or "", "/" + match[2].replace(" ", "/")
        found.append((address, types))
    return found


def test_every_message_the_patch_sends_is_in_the_schema():
    boxes = oscformat_boxes((PD_DIR / "continuo.pd").read_text())
    assert len(boxes) == len(build.REQUESTS)
    names = {(f"/continuo/{address}", types): settings for _, types, address, settings in build.REQUESTS}
    for address, types in boxes:
        assert signature_problems(address, types, names[(address, types)]) == []


def test_the_schema_check_catches_a_wrong_type_and_an_unknown_address():
    assert signature_problems("/continuo/generate", "sssi")  # bars as an int
    assert signature_problems("/continuo/generate", "sssfsi", ("colour",))  # no such setting
    assert signature_problems("/continuo/summon", "s")
    assert oscformat_boxes("#X obj 1 2 oscformat -f sssf continuo generate;") == [("/continuo/generate", "sssf")]


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def harness(port: int, reply_port: int, log_path: Path, missing: Path, melody: Path) -> str:
    """A patch around [continuo port reply_port]: context, a seeded 4-bar generate, the notes of a melody as MIDI,
    then a continue that fails."""
    c = build.Canvas(size=(900, 600))
    c.obj("continuo", f"continuo {port} {reply_port}", 20, 200)
    c.obj("start", "loadbang", 20, 20)
    c.obj("wait", "delay 300", 20, 50)
    c.msg("job", "rate 32000, tempo 120, metre 4 4, key C minor, bars 4, seed 1234, generate pd harness test",
          20, 80)
    c.chain("start", "wait", "job", "continuo")
    log_outlets(c, log_path, 260)
    # the first done sends midi of the melody, the second one continue of a file that is not there; any error
    # then ends the run
    c.obj("status-kind", "route done", 220, 300)
    c.obj("done-bang", "t b", 220, 330)
    c.obj("done-count", "f", 220, 360)
    c.obj("done-next", "+ 1", 260, 360)
    c.obj("done-which", "sel 0 1", 220, 390)
    c.msg("midi", f"midi {melody} mix", 220, 420)
    c.msg("continue", f"continue {missing}", 320, 420)
    c.wire("continuo", 1, "status-kind")
    c.chain("status-kind", "done-bang", "done-count", "done-which")
    c.wire("done-count", 0, "done-next")
    c.wire("done-next", 0, "done-count", 1)
    c.wire("done-which", 0, "midi")
    c.wire("done-which", 1, "continue")
    c.wire("midi", 0, "continuo")
    c.wire("continue", 0, "continuo")
    c.obj("error-bang", "t b", 420, 270)
    c.obj("error-then", "delay 200", 420, 300)
    c.msg("quit", "; pd quit", 420, 330)
    c.wire("continuo", 2, "error-bang")
    c.chain("error-bang", "error-then", "quit")
    return "\n".join(c.lines()) + "\n"


def log_outlets(c, log_path: Path, y: int) -> None:
    """Every message from [continuo]'s outlets (output, status, error), tagged so, written to log_path as it comes."""
    for n, kind in enumerate(("output", "status", "error")):
        c.obj(f"tag-{kind}", f"list prepend {kind}", 20 + 200 * n, y)
        c.wire("continuo", n, f"tag-{kind}")
        c.wire(f"tag-{kind}", 0, "add")
    c.obj("add", "list prepend add", 20, y + 40)
    c.obj("add-trim", "list trim", 20, y + 70)
    c.obj("write-after", "t b a", 20, y + 100)
    c.obj("textfile", "textfile", 20, y + 160)
    c.msg("write", f"write {log_path} cr", 100, y + 130)
    c.chain("add", "add-trim", "write-after")
    c.wire("write-after", 1, "textfile")
    c.wire("write-after", 0, "write")
    c.wire("write", 0, "textfile")


def read_log(path: Path) -> list[list[str]]:
    """The harness's log: one entry per message, split into atoms (escaped spaces kept inside atoms)."""
    if not path.exists():
        return []
    text = path.read_text().replace("\\ ", "\0")
    return [[atom.replace("\0", " ") for atom in line.split()] for line in text.splitlines() if line.strip()]


@needs_pd
@pytest.mark.slow
def test_pd_patch_round_trip_against_the_daemon(daemon_process, daemon_root, tmp_path):
    folder = tmp_path / "pd"
    folder.mkdir()
    shutil.copy(PD_DIR / "continuo.pd", folder / "continuo.pd")
    reply_port, log_path = free_udp_port(), tmp_path / "arrived.txt"
    missing = daemon_root / "inbox" / "not-there.wav"
    line = melody(seed=5, count=8)
    melody_path = daemon_root / "inbox" / "melody.wav"
    melody_path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(melody_path, line.audio.T, line.sample_rate)
    (folder / "harness.pd").write_text(harness(daemon_process.port, reply_port, log_path, missing, melody_path))
    pd = subprocess.Popen([PD, "-nogui", "-nosound", "-nomidi", "-stderr", "harness.pd"], cwd=folder,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:  # the harness quits on its own after the error; a time limit in case it never comes
        said, _ = pd.communicate(timeout=JOB_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pd.kill()
        said = pd.communicate()[0] + f"\n(killed after {JOB_TIMEOUT_S} s)"
    log = read_log(log_path)
    context = f"pd said:\n{said}\nthe patch's outlets gave:\n{log}\ndaemon:\n{daemon_process.log[-3000:]}"
    assert "couldn't create" not in said and "connection failed" not in said, context
    # Pd's only complaint: no session counter file yet on a first run
    assert [line for line in said.splitlines() if "error" in line and "continuo-session.txt" not in line
            and not line.startswith("continuo-error:")] == [], context

    # hello went through, with the patch's reply port, and the context came back
    assert re.search(rf"client pd at 127\.0\.0\.1:\d+ replies to port {reply_port}\b", daemon_process.log), context
    kinds = [entry[:2] for entry in log]
    assert ["status", "welcome"] in kinds and ["status", "context"] in kinds, context
    assert any(entry[:2] == ["status", "context"] and entry[2:4] == ["120", "4"] and "C minor" in entry
               and entry[-1] == "32000" for entry in log), context

    # generate: journalled as the patch's job, done with the patch's seed, one 4-bar output, acknowledged
    journal = sqlite3.connect(daemon_root / "renders" / "journal.sqlite3")
    jobs = journal.execute("SELECT job_id, op, status, seed, reply_port FROM jobs WHERE job_id LIKE 'pd-%' "
                           "AND op = 'generate'").fetchall()
    assert len(jobs) == 1, (jobs, context)
    job_id, op, status, seed, journal_reply_port = jobs[0]
    assert (op, status, seed, journal_reply_port) == ("generate", "done", 1234, reply_port), context
    # the id: when the patch was opened (date and time), a random part and a count: unique across reboots and
    # machines (before: pd-<session>-<n>, which began again at pd-1-1 on every new machine)
    stamp = re.fullmatch(r"pd-(\d{4})-(\d{1,2})-(\d{1,2})-(\d{1,2})-(\d{1,2})-(\d{1,2})-(\d{1,6})-1", job_id)
    assert stamp, (job_id, context)
    opened = datetime.datetime(*map(int, stamp.groups()[:6]))
    assert abs((datetime.datetime.now() - opened).total_seconds()) < JOB_TIMEOUT_S + 60, (job_id, opened)
    (path, bars, sample_rate, seconds), = journal.execute(
        "SELECT path, bars, sample_rate, seconds FROM outputs WHERE job_id = ? AND name = 'mix'", (job_id,))
    assert bars == pytest.approx(4.0) and sample_rate == 32000
    info = soundfile.info(path)
    assert info.samplerate == 32000 and info.frames == pytest.approx(8.0 * 32000, abs=2)  # 4 bars of 4/4 at 120
    assert f"job={job_id} acknowledged" in daemon_process.log, context

    # progress reached the status outlet; the output was read into the patch's arrays (soundfiler's count)
    fractions = [float(entry[2]) for entry in log if entry[:2] == ["status", "progress"]]
    assert fractions and 0 < max(fractions) <= 1, context
    outputs = [entry for entry in log if entry[0] == "output"]
    assert ["output", "mix", path, "4", str(info.frames)] in outputs, context
    assert any(entry[:2] == ["status", "done"] and entry[3] == "1234" for entry in log), context

    # the continue of a missing file came back on the error outlet, as the daemon sent it
    errors = [entry for entry in log if entry[0] == "error"]
    assert len(errors) == 1 and errors[0][2] in ("not_found", "bad_request"), context
    continue_id = errors[0][1]
    assert continue_id == job_id[:-1] + "3" and "not-there.wav" in " ".join(errors[0])  # the same session, next

    # midi: the melody's notes as a .mid at the session's tempo, reported on the outputs outlet (no soundfiler)
    (midi_output,) = [entry for entry in outputs if entry[1] == "mix-midi"]
    assert midi_output[2].endswith("/mix.mid") and midi_output[4] == "0", context
    notes, bpm = read_midi_notes(Path(midi_output[2]))
    assert bpm == pytest.approx(120.0)
    assert note_f1([(n.pitch, n.start_s) for n in notes], [(n.pitch, n.start_s) for n in line.notes]) >= 0.8


def jam_and_record(port: int, reply_port: int, recording: Path, commands: str):
    """A harness canvas: [continuo port reply_port] gets `commands` (a jam) 300 ms after load, and [writesf~ 2]
    records its jam outlets into `recording` from that same logical time, so beat 0 is the recording's first sample
    (within a block). DSP on at load."""
    c = build.Canvas(size=(900, 600))
    c.obj("continuo", f"continuo {port} {reply_port}", 20, 200)
    c.obj("start", "loadbang", 20, 20)
    c.msg("dsp", "; pd dsp 1", 200, 20)
    c.obj("wait", "delay 300", 20, 50)
    c.obj("go", "t b b", 20, 80)
    c.msg("jam", commands, 20, 110)
    c.msg("record", f"open -bytes 4 {recording}, start", 300, 110)
    c.obj("writesf", "writesf~ 2", 300, 160)
    c.wire("start", 0, "dsp")
    c.chain("start", "wait", "go")
    c.wire("go", 1, "record")
    c.wire("go", 0, "jam")
    c.wire("record", 0, "writesf")
    c.wire("jam", 0, "continuo")
    c.wire("continuo", 3, "writesf", 0)
    c.wire("continuo", 4, "writesf", 1)
    return c


def jam_harness(port: int, reply_port: int, log_path: Path, recording: Path) -> str:
    """[continuo port reply_port]: a jam at 240 BPM on the host clock (the patch's transport), its sound recorded from
    the jam outlets, stopped after four seconds."""
    c = jam_and_record(port, reply_port, recording, "jamanyway 1, rate 48000, metre 4 4, tempo 240, jam pd jam")
    c.obj("end", "delay 4300", 600, 20)
    c.msg("jamstop", "jamstop", 600, 50)
    c.obj("after", "delay 2500", 700, 50)
    c.msg("stop", "stop", 700, 80)
    c.msg("quit", "; pd quit", 700, 110)
    c.wire("start", 0, "end")
    c.chain("end", "jamstop", "continuo")
    c.wire("end", 0, "after")
    c.chain("after", "stop", "writesf")
    c.wire("after", 0, "quit")
    log_outlets(c, log_path, 260)
    return "\n".join(c.lines()) + "\n"


@needs_pd
@pytest.mark.slow
@pytest.mark.serial  # Pd plays the bars in real time: a quiet CPU
def test_pd_jam_against_the_daemon_plays_its_bars_at_the_patch_s_bar_lines(daemon_process, daemon_root, tmp_path):
    """The jam mode for real: the patch's transport drives the daemon's host clock, the daemon's bars come back as
    files and play at the patch's bar lines, in order, on both sides; jamstop ends it at a bar end with a take."""
    folder = tmp_path / "pd"
    folder.mkdir()
    shutil.copy(PD_DIR / "continuo.pd", folder / "continuo.pd")
    reply_port, log_path, recording = free_udp_port(), tmp_path / "said.txt", tmp_path / "jam.wav"
    (folder / "harness.pd").write_text(jam_harness(daemon_process.port, reply_port, log_path, recording))
    said = subprocess.run([PD, "-nogui", "-nosound", "-nomidi", "-r", "48000", "-stderr", "harness.pd"], cwd=folder,
                          capture_output=True, text=True, timeout=JOB_TIMEOUT_S).stderr
    log = read_log(log_path)
    context = f"pd said:\n{said}\nthe patch's outlets gave:\n{log}\ndaemon:\n{daemon_process.log[-3000:]}"
    played = [entry[3:5] for entry in log if entry[:3] == ["status", "jam", "playing"]]
    assert len(played) >= 3, context
    bars, beats = [int(bar) for bar, _ in played], [float(beat) for _, beat in played]
    assert bars == list(range(bars[0], bars[0] + len(bars))) and all(beat % 4 == 0 for beat in beats), context
    assert beats == [beats[0] + 4 * n for n in range(len(beats))], context  # each at the patch's next bar line
    assert re.search(r"jam starting: 'pd jam' at 240 BPM, host clock", daemon_process.log), context
    stopped = [entry for entry in log if entry[:4] == ["status", "jam", "state", "stopped"]]
    assert stopped and "take:" in " ".join(stopped[0]), context
    audio, _ = soundfile.read(recording, dtype="float32")
    bar = 48000  # 240 BPM, 4/4, at 48 kHz
    first = int(beats[0] // 4) * bar
    assert not audio[:first - 64].any() and np.abs(audio[first:first + bar]).max() > 0.01, context
    np.testing.assert_array_equal(audio[:, 0], audio[:, 1])  # the model's mono bars on both sides
