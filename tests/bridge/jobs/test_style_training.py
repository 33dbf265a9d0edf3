"""The style-training job (bridge/jobs/style_training.py) and `continuo train-style` (bridge/tools/train_style.py)
on the tiny MusicGen: a folder in, lora_dir/NAME out (weights in our format, the card), renderable through the
lora path; a taken or invalid name refused before any work; cancel keeps the checkpoint and the same command
resumes; --plan measures and says when it is a GPU job."""

from __future__ import annotations

import dataclasses
import json
import re
import socket
import time

import numpy as np
import pytest
import soundfile
import torch

import bridge.jobs.style_training as style_training
from bridge.cli import main
from bridge.errors import BadRequest, ConfigError
from bridge.jobs.admission import merged_lora
from bridge.jobs.pool import load_local_engine
from bridge.jobs.style_training import TRAINING_DIR, StyleRequest, check_name, plan_style, train_style
from inference.adapters import find_adapters
from inference.api import GenerationRequest, LoraAdapter
from inference.errors import Cancelled
from inference.loading import load_engine, resolve_model
from tests.daemons import daemon_settings


@pytest.fixture(scope="module")
def recordings(chord_recordings):
    """Four 16 s files of chords (64 s in all) and one that is not audio (tests/conftest.py)."""
    return chord_recordings


def request(folder, name="my-band", **changes) -> StyleRequest:
    return dataclasses.replace(StyleRequest(folder=folder, name=name, text="soft chords", clip_s=4.0, epochs=1,
                                            batch_size=4, learning_rate=1e-2, checkpoint_every=2), **changes)


@pytest.mark.slow
def test_a_folder_becomes_an_adapter_with_its_card(recordings, tiny_model_dir, tmp_path):
    reports, steps = [], []
    target = train_style(request(recordings), model_dir=tiny_model_dir, lora_dir=tmp_path, on_report=reports.append,
                         on_progress=steps.append)
    card = json.loads((target / "card.json").read_text())
    assert find_adapters(tmp_path) == {"my-band": target}  # where the lora setting looks, as for a downloaded one
    assert not (tmp_path / TRAINING_DIR / "my-band").exists()  # the checkpoint goes once the adapter is written
    assert card["steps"] == 4 == len(steps) and card["clips"] == 16 and card["minutes_of_audio"] == pytest.approx(
        64 / 60, abs=0.01)
    assert [f["name"] for f in card["source_files"]] == ["lyrics.txt", "take 0.wav", "take 1.wav", "take 2.wav",
                                                         "take 3.wav"]
    assert card["source_files"][0]["skipped"].startswith("not readable")
    assert len(card["source_files"][1]["sha256"]) == 64
    assert card["base_fingerprint"] and card["date"].endswith("+00:00") and np.isfinite(card["final_loss"])
    assert "skipped lyrics.txt: not readable" in reports[0]
    assert steps[-1].epoch == 1 and steps[-1].step == 4 and steps[-1].eta_s == 0.0
    engine = load_engine(resolve_model(str(tiny_model_dir), tiny_dir=tmp_path / "t"), device="cpu", weights="fp32")
    plain = GenerationRequest(prompt="soft chords", duration_s=0.4, seed=2)
    adapted = dataclasses.replace(plain, adapter=LoraAdapter("my-band", target, 1.0))
    assert not np.allclose(engine.generate(plain).audio, engine.generate(adapted).audio)
    with pytest.raises(BadRequest, match="already exists"):  # never overwritten
        train_style(request(recordings), model_dir=tiny_model_dir, lora_dir=tmp_path)


def test_names_are_checked_first(tmp_path):
    (tmp_path / "taken.safetensors").write_bytes(b"x")
    with pytest.raises(BadRequest, match="already exists"):
        check_name(tmp_path, "taken")
    with pytest.raises(BadRequest, match="must be 1-64 letters"):
        check_name(tmp_path, "../escape")
    assert check_name(tmp_path, "free") == tmp_path / "free"  # the control


@pytest.mark.slow
def test_cancel_keeps_the_checkpoint_and_the_same_run_resumes(recordings, tiny_model_dir, tmp_path):
    done = []
    with pytest.raises(Cancelled, match="checkpoint of step 2 is kept"):
        train_style(request(recordings), model_dir=tiny_model_dir, lora_dir=tmp_path, on_progress=done.append,
                    should_cancel=lambda: len(done) >= 3)
    assert (tmp_path / TRAINING_DIR / "my-band" / "checkpoint.pt").is_file() and find_adapters(tmp_path) == {}
    reports = []
    target = train_style(request(recordings), model_dir=tiny_model_dir, lora_dir=tmp_path, on_report=reports.append)
    assert "resuming from the checkpoint of step 2" in reports[-1]
    assert json.loads((target / "card.json").read_text())["steps"] == 4


