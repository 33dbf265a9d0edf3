"""`continuo generate | continue | variations | stems | status` against a fake daemon (the schema's events, made-up
results): one exit status per error code, JSON lines, --no-wait, acks, the inbox copy. tests/e2e/test_cli.py runs
the same commands against a real `continuo serve`."""

from __future__ import annotations

import json
import threading

import pytest

from bridge.cli import build_parser, main
from bridge.clients import commands
from bridge.clients.inbox import content_hash, stage_input
from bridge.errors import BadRequest
from bridge.protocol.schema import load_schema
from tests.daemons import FakeOscDaemon

SCHEMA = load_schema()


class FakeDaemon(FakeOscDaemon):
    """Answers hello, context, generate, continue, ack and status like the daemon; a prompt "error:<code>" ends
    the job with that error code, "refuse:<code>" refuses it before queueing."""

    def __init__(self, inbox: str) -> None:
        super().__init__()
        self.inbox = inbox
        self.received: list[tuple[str, list]] = []
        self.acked = threading.Event()

    def emit(self, to, address: str, *args) -> None:
        self.send_event(to, address, *args)

    def on_message(self, address: str, args: list, sender) -> None:
        self.received.append((address, args))
        try:
            request = SCHEMA.parse(address, args)
        except BadRequest as exc:
            self.emit(sender, "/continuo/error", exc.job_id, exc.code, exc.message)
            return
        if request.op == "hello":
            self.emit(sender, "/continuo/welcome", "0.1.0", "fake/model", 48000, "cpu", self.inbox)
        elif request.op == "context":
            self.emit(sender, "/continuo/context", *request.args.values())
        elif request.op == "ack":
            self.acked.set()
        elif request.op == "status":
            self.emit(sender, "/continuo/status", "idle", "fake/model", 0.5, 16.0, 0)
            self.emit(sender, "/continuo/limits", 16, 64.0, 8, 1000, 600.0, 1000.0, 0.25)
            self.storage(sender)
        elif request.op in ("prune", "trash_restore", "trash_empty"):
            self.emit(sender, "/continuo/trash/job", "old-1", 12.5, 41.0, "/renders/old-1")
            self.emit(sender, "/continuo/trash/result", "would_move", 1, 12.5, 1, 0, "would move 1 job(s) (12.5 MB)")
            self.storage(sender)
        elif request.op in ("generate", "continue"):
            self.on_job(request, sender)

    def storage(self, sender) -> None:
        self.emit(sender, "/continuo/storage", 1250.0, 0.0, 81234.0, 212, 0.0, "/renders")

    def on_job(self, request, sender) -> None:
        job_id = request.job_id
        text = str(request.args.get("prompt", request.settings.get("prompt", "")))
        if text.startswith("refuse:"):
            self.emit(sender, "/continuo/error", job_id, text.split(":")[1], "refused")
            return
        self.emit(sender, "/continuo/queued", job_id, 0, 1.0)
        tempo_set = "bpm" in request.settings or any(address == "/continuo/context" for address, _ in self.received)
        if request.op == "continue" and not tempo_set:
            self.emit(sender, "/continuo/analysis", job_id, request.args["input_path"], 96.0, 0.8, 3, 4, 0.7, 0.25,
                      4.0, "A minor", 0.6, -14.0, -1.0, 7.75)  # what the daemon heard, with no tempo set
        self.emit(sender, "/continuo/progress", job_id, 0.5, "generating")
        if text.startswith("error:"):
            self.emit(sender, "/continuo/error", job_id, text.split(":")[1], "it went wrong")
            return
        self.emit(sender, "/continuo/output", job_id, "mix", f"/renders/{job_id}/mix.wav", 48000, 2, 2.0,
                  request.args["bars"], -14.0, -1.0)
        self.emit(sender, "/continuo/done", job_id, 1, 42, 0.1)


@pytest.fixture
def daemon(tmp_path):
    with FakeDaemon((tmp_path / "inbox").as_posix()) as fake:
        yield fake


def run(daemon, *argv: str) -> int:
    return main([*argv, "--port", str(daemon.port), "--timeout", "10"])


