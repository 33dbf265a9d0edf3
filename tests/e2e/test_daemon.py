"""End to end: the real daemon as a subprocess on loopback, driven by an OSC client, tiny model."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bridge.audio.loudness import measure_lufs
from bridge.clients.osc import OscClient
from bridge.clients.process import DaemonProcess
from tests.daemons import JOB_TIMEOUT_S, daemon_flags  # tests/e2e/test_midi.py takes JOB_TIMEOUT_S from here

pytestmark = pytest.mark.slow

def addresses(events):
    return [address for address, _ in events]


def check_wav(path: str, *, frames: int, sample_rate: int, reported_lufs: float) -> np.ndarray:
    info = sf.info(path)
    assert (info.frames, info.channels, info.samplerate, info.subtype) == (frames, 2, sample_rate, "PCM_24")
    audio, _ = sf.read(path, dtype="float32", always_2d=True)
    assert np.isfinite(audio).all() and np.abs(audio).max() > 0
    assert abs(measure_lufs(audio.T, sample_rate) - reported_lufs) <= 1.0
    return audio


def test_welcome_names_the_smoke_model(daemon_process, daemon_root):
    with OscClient(daemon_process.host, daemon_process.port) as osc:
        version, model, sample_rate, device, inbox = osc.hello()
    assert "SMOKE" in model and sample_rate == 48000 and device == "cpu"
    assert inbox == (daemon_root / "inbox").as_posix()  # an input root: clients copy inputs there


def test_the_start_log_is_ours_and_the_ready_line_short_with_the_page_first(daemon_process):
    """The ready line leads with the control room's address, then OSC and the model, in under 160 characters (the
    old one was ~330, the page fifth); every endpoint is on the line before it, where DaemonProcess found them; no
    transformers pad-token warning (the tiny model trips it, as MusicGen's do) and no "Loading weights" bar."""
    log = daemon_process.log
    (ready,) = [line for line in log.splitlines() if line.startswith("continuo ready")]
    assert ready.startswith("continuo ready in ") and f": open {daemon_process.http_url}, OSC" in ready
    assert f"OSC on udp://{daemon_process.host}:{daemon_process.port}" in ready and "SMOKE" in ready
    assert len(ready) < 160, len(ready)
    (endpoints,) = [line for line in log.splitlines() if line.startswith("continuo endpoints:")]
    assert "output_root=" in endpoints and daemon_process.zmq_endpoint in endpoints
    assert "pad_token_id must be" not in log and "Loading weights" not in log and "[transformers]" not in log


def test_generate_writes_a_bar_exact_file(osc_client, daemon_root):
    osc_client.send("/continuo/generate", "gen-1", "default", "warm lo-fi piano, {bpm} bpm", 1.0)
    events = osc_client.wait_job("gen-1", JOB_TIMEOUT_S)
    names = addresses(events)
    assert names[0] == "/continuo/queued" and names[-1] == "/continuo/done"
    assert "/continuo/progress" in names and names.count("/continuo/output") == 1
    fractions = [args[1] for address, args in events if address == "/continuo/progress"]
    assert fractions == sorted(fractions) and all(0.0 <= f <= 1.0 for f in fractions)
    _, name, path, sample_rate, channels, seconds, bars, lufs, peak_db = next(
        args for address, args in events if address == "/continuo/output")
    assert Path(path).is_absolute() and Path(path).is_relative_to(daemon_root / "renders")
    assert (name, sample_rate, channels, bars) == ("mix", 48000, 2, 1.0)
    assert seconds == pytest.approx(2.0)
    check_wav(path, frames=96000, sample_rate=48000, reported_lufs=lufs)
    assert peak_db <= -1.0 + 0.2  # the default preset's true-peak ceiling
    manifest = json.loads((Path(path).parent / "manifest.json").read_text())
    assert manifest["model"]["smoke_model"] is True and "noise" in manifest["warning"]
    modes = manifest["model"]["modes"]  # how it ran: auto's calibrated decision and its figures
    assert modes["calibration"]["gated"] and modes["weights"] == modes["calibration"]["weights"]
    assert events[-1][1][1] == 1  # outputs


@pytest.mark.parametrize("bpm, beats, unit, rate, bars", [(90.0, 3, 4, 44100, 2.0), (174.0, 7, 8, 96000, 1.5)])
def test_session_context_sets_length_and_rate(osc_client, bpm, beats, unit, rate, bars):
    osc_client.send("/continuo/context", bpm, beats, unit, "A minor", rate)
    address, args = osc_client.wait_for(lambda a, _args: a == "/continuo/context", 10)
    assert args[0] == pytest.approx(bpm) and args[4] == rate
    job_id = f"ctx-{int(bpm)}"
    osc_client.send("/continuo/generate", job_id, "lofi_tape", "dusty drums in {key}", bars)
    events = osc_client.wait_job(job_id, JOB_TIMEOUT_S)
    assert events[-1][0] == "/continuo/done", events[-1]
    output = next(args for address, args in events if address == "/continuo/output")
    frames = round(bars * beats * 60 / bpm * 4 / unit * rate)
    check_wav(output[2], frames=frames, sample_rate=rate, reported_lufs=output[7])


def test_continue_from_an_input_file(osc_client, daemon_root):
    inbox = daemon_root / "inbox"
    inbox.mkdir(exist_ok=True)
    t = np.arange(int(32000 * 3.0)) / 32000
    clip = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    sf.write(inbox / "clip.wav", np.stack([clip, clip], axis=1), 32000, subtype="PCM_16")
    osc_client.send("/continuo/continue", "cont-1", "default", str(inbox / "clip.wav"), 1.0)
    events = osc_client.wait_job("cont-1", JOB_TIMEOUT_S)
    assert events[-1][0] == "/continuo/done", events[-1]
    output = next(args for address, args in events if address == "/continuo/output")
    check_wav(output[2], frames=96000, sample_rate=48000, reported_lufs=output[7])


BAD_MESSAGES = [
    ("/continuo/generate", ["bad-1", "default", "x"], "bad_request"),  # missing bars
    ("/continuo/generate", ["bad-2", "default", "x", "eight"], "bad_request"),  # wrong type
    ("/continuo/generate", ["bad-3", "default", "x", -2.0], "bad_request"),  # negative bars
    ("/continuo/generate", ["bad-4", "no_such_preset", "x", 1.0], "not_found"),
    ("/continuo/generate", ["bad-5", "default", "x", 1.0, "temperature"], "bad_request"),  # odd settings
    ("/continuo/generate", ["bad-6", "default", "x", 1.0, "bpm", 9000.0], "bad_request"),  # absurd bpm
    ("/continuo/generate", ["bad-7", "default", "x", 200.0], "bad_request"),  # past the model window
    ("/continuo/generate", ["bad id!", "default", "x", 1.0], "bad_request"),
    ("/continuo/continue", ["bad-8", "default", "/etc/passwd", 1.0], "bad_request"),  # outside input roots
    ("/continuo/continue", ["bad-9", "default", "relative/clip.wav", 1.0], "bad_request"),
    ("/continuo/context", [9000.0, 4, 4, "C", 48000], "bad_request"),
    ("/continuo/nonsense", [1], "bad_request"),
    ("/continuo/ping", ["not-an-int"], "bad_request"),
]


@pytest.mark.parametrize("address, args, code", BAD_MESSAGES, ids=[f"{m[0]}-{i}" for i, m in enumerate(BAD_MESSAGES)])
def test_bad_input_is_answered_and_the_daemon_keeps_serving(osc_client, address, args, code):
    osc_client.send(address, *args)
    _, error = osc_client.wait_for(lambda a, _args: a == "/continuo/error", 10)
    assert error[1] == code, error
    assert len(error[2]) > 10  # says what is wrong
    if args and isinstance(args[0], str) and args[0].startswith("bad-"):
        assert error[0] == args[0]
    assert osc_client.ping(7, timeout_s=10) == 7


def test_missing_input_file_is_not_found(osc_client, daemon_root):
    (daemon_root / "inbox").mkdir(exist_ok=True)
    osc_client.send("/continuo/continue", "missing-1", "default", str(daemon_root / "inbox" / "nope.wav"), 1.0)
    _, error = osc_client.wait_for(lambda a, _args: a == "/continuo/error", 10)
    assert error[:2] == ["missing-1", "not_found"]


def test_resending_a_job_id_replays_instead_of_rendering_again(osc_client):
    osc_client.send("/continuo/generate", "idem-1", "default", "bells", 0.5)
    first = osc_client.wait_job("idem-1", JOB_TIMEOUT_S)
    osc_client.send("/continuo/generate", "idem-1", "default", "bells", 0.5)  # the same request: a resend
    second = osc_client.wait_job("idem-1", JOB_TIMEOUT_S)
    assert "/continuo/queued" not in addresses(second)
    assert [a for a in second if a[0] == "/continuo/output"] == [a for a in first if a[0] == "/continuo/output"]


def test_a_job_id_reused_for_another_request_is_refused_never_answered_with_the_old_take(osc_client):
    """The control: before, "something else" got the bells' files back (the Max patch's ids restarted with the
    machine, so a new prompt could receive an old take)."""
    osc_client.send("/continuo/generate", "idem-2", "default", "bells", 0.5)
    osc_client.wait_job("idem-2", JOB_TIMEOUT_S, ack=True)
    osc_client.send("/continuo/generate", "idem-2", "default", "something else", 4.0)
    refused = osc_client.wait_job("idem-2", JOB_TIMEOUT_S)
    assert [a for a, _ in refused] == ["/continuo/error"] and refused[0][1][1] == "id_conflict"
    assert "idem-2" in refused[0][1][2] and '"bells' in refused[0][1][2]


def test_cancel_a_running_job(osc_client):
    osc_client.send("/continuo/generate", "long-1", "default", "a long one", 8.0)
    osc_client.wait_for(lambda a, args: a == "/continuo/progress" and args[0] == "long-1", JOB_TIMEOUT_S)
    osc_client.send("/continuo/cancel", "long-1")
    events = osc_client.wait_job("long-1", JOB_TIMEOUT_S)
    assert events[-1][0] == "/continuo/error" and events[-1][1][1] == "cancelled"


def test_status_and_presets(osc_client):
    osc_client.send("/continuo/status")
    _, status = osc_client.wait_for(lambda a, _args: a == "/continuo/status", 10)
    assert status[0] in ("idle", "busy") and "SMOKE" in status[1] and status[3] > 0
    osc_client.send("/continuo/presets")
    names = set()
    while True:
        try:
            _, args = osc_client.wait_for(lambda a, _args: a == "/continuo/presets", 2)
        except TimeoutError:
            break
        names.add(args[0])
    assert {"default", "lofi_tape", "club_master"} <= names


def test_queue_full_gets_busy(tiny_model_dir, tmp_path):
    # one job at a time (max_batch 1): q-0 runs, q-1 waits, the rest find the queue full
    with DaemonProcess(daemon_flags(tiny_model_dir, tmp_path, "--max-queue", "1", "--max-batch", "1")) as process, \
            OscClient(process.host, process.port) as osc:
        osc.hello()
        osc.send("/continuo/generate", "q-0", "default", "x", 8.0)
        osc.wait_for(lambda a, args: a == "/continuo/progress" and args[0] == "q-0", JOB_TIMEOUT_S)
        for i in range(1, 4):  # q-0 runs, q-1 waits, the rest find the queue full
            osc.send("/continuo/generate", f"q-{i}", "default", "x", 8.0)
        _, error = osc.wait_for(lambda a, args: a == "/continuo/error" and args[1] == "busy", 30)
        assert error[0] in {"q-2", "q-3"}
        osc.send("/continuo/cancel", "*")


def test_restart_replays_finished_jobs_and_reports_interrupted(tiny_model_dir, tmp_path):
    flags = daemon_flags(tiny_model_dir, tmp_path)
    with DaemonProcess(flags) as first, OscClient(first.host, first.port) as osc:
        osc.hello()
        osc.send("/continuo/generate", "keep-1", "default", "x", 0.5)
        done = osc.wait_job("keep-1", JOB_TIMEOUT_S)
        osc.send("/continuo/generate", "cut-1", "default", "x", 8.0)
        osc.wait_for(lambda a, args: a == "/continuo/progress" and args[0] == "cut-1", JOB_TIMEOUT_S)
        first.stop(signal.SIGKILL)
    with DaemonProcess(flags) as second, OscClient(second.host, second.port) as osc:
        osc.hello()
        osc.send("/continuo/get", "keep-1")
        replay = osc.wait_job("keep-1", 10)
        assert [e for e in replay if e[0] == "/continuo/output"] == [e for e in done if e[0] == "/continuo/output"]
        assert replay[-1][0] == "/continuo/done"
        osc.send("/continuo/get", "cut-1")
        cut = osc.wait_job("cut-1", 10)
        assert cut[-1][0] == "/continuo/error" and cut[-1][1][1] == "interrupted"
        assert not list((tmp_path / "renders").rglob("*.partial"))
        assert second.stop(signal.SIGTERM) == 0


def test_sigterm_interrupts_the_running_job_and_exits_zero(tiny_model_dir, tmp_path):
    with DaemonProcess(daemon_flags(tiny_model_dir, tmp_path)) as process, \
            OscClient(process.host, process.port) as osc:
        osc.hello()
        osc.send("/continuo/generate", "term-1", "default", "x", 8.0)
        osc.wait_for(lambda a, args: a == "/continuo/progress" and args[0] == "term-1", JOB_TIMEOUT_S)
        assert process.stop(signal.SIGTERM) == 0
        events = osc.wait_job("term-1", 10)
    assert events[-1][0] == "/continuo/error" and events[-1][1][1] == "interrupted"
    assert "stopped" in process.log


def test_a_bad_user_preset_stops_startup_naming_file_and_key(tiny_model_dir, tmp_path):
    presets = tmp_path / "user-presets"
    presets.mkdir()
    (presets / "broken.toml").write_text('[generation]\ntemprature = 1.0\n')
    with pytest.raises(RuntimeError) as info:
        DaemonProcess(daemon_flags(tiny_model_dir, tmp_path), ready_timeout_s=60).start()
    message = str(info.value)
    assert "broken.toml" in message and "temprature" in message


def test_stream_sends_preview_chunks_before_the_output(osc_client):
    osc_client.send("/continuo/generate", "stream-1", "default", "piano", 2.0, "stream", 1)
    events = osc_client.wait_job("stream-1", JOB_TIMEOUT_S)
    names = addresses(events)
    assert names[-1] == "/continuo/done", events[-1]
    partials = [args for address, args in events if address == "/continuo/partial"]
    assert len(partials) >= 3  # 4 s of audio in about one-second chunks
    assert names.index("/continuo/partial") < names.index("/continuo/output")
    assert [p[1] for p in partials] == list(range(1, len(partials) + 1))
    assert sum(p[4] for p in partials) == pytest.approx(4.0, abs=0.2)
    for p in partials:
        info = sf.info(p[2])
        assert info.samplerate == 48000 and info.channels == 2 and "/preview/" in p[2]


def test_variations_stream_one_preview_per_take(osc_client):
    osc_client.send("/continuo/variations", "stream-2", "default", "", 2, 1.0, "stream", 1)
    events = osc_client.wait_job("stream-2", JOB_TIMEOUT_S)
    assert events[-1][0] == "/continuo/done", events[-1]
    partials = [args for address, args in events if address == "/continuo/partial"]
    for take in ("variation-1", "variation-2"):
        own = [p for p in partials if f"/preview/{take}/" in p[2]]
        assert [p[1] for p in own] == list(range(1, len(own) + 1)) and len(own) >= 2
        assert sum(p[4] for p in own) == pytest.approx(2.0, abs=0.2)  # 1 bar at 120 BPM
    assert len(partials) == sum(1 for p in partials if "/preview/variation-" in p[2])



def test_style_mixing_blends_a_second_prompt(osc_client):
    osc_client.send("/continuo/generate", "style-1", "default", "warm piano", 1.0, "style", "dark techno kick",
                "style_weight", 0.5, "seed", 11)
    events = osc_client.wait_job("style-1", JOB_TIMEOUT_S)
    assert events[-1][0] == "/continuo/done", events[-1]
    osc_client.send("/continuo/generate", "style-2", "default", "warm piano", 1.0, "style_weight", 0.5)
    _, error = osc_client.wait_for(lambda a, args: a == "/continuo/error" and args[0] == "style-2", 10)
    assert error[1] == "bad_request" and "style" in error[2]