def test_plan_measures_and_says_when_it_is_a_gpu_job(recordings, tiny_model_dir, monkeypatch, capsys):
    plan = plan_style(request(recordings), model_dir=tiny_model_dir)
    assert plan.steps == 4 and plan.steps_per_s > 0 and plan.peak_memory_gb > 0 and not plan.gpu_job
    assert "4 steps" in plan.describe() and "GPU job" not in plan.describe() and "fp32 base" in plan.describe()
    monkeypatch.setattr("inference.runtime.lora_training.GPU_JOB_PARAMETERS", 0)  # the tiny model as if real-size
    big = plan_style(request(recordings), model_dir=tiny_model_dir)
    assert big.gpu_job and big.extrapolated and "This is a GPU job" in big.describe()
    assert main(["train-style", str(recordings), "--plan", "--model", str(tiny_model_dir), "--clip-s", "4",
                 "--epochs", "1", "--batch-size", "4", "--device", "cpu", "--cluster", "ray://gpu-box:10001"]) == 0
    out = capsys.readouterr().out  # the command adds where else it can run, from its settings
    assert "Where it can run instead:" in out and "(ray://gpu-box:10001)" in out and "is not built" in out


@pytest.mark.slow
def test_the_cli_trains_and_refuses_a_taken_name(recordings, tiny_model_dir, tmp_path, capsys):
    argv = ["train-style", str(recordings), "--name", "cli-band", "--model", str(tiny_model_dir), "--lora-dir",
            str(tmp_path), "--clip-s", "4", "--epochs", "1", "--batch-size", "8", "--device", "cpu", "--local"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:  # a port no daemon answers on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert main([*argv[:-1], "--osc-port", str(port)]) == 0  # no --local: asks the daemon, then trains here
    out, err = capsys.readouterr()
    assert f"no daemon answers at 127.0.0.1:{port}: training in this process" in err
    assert "adapter written to" in out and (tmp_path / "cli-band" / "card.json").is_file()
    assert main(argv) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(argv[:2] + argv[4:]) == 2  # no --name
    assert main(argv[:2] + argv[4:] + ["--plan"]) == 0
    assert "steps/s" in capsys.readouterr().out
    assert style_training.PLAN_STEPS == 2


SENDER = ("127.0.0.1", 41000)


@pytest.fixture
def style_daemon(recordings, tiny_model_dir, tmp_path):
    import shutil

    from tests.daemons import daemon_settings, running_daemon

    shutil.copytree(recordings, tmp_path / "inbox" / "band")  # under the daemon's input roots
    # the default weights: calibrated int8 / int4 (or fp32 where calibration refuses), each taking a LoRA per request
    with running_daemon(daemon_settings(tiny_model_dir, tmp_path, lora_dir=tmp_path / "loras")) as daemon:
        yield daemon


@pytest.mark.slow
def test_the_daemon_queues_training_at_batch_priority_after_the_renders(style_daemon, tmp_path):
    daemon, folder = style_daemon, str(tmp_path / "inbox" / "band")
    train_after_a_render(daemon, folder, 120)
    assert find_adapters(tmp_path / "loras") == {"band": tmp_path / "loras" / "band"}
    record = daemon.journal.get("train-1")
    assert record.status.value == "done" and record.params["name"] == "band"
    daemon.on_message("/continuo/train_style", ["train-1", folder, "band", "soft chords", 2, 0.03], SENDER)  # resent
    assert daemon.sent.wait_terminal("train-1", 5)[0] == "/continuo/done"
    plain, styled = renders_without_and_with(daemon, "band", 60)
    assert plain.shape == styled.shape and not np.allclose(plain, styled)


def train_after_a_render(daemon, folder: str, timeout_s: float) -> list:
    """train_style "band" (2 epochs) queued, then a render: the training's /continuo/training events, checked to
    come after the render's done (training waited before its first step) and to count 4 steps in 2 epochs."""
    daemon.on_message("/continuo/train_style", ["train-1", folder, "band", "soft chords", 2, 0.03], SENDER)
    daemon.on_message("/continuo/generate", ["render-1", "default", "warm piano", 1.0], SENDER)
    address, args = daemon.sent.wait_terminal("train-1", timeout_s)
    assert address == "/continuo/done", args
    events = list(daemon.sent)
    render_done = next(i for i, (ad, a) in enumerate(events) if ad == "/continuo/done" and a[0] == "render-1")
    first_step = next(i for i, (ad, a) in enumerate(events) if ad == "/continuo/training")
    assert render_done < first_step  # the render went first: training waited before its first step
    steps = [a for ad, a in daemon.sent.of("train-1") if ad == "/continuo/training"]
    assert [s[3] for s in steps] == [1, 2, 3, 4] and steps[-1][1:5] == [2, 2, 4, 4]  # epoch, epochs, step, steps
    assert ("/continuo/progress", ["train-1", 1.0, "training"]) in daemon.sent.of("train-1")
    return steps


def renders_without_and_with(daemon, adapter: str, timeout_s: float) -> tuple[np.ndarray, np.ndarray]:
    """The same render (seed 3) without the adapter and with it (the lora setting, as a downloaded one's)."""
    takes = []
    for job_id, settings in [("plain-1", []), ("styled-1", ["lora", adapter])]:
        daemon.on_message("/continuo/generate", [job_id, "default", "warm piano", 1.0, "seed", 3, *settings], SENDER)
        assert daemon.sent.wait_terminal(job_id, timeout_s)[0] == "/continuo/done"
        output = [a for ad, a in daemon.sent.of(job_id) if ad == "/continuo/output"][0][2]
        takes.append(soundfile.read(output, dtype="float32")[0])
    return takes[0], takes[1]


def test_the_daemon_refuses_before_queueing(style_daemon, tmp_path):
    daemon = style_daemon
    (tmp_path / "loras").mkdir()
    (tmp_path / "loras" / "taken.safetensors").write_bytes(b"x")
    for job_id, folder, name, words in [("out-1", str(tmp_path), "x", "outside the allowed input folders"),
                                        ("taken-1", str(tmp_path / "inbox" / "band"), "taken", "already exists")]:
        daemon.on_message("/continuo/train_style", [job_id, folder, name, "", 1], SENDER)
        address, args = daemon.sent.wait_terminal(job_id, 5)
        assert address == "/continuo/error" and args[1] == "bad_request" and words in args[2], args
        assert daemon.journal.get(job_id) is None


@pytest.mark.slow
def test_the_daemon_cancels_training_between_steps_and_keeps_the_checkpoint(style_daemon, tmp_path):
    daemon, folder = style_daemon, str(tmp_path / "inbox" / "band")
    daemon.on_message("/continuo/train_style", ["long-1", folder, "long", "", 100, 0.001], SENDER)
    deadline = time.monotonic() + 60
    while len([a for ad, a in daemon.sent.of("long-1") if ad == "/continuo/training"]) < 2:
        assert time.monotonic() < deadline, list(daemon.sent.of("long-1"))
        time.sleep(0.05)
    daemon.on_message("/continuo/cancel", ["long-1"], SENDER)
    address, args = daemon.sent.wait_terminal("long-1", 30)
    assert address == "/continuo/error" and args[1] == "cancelled", args
    assert re.search(r"cancelled after \d+ of 200 steps; no checkpoint yet \(one every 50 steps\)", args[2]), args
    assert daemon.journal.get("long-1").status.value == "cancelled"
    assert find_adapters(tmp_path / "loras") == {}  # nothing half-trained is offered as an adapter


def test_the_lora_setting_merges_an_adapter_at_load(tiny_model_dir, tmp_path):
    from inference.musicgen.lora import LoraWeights, linear_shape, target_modules, write_adapter_dir
    from inference.musicgen.training import load_training_engine

    draw = torch.Generator().manual_seed(0)
    pairs = {name: (torch.randn(4, linear_shape(module)[1], generator=draw),
                    torch.randn(linear_shape(module)[0], 4, generator=draw))
             for name, module in target_modules(load_training_engine(tiny_model_dir).decoder).items()}
    write_adapter_dir(tmp_path / "loras" / "band", LoraWeights(pairs, rank=4, alpha=4.0), {"name": "band"})
    settings = daemon_settings(tiny_model_dir, tmp_path, lora_dir=tmp_path / "loras", lora="band")
    assert merged_lora(settings) == str(tmp_path / "loras" / "band")
    assert merged_lora(dataclasses.replace(settings, lora=str(tmp_path / "loras" / "band"))) == merged_lora(settings)
    assert merged_lora(dataclasses.replace(settings, lora="")) == ""
    with pytest.raises(ConfigError, match=r"'nope' is neither an adapter in .* \(known: band\)"):
        merged_lora(dataclasses.replace(settings, lora="nope"))
    engine = load_local_engine(settings)  # the default weights: the adapter merged before calibration
    assert engine.info.modes["lora"]["merged"] == str(tmp_path / "loras" / "band")
    assert engine.info.modes["calibration"]["equalized"]
