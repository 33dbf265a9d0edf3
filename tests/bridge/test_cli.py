import json
import os
import subprocess
import sys

import pytest

from bridge.cli import main
from bridge.clients.send import format_event, parse_arg


@pytest.mark.parametrize("text, value", [("8", 8), ("8.0", 8.0), ("-1e3", -1000.0), ("s:8", "8"),
                                         ("default", "default"), ("warm piano, {bpm} bpm", "warm piano, {bpm} bpm")])
def test_send_arguments_are_typed_like_a_human_means_them(text, value):
    parsed = parse_arg(text)
    assert parsed == value and type(parsed) is type(value)


def test_format_event_prints_one_line():
    assert format_event("/continuo/done", ["job-1", 1, 42, 3.5]) == "/continuo/done 'job-1' 1 42 3.5"


def test_make_tiny_writes_a_loadable_smoke_checkpoint(tmp_path, capsys):
    assert main(["model", "make-tiny", str(tmp_path / "tiny")]) == 0
    assert "RANDOM" in capsys.readouterr().out
    assert json.loads((tmp_path / "tiny" / "continuo_smoke.json").read_text())["smoke"] is True
    assert (tmp_path / "tiny" / "config.json").is_file()


def test_doctor_reports_device_accelerations_and_model(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert main(["doctor", "--model", "facebook/musicgen-small"]) == 0
    out = capsys.readouterr().out
    for word in ("accelerations:", "cuda", "sdpa", "packages:", "pedalboard", "model:", "smoke model"):
        assert word in out


def test_doctor_shows_the_quality_decision_and_the_speed_saved_for_the_model(capsys, monkeypatch, tmp_path,
                                                                            tiny_model_dir):
    """After a load measured auto's lossy modes, doctor shows that decision for the checkpoint; before, none. After
    a warm-up, the real-time factor it measured on this machine, the loaded engine's figure (not another)."""
    from inference.loading import load_engine, resolve_model

    monkeypatch.setenv("CONTINUO_PLANS_DIR", str(tmp_path / "plans"))
    assert main(["doctor", "--model", str(tiny_model_dir)]) == 0
    out = capsys.readouterr().out
    assert "quality decisions: none saved yet" in out and "speed on this machine: not measured yet" in out
    engine = load_engine(resolve_model(str(tiny_model_dir), tiny_dir=tmp_path / "unused"), device="cpu",
                         warm_up=False)
    assert main(["doctor", "--model", str(tiny_model_dir)]) == 0
    out = capsys.readouterr().out
    assert "quality decision: musicgen-calibration (weights=auto kv_cache=auto" in out and "bf16 floor KL" in out
    assert f"(LM heads {engine.info.modes['heads']})" in out  # the heads' decision beside the weights'
    assert "speed on this machine: not measured yet" in out
    engine.warm_up()
    assert main(["doctor", "--model", str(tiny_model_dir)]) == 0
    out = capsys.readouterr().out
    speed = engine.measured_speed
    line = next(line for line in out.splitlines() if "speed on this machine" in line)
    assert f"RTF {speed.rtf:.2f} measured at warm-up (1 s of audio" in line and "threads=" in line
    assert f"RTF {speed.rtf + 0.5:.2f} " not in out  # the control: another figure is not what it shows


def test_serve_refuses_a_public_bind_with_a_clear_message(capsys):
    assert main(["serve", "--osc-host", "0.0.0.0"]) == 2
    assert "allow-list" in capsys.readouterr().err


def recording_suite(seen: dict, row: dict):
    """A stand-in for a bench suite: records its arguments into seen and emits row."""

    def suite(**kwargs):
        seen.update(kwargs)
        kwargs["emit"](row)

    return suite


def test_bench_engine_runs_the_engine_suite(monkeypatch, capsys):
    seen = {}
    monkeypatch.setattr("inference.bench.musicgen.run_engine_suite",
                        recording_suite(seen, {"suite": "engine", "backend": "engine"}))
    assert main(["bench", "engine", "--quick", "--seconds", "1.5", "--shape", "musicgen-small"]) == 0
    assert seen["quick"] and seen["duration_s"] == 1.5 and seen["shapes"] == ["musicgen-small"]
    assert '"backend": "engine"' in capsys.readouterr().out


def test_bench_step_runs_the_step_profile(monkeypatch, capsys):
    seen = {}
    monkeypatch.setattr("inference.bench.step_profile.run_step_profile",
                        recording_suite(seen, {"suite": "step-profile", "weights": "int4"}))
    assert main(["bench", "step", "--quick", "--shape", "musicgen-medium"]) == 0
    assert seen["shape"] == "musicgen-medium" and seen["rounds"] == 1 and seen["duration_s"] == 2.0
    assert seen["kv_cache"] == "int8"  # auto: the engine's CPU default
    assert '"suite": "step-profile"' in capsys.readouterr().out


@pytest.mark.slow
def test_analyze_and_midi_listen_to_a_file_on_this_machine(tmp_path, capsys):
    import soundfile as sf

    from bridge.audio.midi_files import read_midi_notes
    from bridge.tools.listen_truth import drum_pattern, melody, note_f1

    beat = drum_pattern(96.0, "6/8", bars=6)
    sf.write(tmp_path / "beat.wav", beat.audio.T, beat.sample_rate)
    assert main(["analyze", str(tmp_path / "beat.wav"), "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["bpm"] == pytest.approx(96.0, rel=0.02) and found["metre"] == "6/8" and found["downbeats_s"]
    assert main(["analyze", str(tmp_path / "beat.wav")]) == 0
    assert "BPM (confidence" in capsys.readouterr().out
    line = melody(seed=2, count=10)
    sf.write(tmp_path / "line.wav", line.audio.T, line.sample_rate)
    assert main(["midi", str(tmp_path / "line.wav"), "--bpm", "110", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["path"] == (tmp_path / "line.mid").as_posix() and summary["bpm_from"] == "--bpm"
    notes, bpm = read_midi_notes(tmp_path / "line.mid")
    assert bpm == pytest.approx(110.0)
    assert note_f1([(n.pitch, n.start_s) for n in notes], [(n.pitch, n.start_s) for n in line.notes]) >= 0.8
    before = (tmp_path / "line.mid").read_bytes()  # control: a second run never overwrites the file
    assert main(["midi", str(tmp_path / "line.wav"), "--bpm", "90"]) == 2
    assert "exists" in capsys.readouterr().err and (tmp_path / "line.mid").read_bytes() == before


def test_building_the_parser_imports_no_torch():
    """Every `continuo` command builds the whole parser: train-style's (bridge/tools/train_style.py) must not bring
    torch with it, nor analyze/midi's (bridge/tools/listen.py) scipy (a `continuo status --help` took 3.5 s with
    both, 0.25 s without). The controls: the training loop (inference/runtime/lora_training.py) imports torch, the
    analysis scipy."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    probe = ("import sys; from bridge.cli import build_parser; build_parser(); "
             "a, b = 'torch' in sys.modules, 'scipy' in sys.modules; import bridge.audio.analysis; "
             "c = 'scipy' in sys.modules; import inference.runtime.lora_training; "
             "print(a, b, c, 'torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=root, timeout=120)
    assert result.stdout.split() == ["False", "False", "True", "True"], result.stderr


def test_the_command_limits_openmps_spin_before_torch_loads_and_keeps_the_users_choice():
    from bridge.cli import OPENMP_SPIN_COUNT, limit_openmp_spin

    env: dict[str, str] = {}
    assert limit_openmp_spin(env) and env == {"GOMP_SPINCOUNT": OPENMP_SPIN_COUNT}
    for users in ({"GOMP_SPINCOUNT": "300000"}, {"OMP_WAIT_POLICY": "ACTIVE"}):  # the user's setting wins
        env = dict(users)
        assert not limit_openmp_spin(env) and env == users
    # the real entry point sets it first thing, before anything could load torch (libgomp reads it once, at load)
    code = ("import os, sys; from bridge import cli\n"
            "try:\n    cli.main(['--version'])\nexcept SystemExit:\n    pass\n"
            "print(os.environ.get('GOMP_SPINCOUNT'), 'torch' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.stdout.split()[-2:] == [OPENMP_SPIN_COUNT, "False"], out.stdout + out.stderr