def test_every_error_code_of_the_schema_has_its_own_exit_status():
    codes = [commands.EXIT_CODES.get(code) for code in SCHEMA.error_codes]
    missing = set(SCHEMA.error_codes) - set(commands.EXIT_CODES)
    assert None not in codes, f"error codes without an exit status: {missing}"
    reserved = {commands.EXIT_DONE, commands.EXIT_UNKNOWN_ERROR, commands.EXIT_USAGE, commands.EXIT_NO_REPLY,
                commands.EXIT_CTRL_C}
    assert len(set(codes)) == len(codes) and not reserved & set(codes)
    assert all(0 < code < 126 for code in codes)  # 126+ mean "not executable", signals
    table = commands.exit_code_table()
    assert all(f"{code:>3}  error {name}" in table for name, code in commands.EXIT_CODES.items())


@pytest.mark.parametrize("code", list(SCHEMA.error_codes))
def test_a_job_error_exits_with_its_code_and_is_acknowledged(daemon, code, capsys):
    assert run(daemon, "generate", f"error:{code}", "--bars", "1") == commands.EXIT_CODES[code]
    assert daemon.acked.wait(2)
    assert code in capsys.readouterr().err


def test_a_refusal_before_the_queue_exits_with_its_code(daemon):
    assert run(daemon, "generate", "refuse:busy") == commands.EXIT_CODES["busy"]


def test_an_unknown_error_code_exits_1():
    assert commands.exit_code_for("a_code_from_the_future") == commands.EXIT_UNKNOWN_ERROR


def test_done_prints_the_output_paths_on_stdout_and_acks(daemon, capsys):
    assert run(daemon, "generate", "warm lo-fi piano", "--bars", "8", "--bpm", "92", "--key", "F# minor",
               "--metre", "6/8") == 0
    out = capsys.readouterr()
    job_id = next(args[0] for address, args in daemon.received if address == "/continuo/generate")
    assert out.out.splitlines() == [f"/renders/{job_id}/mix.wav"]
    assert "seed 42" in out.err
    assert ("/continuo/generate", [job_id, "default", "warm lo-fi piano", 8.0, "bpm", 92.0, "beats_per_bar", 6,
                                   "beat_unit", 8, "key", "F# minor"]) in daemon.received
    assert daemon.acked.wait(2)  # the ack is the CLI's last datagram: the fake daemon may read it after main returns
    assert ("/continuo/ack", [job_id]) in daemon.received


def test_tempo_metre_and_key_are_sent_only_when_given(daemon):
    """No flag, no value: the daemon takes an input's own tempo and key (its manifest) or the session's, and no
    key is invented (the old CLI sent /continuo/context 120 4/4 "C major" with every job)."""
    assert run(daemon, "generate", "x", "--job-id", "plain-1") == 0
    assert [(a, args) for a, args in daemon.received if a not in ("/continuo/hello", "/continuo/ack")] == [
        ("/continuo/generate", ["plain-1", "default", "x", 8.0])]


def test_json_prints_one_object_per_event(daemon, capsys):
    assert run(daemon, "generate", "x", "--json", "--job-id", "j-1", "--seed", "7", "--set", "temperature=0.5") == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["event"] for line in lines] == ["welcome", "queued", "progress", "output", "done"]
    assert lines[2] == {"event": "progress", "job_id": "j-1", "fraction": 0.5, "stage": "generating"}
    assert lines[3]["path"] == "/renders/j-1/mix.wav" and lines[3]["daw_path"] == ""  # no such folder here
    assert lines[4] == {"event": "done", "job_id": "j-1", "outputs": 1, "seed": 42, "elapsed_s": 0.1}
    assert ("/continuo/generate", ["j-1", "default", "x", 8.0, "seed", 7, "temperature", 0.5]) in daemon.received


def test_no_wait_prints_the_job_id_once_accepted(daemon, capsys):
    assert run(daemon, "generate", "x", "--no-wait", "--job-id", "nw-1") == 0
    assert capsys.readouterr().out == "nw-1\n"
    assert run(daemon, "generate", "refuse:bad_request", "--no-wait") == commands.EXIT_CODES["bad_request"]


