"""The style-training job (bridge/jobs/style_training.py) when the model is ACE-Step (the tiny pipeline): a folder
in, lora_dir/NAME out in diffusers' format with its card, queued in the daemon after the renders with the same
events as MusicGen's, renderable through the ACE-Step engine's lora path; cancelled and run again, the job resumes
from its checkpoint and writes the same adapter, bit for bit, as a run that never stopped."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest

from bridge.jobs.style_training import TRAINING_DIR, StyleRequest, plan_style, train_style
from inference.adapters import WEIGHT_NAME, find_adapters
from inference.errors import Cancelled, InferenceError
from tests.bridge.jobs.test_style_training import renders_without_and_with, train_after_a_render
from tests.daemons import daemon_settings, running_daemon

SENDER = ("127.0.0.1", 41000)


def request(folder, name="ace-band", **changes) -> StyleRequest:
    return dataclasses.replace(StyleRequest(folder=folder, name=name, text="soft chords", clip_s=4.0, epochs=1,
                                            batch_size=4, learning_rate=1e-2, checkpoint_every=2), **changes)


@pytest.mark.slow
def test_cancelled_and_resumed_the_job_writes_the_same_adapter(chord_recordings, tiny_acestep_dir, tmp_path):
    whole = train_style(request(chord_recordings), model_dir=tiny_acestep_dir, lora_dir=tmp_path / "whole")
    card = json.loads((whole / "card.json").read_text())
    assert card["family"] == "ace-step" and card["steps"] == 4 and card["clips"] == 16
    assert "tags" in card["conditioning"] and "no lyrics" in card["conditioning"]
    assert card["options"]["rank"] == 8 and "caption_dropout" not in card["options"]  # ACE-Step's own options
    assert card["source_files"][0]["skipped"].startswith("not readable") and np.isfinite(card["final_loss"])
    lora_dir, done = tmp_path / "cut", []
    with pytest.raises(Cancelled, match="checkpoint of step 2 is kept"):
        train_style(request(chord_recordings), model_dir=tiny_acestep_dir, lora_dir=lora_dir,
                    on_progress=done.append, should_cancel=lambda: len(done) >= 3)
    assert (lora_dir / TRAINING_DIR / "ace-band" / "checkpoint.pt").is_file() and find_adapters(lora_dir) == {}
    with pytest.raises(InferenceError, match="made from other recordings"):  # the control: other clips
        train_style(request(chord_recordings, clip_s=5.0), model_dir=tiny_acestep_dir, lora_dir=lora_dir)
    reports = []
    resumed = train_style(request(chord_recordings), model_dir=tiny_acestep_dir, lora_dir=lora_dir,
                          on_report=reports.append)
    assert "resuming from the checkpoint of step 2" in reports[-1]
    assert "no lyrics" in reports[0]  # the report says how the captions are used
    assert (resumed / WEIGHT_NAME).read_bytes() == (whole / WEIGHT_NAME).read_bytes()
    other = train_style(request(chord_recordings, seed=5), model_dir=tiny_acestep_dir, lora_dir=tmp_path / "seed")
    assert (other / WEIGHT_NAME).read_bytes() != (whole / WEIGHT_NAME).read_bytes()  # the control: another seed


def test_plan_measures_the_ace_step_model(chord_recordings, tiny_acestep_dir):
    plan = plan_style(request(chord_recordings), model_dir=tiny_acestep_dir)
    assert plan.steps == 4 and plan.steps_per_s > 0 and plan.peak_memory_gb > 0 and not plan.gpu_job


@pytest.fixture
def ace_daemon(chord_recordings, tiny_acestep_dir, tmp_path):
    shutil.copytree(chord_recordings, tmp_path / "inbox" / "band")  # under the daemon's input roots
    settings = daemon_settings(tiny_acestep_dir, tmp_path, lora_dir=tmp_path / "loras", weights="fp32")
    with running_daemon(settings) as daemon:
        yield daemon


@pytest.mark.slow
def test_the_daemon_trains_an_ace_step_adapter_after_the_renders(ace_daemon, tmp_path):
    daemon, folder = ace_daemon, str(tmp_path / "inbox" / "band")
    steps = train_after_a_render(daemon, folder, 100)  # 4 clips of 16 s (a 30 s clip holds a whole take): 4 steps
    assert all(np.isfinite(s[5]) for s in steps) and steps[-1][6] == 0.0  # loss, ETA
    target = tmp_path / "loras" / "band"
    assert find_adapters(tmp_path / "loras") == {"band": target}
    assert json.loads((target / "card.json").read_text())["family"] == "ace-step"
    plain, styled = renders_without_and_with(daemon, "band", 120)
    assert plain.shape == styled.shape and not np.allclose(plain, styled, atol=1e-4)
