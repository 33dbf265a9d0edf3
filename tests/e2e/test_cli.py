"""`continuo generate | continue | variations | stems | status` as a user runs them: a subprocess against a real
`continuo serve` on the tiny model. Exit statuses per error code, the --json event stream, --no-wait, Ctrl-C,
an input copied into the inbox, the DAW file names, seeds a patch can hold."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import soundfile as sf

from bridge.clients.commands import EXIT_CODES, EXIT_CTRL_C
from bridge.clients.osc import OscClient
from bridge.clients.process import DaemonProcess
from tests.daemons import JOB_TIMEOUT_S, daemon_flags

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def daemon_extra_flags() -> tuple[str, ...]:
    return ("--stems-weights", "random", "--stems-model-size", "low", "--max-queue", "2")


def cli(daemon, *argv: str, timeout_s: float = JOB_TIMEOUT_S) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bridge.cli", *argv, "--port", str(daemon.port)],
                          capture_output=True, text=True, timeout=timeout_s, cwd=ROOT)


def start_cli(daemon, *argv: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bridge.cli", *argv, "--port", str(daemon.port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)


def json_events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


def first_output(events: list[dict]) -> dict:
    return next(e for e in events if e["event"] == "output")


def wait_for_stage(proc: subprocess.Popen, stage: str) -> list[dict]:
    """Read the --json lines of a running CLI until a progress event of `stage`."""
    seen = []
    assert proc.stdout is not None
    for line in proc.stdout:
        seen.append(json.loads(line))
        if seen[-1].get("event") == "progress" and seen[-1]["stage"] == stage:
            return seen
    raise AssertionError(f"the CLI ended before {stage}: {seen}; stderr: {proc.stderr.read()}")


def test_generate_prints_the_paths_and_exits_0(daemon_process):
    done = cli(daemon_process, "generate", "warm lo-fi piano", "--bars", "1", "--bpm", "92", "--job-id", "cli-1")
    assert done.returncode == 0, done.stderr
    path = Path(done.stdout.strip())
    assert path.name == "mix.wav" and sf.info(str(path)).frames == round(60 / 92 * 4 * 48000)
    assert "noise, not music" in done.stderr  # the smoke model is never presented as music
    assert "cli-1_mix_1bars_92bpm.wav" in done.stderr  # the DAW name, shown; no key given, none invented
    deadline = time.monotonic() + 10
    while "job=cli-1 acknowledged" not in daemon_process.log and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "job=cli-1 acknowledged" in daemon_process.log  # the client acked the done


def test_json_prints_every_event_and_the_daw_name(daemon_process):
    done = cli(daemon_process, "generate", "pad", "--bars", "1", "--bpm", "120", "--key", "F# minor", "--json",
               "--job-id", "cli-json")
    assert done.returncode == 0, done.stderr
    events = json_events(done.stdout)
    kinds = [e["event"] for e in events]
    assert kinds[:3] == ["welcome", "warning", "queued"] and kinds[-1] == "done"
    assert "progress" in kinds and kinds.count("output") == 1
    output, finished = first_output(events), events[-1]
    assert output["path"].endswith("/cli-json/mix.wav")
    assert Path(output["daw_path"]).name == "cli-json_mix_1bars_120bpm_F#min.wav"
    assert os.path.samefile(output["path"], output["daw_path"])
    manifest = json.loads((Path(output["path"]).parent / "manifest.json").read_text())
    assert manifest["outputs"][0]["daw_path"] == output["daw_path"]
    assert 0 <= finished["seed"] < 2**24 and finished["outputs"] == 1


def test_the_done_seed_replays_the_same_render(daemon_process):
    first = json_events(cli(daemon_process, "generate", "pad", "--bars", "0.5", "--json").stdout)
    seed = first[-1]["seed"]
    again = json_events(cli(daemon_process, "generate", "pad", "--bars", "0.5", "--json", "--seed",
                            str(seed)).stdout)
    assert again[-1]["seed"] == seed
    assert Path(first_output(first)["path"]).read_bytes() == Path(first_output(again)["path"]).read_bytes()


@pytest.mark.parametrize("argv, code", [
    (["generate", "x", "--set", "temperature=99"], "bad_request"),
    (["generate", "x", "--preset", "no-such-preset"], "not_found"),
    (["continue", "/no/such/clip.wav"], "not_found"),  # refused before sending: the file is not here
    (["stems", "/no/such/mix.wav"], "not_found"),
])
def test_refusals_exit_with_their_error_code(daemon_process, argv, code):
    result = cli(daemon_process, *argv)
    assert result.returncode == EXIT_CODES[code], (result.stdout, result.stderr)
    assert code in result.stderr


def test_a_write_failure_exits_io_error(daemon_process, daemon_root):
    (daemon_root / "renders" / "cli-io").write_text("a file where the job's folder goes")
    result = cli(daemon_process, "generate", "x", "--bars", "0.25", "--job-id", "cli-io")
    assert result.returncode == EXIT_CODES["io_error"], result.stderr


def test_a_job_cancelled_elsewhere_exits_cancelled(daemon_process):
    proc = start_cli(daemon_process, "generate", "x", "--bars", "32", "--json", "--job-id", "cli-cancel")
    wait_for_stage(proc, "generating")
    with OscClient(daemon_process.host, daemon_process.port) as osc:
        osc.hello()
        osc.send("/continuo/cancel", "cli-cancel")
    assert proc.wait(JOB_TIMEOUT_S) == EXIT_CODES["cancelled"]


def test_a_full_queue_exits_busy(daemon_process):
    # max_batch (4) run together, two wait (max_queue 2), the next is refused
    ids = [f"cli-busy-{n}" for n in range(7)]
    codes = [cli(daemon_process, "generate", "x", "--bars", "32", "--no-wait", "--job-id", job_id).returncode
             for job_id in ids]
    with OscClient(daemon_process.host, daemon_process.port) as osc:
        osc.hello()
        osc.send("/continuo/cancel", "*")  # only this client's jobs: cancel each by id
        for job_id in ids:
            osc.send("/continuo/cancel", job_id)
    assert codes[0] == 0 and EXIT_CODES["busy"] in codes, codes


def test_no_wait_prints_the_job_id_and_the_job_runs_on(daemon_process):
    result = cli(daemon_process, "generate", "x", "--bars", "0.25", "--no-wait", "--job-id", "cli-nowait")
    assert result.returncode == 0 and result.stdout == "cli-nowait\n", result.stderr
    with OscClient(daemon_process.host, daemon_process.port) as osc:
        osc.hello()
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while True:
            osc.send("/continuo/get", "cli-nowait")
            address, args = osc.wait_for(lambda a, args: args[:1] == ["cli-nowait"] and a in (
                "/continuo/queued", "/continuo/done", "/continuo/error"), 10)
            if address != "/continuo/queued" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert address == "/continuo/done", args


def test_ctrl_c_cancels_the_job_and_exits_130(daemon_process):
    proc = start_cli(daemon_process, "generate", "x", "--bars", "32", "--json", "--job-id", "cli-sigint")
    wait_for_stage(proc, "generating")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == EXIT_CTRL_C
    rest = json_events(proc.stdout.read())
    assert rest[-1]["event"] == "error" and rest[-1]["code"] == "cancelled"
    with OscClient(daemon_process.host, daemon_process.port) as osc:
        osc.hello()
        osc.send("/continuo/get", "cli-sigint")
        _, args = osc.wait_for(lambda a, args: a == "/continuo/error" and args[:1] == ["cli-sigint"], 10)
    assert args[1] == "cancelled"


def test_an_input_outside_the_input_roots_is_copied_into_the_inbox(daemon_process, daemon_root, tmp_path):
    made = json_events(cli(daemon_process, "generate", "x", "--bars", "0.5", "--json").stdout)
    clip = tmp_path / "my clip.wav"  # outside every input root of the daemon
    clip.write_bytes(Path(first_output(made)["path"]).read_bytes())
    result = cli(daemon_process, "continue", str(clip), "--bars", "0.5", "--json")
    assert result.returncode == 0, result.stderr
    events = json_events(result.stdout)
    (copied,) = [e for e in events if e["event"] == "copied"]
    assert copied["source"] == clip.as_posix() and Path(copied["path"]).parent == daemon_root / "inbox"
    assert Path(copied["path"]).read_bytes() == clip.read_bytes()
    manifest = json.loads((Path(first_output(events)["path"]).parent / "manifest.json").read_text())
    assert manifest["input_path"] == copied["path"]


def test_a_render_continued_without_bpm_keeps_its_own_tempo_and_key(daemon_process, daemon_root):
    """The daemon wrote the clip's manifest (92 BPM, F# minor): continuing it renders at 92 in F# minor, where
    the old CLI's --bpm default of 120 won; the render is sent where it lies, not copied into the inbox."""
    made = json_events(cli(daemon_process, "generate", "x", "--bars", "0.5", "--bpm", "92", "--key", "F# minor",
                           "--json").stdout)
    clip = first_output(made)["path"]
    result = cli(daemon_process, "continue", clip, "--bars", "1", "--json", "--job-id", "cli-cont-92")
    assert result.returncode == 0, result.stderr
    events = json_events(result.stdout)
    assert not [e for e in events if e["event"] == "copied"]
    output = first_output(events)
    assert sf.info(output["path"]).frames == round(4 * 60 / 92 * 48000)  # one bar at 92, not at 120
    assert Path(output["daw_path"]).name == "cli-cont-92_mix_1bars_92bpm_F#min.wav"
    manifest = json.loads((Path(output["path"]).parent / "manifest.json").read_text())
    assert manifest["input_path"] == clip and manifest["context"]["bpm"] == 92
    faster = json_events(cli(daemon_process, "continue", clip, "--bars", "1", "--bpm", "100", "--json").stdout)
    assert sf.info(first_output(faster)["path"]).frames == round(4 * 60 / 100 * 48000)  # a flag still wins