def test_no_daemon_exits_3(capsys):
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        assert main(["status", "--port", str(port), "--timeout", "0.3"]) == commands.EXIT_NO_REPLY
    assert "continuo serve" in capsys.readouterr().err


def test_status_prints_state_model_and_limits(daemon, capsys):
    assert run(daemon, "status") == 0
    out = capsys.readouterr().out
    assert "idle" in out and "fake/model" in out and "max_queue 16" in out and "inbox" in out


def test_status_prints_where_renders_live_the_space_they_take_and_what_is_free(daemon, capsys):
    assert run(daemon, "status") == 0
    out = capsys.readouterr().out
    assert "renders 1.2 GB in 212 job folder(s) under /renders (kept until you prune them)" in out
    assert "81.2 GB free" in out and "auto-trash off" in out


@pytest.mark.parametrize("argv, sent", [
    (["prune", "--older-than", "30d"], ["/continuo/prune", [0, 30.0, 0, 0.0, 7.0]]),
    (["prune", "--keep", "200", "--yes"], ["/continuo/prune", [1, 0.0, 200, 0.0, 7.0]]),
    (["prune", "--max-size", "500M", "--keep-fetched", "2w"], ["/continuo/prune", [0, 0.0, 0, 0.5, 14.0]]),
    (["trash", "list"], ["/continuo/trash/empty", [0]]),
    (["trash", "empty"], ["/continuo/trash/empty", [0]]),  # a dry run without --yes
    (["trash", "empty", "--yes"], ["/continuo/trash/empty", [1]]),
    (["trash", "restore", "all"], ["/continuo/trash/restore", ["*"]]),
    (["trash", "restore", "old-1"], ["/continuo/trash/restore", ["old-1"]]),
])
def test_prune_and_trash_send_their_request_and_print_jobs_result_and_space(daemon, capsys, argv, sent):
    assert run(daemon, *argv) == 0
    address, args = [(a, v) for a, v in daemon.received if a not in ("/continuo/hello",)][-1]
    assert [address, [round(v, 6) if isinstance(v, float) else v for v in args]] == sent
    out = capsys.readouterr().out.splitlines()
    assert "old-1" in out[0] and "12.5 MB" in out[0] and out[1] == "would move 1 job(s) (12.5 MB)"
    assert out[2].startswith("renders 1.2 GB")


@pytest.mark.parametrize("text, days", [("30d", 30.0), ("12h", 0.5), ("2w", 14.0), ("45", 45.0), ("6m", 180.0)])
def test_ages_read_as_days(text, days):
    from bridge.clients.prune import parse_age_days

    assert parse_age_days(text) == pytest.approx(days)


@pytest.mark.parametrize("text, gb", [("20G", 20.0), ("500M", 0.5), ("1T", 1000.0), ("20", 20.0), ("2GB", 2.0)])
def test_sizes_read_as_gb(text, gb):
    from bridge.clients.prune import parse_size_gb

    assert parse_size_gb(text) == pytest.approx(gb)


@pytest.mark.parametrize("argv", [["prune", "--older-than", "soon"], ["prune", "--max-size", "-5G"]])
def test_a_bad_age_or_size_is_a_usage_error(daemon, argv):
    with pytest.raises(SystemExit) as info:
        run(daemon, *argv)
    assert info.value.code == 2


def test_continue_copies_an_input_from_outside_the_inbox(daemon, tmp_path, capsys):
    clip = tmp_path / "elsewhere" / "clip.wav"
    clip.parent.mkdir()
    clip.write_bytes(b"RIFF....WAVE")
    assert run(daemon, "continue", str(clip), "--bars", "4", "--prompt", "x") == 0
    copy = tmp_path / "inbox" / f"clip-{content_hash(clip)}.wav"
    assert copy.read_bytes() == clip.read_bytes()
    sent = next(args for address, args in daemon.received if address == "/continuo/continue")
    assert sent[2] == copy.as_posix() and sent[4:] == ["prompt", "x"]
    assert "copied" in capsys.readouterr().err


