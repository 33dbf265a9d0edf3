"""The Reaper scripts (clients/reaper/) under a real Lua interpreter (Debian's lua5.4, .ci/debian-packages):
the command line they build is one the real `continuo` parser accepts, they read the JSON lines the real CLI
prints, and the actions drive Reaper's API (a recording stand-in: Reaper itself cannot run here) as they should.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from bridge.cli import build_parser
from bridge.clients.commands import EventPrinter
from bridge.protocol.schema import load_schema

ROOT = Path(__file__).resolve().parents[2]
REAPER = ROOT / "clients" / "reaper"
LUA = next((shutil.which(name) for name in ("lua5.4", "lua5.3", "lua") if shutil.which(name)), None)
pytestmark = pytest.mark.skipif(LUA is None, reason="no Lua interpreter: install Debian's lua5.4 "
                                                    "(bash .ci/install-debian-packages)")


def lua(code: str, *args: str) -> str:
    script = f'local lib = dofile({json.dumps(str(REAPER / "continuo_lib.lua"))})\n{code}'
    result = subprocess.run([LUA, "-", *args], input=script, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_command_is_one_the_real_cli_parses():
    line = lua('print(lib.build_command{op="continue", input="/My Loops/it\'s a loop.wav", bars=4, bpm=92.5, '
               'beats_per_bar=7, beat_unit=8, key="F# minor", port=9123, program="/opt/continuo bin/continuo"})')
    argv = shlex.split(line)
    assert argv[0] == "/opt/continuo bin/continuo"
    ns = build_parser().parse_args(argv[1:])
    assert (ns.command, ns.input, ns.bars, ns.bpm, ns.metre, ns.key, ns.port, ns.json) == (
        "continue", "/My Loops/it's a loop.wav", 4.0, 92.5, (7, 8), "F# minor", 9123, True)
    assert ns.job_id == ""  # no fixed id: the CLI makes a fresh, date-and-random one for every run
    stems = shlex.split(lua('print(lib.build_command{op="stems", input="/a.wav", stems="drums,bass", bpm=120, '
                            'beats_per_bar=4, beat_unit=4})'))
    ns = build_parser().parse_args(stems[1:])
    assert (ns.command, ns.input, ns.stems, ns.json) == ("stems", "/a.wav", "drums,bass", True)


def test_windows_quoting_keeps_paths_with_spaces_and_quotes_whole():
    out = lua('print(lib.shell_quote([[C:\\My Loops\\a "b".wav]], true)); print(lib.shell_quote([[C:\\x\\]], true))')
    assert out.splitlines() == ['"C:\\My Loops\\a \\"b\\".wav"', '"C:\\x\\\\"']


def windows_argv(line: str) -> list[str]:
    """A command line split as Windows programs split it (CommandLineToArgvW / the C runtime's rules): 2n
    backslashes before a quote are n and the quote toggles quoting, 2n+1 are n and a literal quote; other
    backslashes are literal; whitespace outside quotes separates."""
    argv, current, quoted, i, started = [], [], False, 0, False
    while i < len(line):
        slashes = len(line[i:]) - len(line[i:].lstrip("\\"))
        if slashes:
            i += slashes
            if i < len(line) and line[i] == '"':
                current.append("\\" * (slashes // 2))
                if slashes % 2:
                    current.append('"')
                    i += 1
            else:
                current.append("\\" * slashes)
            started = True
            continue
        char = line[i]
        if char == '"':
            quoted, started = not quoted, True
        elif char in " \t" and not quoted:
            if started:
                argv.append("".join(current))
            current, started = [], False
        else:
            current.append(char)
            started = True
        i += 1
    if started:
        argv.append("".join(current))
    return argv


def test_the_windows_command_reaches_the_cli_whole():
    """What Reaper's ExecProcess runs on Windows (no shell) is split by the C runtime's rules into the arguments
    the real parser takes, paths with spaces, quotes and a trailing backslash whole. The control: the POSIX line
    split that way keeps its single quotes (so the windows flag matters)."""
    program = "C:\\Users\\Me\\.local\\bin\\continuo.exe"
    clip = 'D:\\My Loops\\take "1" \\a.wav'
    code = (f'local cmd = lib.build_command{{op="continue", input=[[{clip}]], bars=4, bpm=92, beats_per_bar=4, '
            f'beat_unit=4, key="F# minor", program=[[{program}]], windows=true}}\n'
            'print(lib.exec_line(cmd, true))')
    argv = windows_argv(lua(code).rstrip("\n"))
    assert argv[0] == program
    ns = build_parser().parse_args(argv[1:])
    assert (ns.command, ns.input, ns.bars, ns.key) == ("continue", clip, 4.0, "F# minor")
    assert windows_argv(subprocess.list2cmdline(["a b", 'c"d', "e\\"])) == ["a b", 'c"d', "e\\"]  # the splitter
    posix = lua(code.replace("windows=true", "windows=false")).rstrip("\n")
    assert clip not in windows_argv(posix)


def cli_json_lines(tmp_path: Path) -> str:
    """What `continuo continue --json` prints for a job with two outputs, made by the CLI's own printer."""
    import io

    out = io.StringIO()
    printer = EventPrinter(load_schema(), as_json=True, out=out)
    printer.event("/continuo/welcome", ["0.1.0", "tiny (SMOKE: noise, not music)", 48000, "cpu", "/x/inbox"])
    printer.note("warning", "smoke model", model="tiny")
    printer.event("/continuo/queued", ["j-1", 1, 2.5])
    printer.event("/continuo/progress", ["j-1", 0.5, "generating"])
    job = tmp_path / "j-1"
    job.mkdir()
    for name in ("mix", "mix-tail"):
        (job / f"{name}.wav").write_bytes(b"x")
    (job / "j-1_mix_4bars_92.5bpm_Cmaj.wav").write_bytes(b"x")
    printer.event("/continuo/output", ["j-1", "mix", (job / "mix.wav").as_posix(), 48000, 2, 7.78, 4.0, -14.0, -1.0])
    printer.event("/continuo/output", ["j-1", "mix-tail", (job / "mix-tail.wav").as_posix(), 48000, 2, 1.5, 0.75,
                                       -30.0, -12.0])
    printer.event("/continuo/done", ["j-1", 2, 123456, 3.5])
    return "[transformers] a log line that is not JSON\n" + out.getvalue()


def test_it_reads_the_real_clis_json_lines(tmp_path):
    canned = tmp_path / "out.txt"
    canned.write_text(cli_json_lines(tmp_path))
    out = lua('local f = io.open(arg[1]); local events, outputs, finish = lib.read_events(f:read("a"))\n'
              'print(#events, finish.ok, finish.seed)\n'
              'for _, o in ipairs(outputs) do print(o.name, lib.file_to_insert(o)) end', str(canned))
    lines = out.splitlines()
    assert lines[0] == "7\ttrue\t123456"
    assert lines[1:] == [f"mix\t{tmp_path}/j-1/j-1_mix_4bars_92.5bpm_Cmaj.wav",
                         f"mix-tail\t{tmp_path}/j-1/mix-tail.wav"]


def test_an_error_line_ends_the_job_with_its_code():
    out = lua('local _, outputs, finish = lib.read_events([[{"event": "queued", "job_id": "j", "position": 1, '
              '"eta_s": -1.0}\n{"event": "error", "job_id": "j", "code": "not_found", "message": "no \\"x\\""}]])\n'
              'print(#outputs, finish.ok, finish.code, finish.message)\n'
              'local _, _, none = lib.read_events("")\nprint(none.ok, none.code)')
    assert out.splitlines() == ['0\tfalse\tnot_found\tno "x"', "false\tno_reply"]


def run_action(tmp_path: Path, op: str, canned: str, exit_code: int = 0) -> list[list[str]]:
    (tmp_path / "canned.txt").write_text(canned)
    result = subprocess.run([LUA, str(ROOT / "tests" / "clients" / "fake_reaper.lua"), str(REAPER), op,
                             str(tmp_path / "canned.txt"), str(exit_code)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return [line.split("\t") for line in result.stdout.splitlines()]


def test_continue_sends_tempo_and_metre_and_puts_each_output_on_a_new_track_at_the_items_end(tmp_path):
    calls = run_action(tmp_path, "continue", cli_json_lines(tmp_path))
    (_, line, timeout) = calls[0]
    assert timeout == "0" and line.startswith('/bin/sh -c "') and line.endswith('"')
    ns = build_parser().parse_args(shlex.split(line[len('/bin/sh -c "'):-1])[1:])
    assert (ns.command, ns.input, ns.bpm, ns.metre, ns.bars, ns.json) == (
        "continue", "/Users/me/My Loops/it's a loop.wav", 92.5, (3, 4), 4.0, True)
    inserted = [c for c in calls if c[0] in ("SetEditCurPos", "InsertMedia", "InsertTrackAtIndex")]
    assert inserted == [["InsertTrackAtIndex", "0"], ["SetEditCurPos", "8.000"],
                        ["InsertMedia", f"{tmp_path}/j-1/j-1_mix_4bars_92.5bpm_Cmaj.wav", "0"],
                        ["InsertTrackAtIndex", "1"], ["SetEditCurPos", "8.000"],
                        ["InsertMedia", f"{tmp_path}/j-1/mix-tail.wav", "0"]]
    assert calls[-1] == ["Undo_EndBlock", "Continuo continue (2 file(s))"]


def test_stems_go_at_the_items_start_and_an_error_is_shown_not_inserted(tmp_path):
    calls = run_action(tmp_path, "stems", cli_json_lines(tmp_path))
    assert "stems" in calls[0][1] and "--stems 'drums,bass,other,vocals'" in calls[0][1]
    assert ["SetEditCurPos", "2.000"] in calls
    failed = run_action(tmp_path, "continue", '{"event": "error", "job_id": "j", "code": "busy", "message": "full"}',
                        exit_code=12)
    assert [c[0] for c in failed[:2]] == ["ExecProcess", "ShowMessageBox"]  # the message spans lines
    assert "busy (exit 12)" in failed[1][1] and not [c for c in failed if c[0] in ("InsertMedia", "Undo_BeginBlock")]


def test_stems_and_midi_inserts_each_stems_mid_on_a_new_track(tmp_path):
    import io

    out = io.StringIO()
    printer = EventPrinter(load_schema(), as_json=True, out=out)
    job = tmp_path / "s-1"
    job.mkdir()
    for name in ("bass.wav", "bass.mid", "s-1_bass_4bars_92.5bpm_Cmaj.wav", "s-1_bass_4bars_92.5bpm_Cmaj.mid"):
        (job / name).write_bytes(b"x")
    printer.event("/continuo/output", ["s-1", "bass", (job / "bass.wav").as_posix(), 48000, 2, 7.78, 4.0, -14.0, -1.0])
    printer.event("/continuo/output", ["s-1", "bass-midi", (job / "bass.mid").as_posix(), 48000, 1, 7.78, 4.0,
                                       -120.0, -120.0])
    printer.event("/continuo/done", ["s-1", 2, 1, 3.5])
    calls = run_action(tmp_path, "stems-midi", out.getvalue())
    ns = build_parser().parse_args(shlex.split(calls[0][1][len('/bin/sh -c "'):-1])[1:])
    assert (ns.command, ns.midi, ns.bpm) == ("stems", True, 92.5)  # the project's tempo: the .mid's tempo
    inserted = [c[1] for c in calls if c[0] == "InsertMedia"]
    assert inserted == [f"{job}/s-1_bass_4bars_92.5bpm_Cmaj.wav", f"{job}/s-1_bass_4bars_92.5bpm_Cmaj.mid"]
    assert ["TrackName", "track1", "Continuo bass-midi"] in calls
    plain = run_action(tmp_path, "stems", out.getvalue())  # control: the plain stems action asks for no MIDI
    assert "--midi" not in plain[0][1]