def test_stems_and_variations_and_status(daemon_process, daemon_root):
    mix = first_output(json_events(cli(daemon_process, "generate", "x", "--bars", "0.5", "--json").stdout))["path"]
    stems = cli(daemon_process, "stems", mix, "--stems", "drums,bass", "--json")
    assert stems.returncode == 0, stems.stderr
    names = [e["name"] for e in json_events(stems.stdout) if e["event"] == "output"]
    assert names == ["drums", "bass"]
    takes = cli(daemon_process, "variations", "--count", "2", "--bars", "0.25", "--prompt", "dark techno")
    assert takes.returncode == 0 and [Path(p).name for p in takes.stdout.split()] == ["variation-1.wav",
                                                                                     "variation-2.wav"]
    status = cli(daemon_process, "status")
    assert status.returncode == 0 and "SMOKE" in status.stdout and "max_queue 2" in status.stdout


def test_a_daemon_stopping_mid_job_exits_interrupted(tiny_model_dir, tmp_path):
    with DaemonProcess(daemon_flags(tiny_model_dir, tmp_path)) as daemon:
        proc = start_cli(daemon, "generate", "x", "--bars", "32", "--json", "--job-id", "cli-stop")
        wait_for_stage(proc, "generating")
        daemon.stop(signal.SIGTERM)
    assert proc.wait(30) == EXIT_CODES["interrupted"]