def test_continue_without_bpm_leaves_the_tempo_to_the_daemons_ears(daemon, tmp_path, capsys):
    clip = tmp_path / "inbox" / "clip.wav"
    clip.parent.mkdir()
    clip.write_bytes(b"RIFF....WAVE")
    assert run(daemon, "continue", str(clip), "--metre", "3/4", "--job-id", "h-1") == 0
    assert "/continuo/context" not in [address for address, _ in daemon.received]
    sent = next(args for address, args in daemon.received if address == "/continuo/continue")
    assert sent[4:] == ["beats_per_bar", 3, "beat_unit", 4]
    assert "heard 96.00 BPM (confidence 0.80), 3/4, A minor" in capsys.readouterr().err
    # control: --bpm goes with the request as its tempo, and the daemon has nothing to hear
    assert run(daemon, "continue", str(clip), "--bpm", "90", "--job-id", "h-2") == 0
    sent = [args for address, args in daemon.received if address == "/continuo/continue"][-1]
    assert sent[4:] == ["bpm", 90.0]
    assert "/continuo/context" not in [address for address, _ in daemon.received]
    assert "heard" not in capsys.readouterr().err


def test_stems_with_midi_sends_the_midi_argument_and_metre_needs_bpm(daemon, tmp_path, capsys):
    clip = tmp_path / "inbox" / "mix.wav"
    clip.parent.mkdir()
    clip.write_bytes(b"RIFF....WAVE")
    ns = build_parser().parse_args(["stems", str(clip), "--stems", "bass", "--midi"])
    assert commands.build_request(ns).message()[1:] == [str(clip), "bass", 1]
    plain = build_parser().parse_args(["stems", str(clip)])
    assert commands.build_request(plain).args[1:] == [str(clip), "drums,bass,other,vocals", 0]
    assert run(daemon, "stems", str(clip), "--key", "A minor") == commands.EXIT_USAGE
    assert "give --bpm too" in capsys.readouterr().err


def test_a_missing_input_exits_not_found_without_sending(daemon, tmp_path):
    assert run(daemon, "continue", str(tmp_path / "nope.wav")) == commands.EXIT_CODES["not_found"]
    assert not [a for a, _ in daemon.received if a == "/continuo/continue"]


def test_stage_input_keeps_a_file_in_the_inbox_and_copies_once(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    inside = inbox / "a.wav"
    inside.write_bytes(b"a")
    assert stage_input(inside, inbox.as_posix()).path == inside
    outside = tmp_path / "b.WAV"
    outside.write_bytes(b"b")
    first = stage_input(outside, inbox.as_posix())
    assert first.copied_from == outside and first.path.parent == inbox and first.path.suffix == ".wav"
    assert stage_input(outside, inbox.as_posix()).path == first.path  # the same bytes: the same copy
    assert stage_input(outside, None).path == outside  # a daemon on another machine: sent as it is
    assert not list(inbox.glob(".*.partial"))


def test_daw_path_is_found_beside_the_stable_path(tmp_path):
    folder = tmp_path / "j-1"
    folder.mkdir()
    (folder / "mix.wav").write_bytes(b"x")
    (folder / "j-1_mix-tail_1bars_120bpm.wav").write_bytes(b"x")
    (folder / "j-1_mix_8bars_92bpm_F#min.wav").write_bytes(b"x")
    output = {"job_id": "j-1", "name": "mix", "path": (folder / "mix.wav").as_posix()}
    assert commands.daw_path_of(output) == (folder / "j-1_mix_8bars_92bpm_F#min.wav").as_posix()


def test_the_help_lists_the_exit_codes():
    text = build_parser()._subparsers._group_actions[0].choices["generate"].format_help()
    assert "130" in text and "error not_found" in text


def test_cli_job_ids_carry_the_date_and_time_and_os_randomness():
    """Unique across reboots (the calendar time, not a counter) and machines (32 random bits from the OS)."""
    import re
    import time as clock

    ids = {commands.new_job_id("generate") for _ in range(200)}
    assert len(ids) == 200
    for job_id in ids:
        found = re.fullmatch(r"cli-generate-(\d{8})-(\d{6})-([0-9a-f]{8})", job_id)
        assert found and found[1] <= clock.strftime("%Y%m%d")  # (a run across midnight: yesterday)
        assert SCHEMA.patterns["job_id"][0].fullmatch(job_id)
