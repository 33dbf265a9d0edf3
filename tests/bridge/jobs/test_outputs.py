"""bridge/jobs/outputs.py: a job's files over a real Journal and an EventSink whose sends are recorded; no model.

Each output is on disk under both names and in the journal at the moment its /continuo/output leaves; the
manifest follows with the request as journalled and the model that rendered it.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from bridge.audio.context import MusicalContext
from bridge.audio.presets import builtin_presets_dir, load_presets
from bridge.audio.render import measured
from bridge.jobs.events import EventSink
from bridge.jobs.journal import Journal
from bridge.jobs.outputs import Outputs, made_context
from bridge.jobs.plan import RenderPlan
from bridge.jobs.queue import Job
from bridge.protocol.schema import load_schema
from inference.api import ModelInfo
from tests.daemons import EventLog

SENDER = ("127.0.0.1", 41000)
MODEL = ModelInfo(name="tiny", source_kind="local", sample_rate=32000, channels=1, frame_rate=50.0,
                  max_duration_s=30.0, is_random=False, device="cpu", parameters=1)


@pytest.fixture
def parts(tmp_path):
    sent = EventLog()
    journal = Journal(tmp_path / "renders" / "journal.sqlite3")
    yield Outputs(tmp_path / "renders", journal, EventSink(load_schema(), sent)), journal, sent
    journal.close()


def plan_for(op: str = "generate", *, bars: float = 1.0, **changes) -> RenderPlan:
    preset = load_presets([builtin_presets_dir()])["default"]
    return RenderPlan(op=op, preset=preset, context=MusicalContext(bpm=120.0, key="F#m"), bars=bars, prompt="keys",
                      seed=7, input_path=None, **changes)


def job_for(journal: Journal, job_id: str, op: str = "generate") -> Job:
    params = {"preset": "default", "prompt": "keys", "bars": 1.0, "settings": {"seed": 7}}
    journal.insert_job(job_id, op, params, SENDER)
    return Job(job_id=job_id, op=op, params=params, reply_to=SENDER, client_key=SENDER)


def take(seconds: float, sample_rate: int = 48000):
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return measured(np.stack([0.2 * np.sin(2 * np.pi * 440 * t)] * 2).astype(np.float32), sample_rate)


def test_each_output_is_on_disk_under_both_names_and_journalled_when_its_event_leaves(parts):
    """<job>_<name>_<bars>bars_<bpm>bpm[_<key>].wav beside the stable mix.wav: the same file (a hard link here),
    there when /continuo/output goes out; the manifest keeps both paths, the event the stable one."""
    outputs, journal, sent = parts
    job = job_for(journal, "daw-1")
    folder = outputs.output_root / "daw-1"
    daw = folder / "daw-1_mix_1bars_120bpm_F#min.wav"
    at_event: list = []
    sent.on_event = lambda address, args: at_event.append(
        (sorted(p.name for p in folder.iterdir()), [o.name for o in journal.get("daw-1").outputs]))
    (record,) = outputs.write_all(job, plan_for(), {"mix": take(2.0)}, model=MODEL)
    assert at_event == [(sorted([daw.name, "mix.peaks", "mix.wav"]), ["mix"])]  # its waveform's peaks too
    assert len((folder / "mix.peaks").read_bytes()) == 1024
    assert os.path.samefile(daw, folder / "mix.wav") and record.path == (folder / "mix.wav").as_posix()
    (output,) = json.loads((folder / "manifest.json").read_text())["outputs"]
    assert (output["path"], output["daw_path"]) == (record.path, daw.as_posix())
    (event,) = [args for address, args in sent.of("daw-1") if address == "/continuo/output"]
    assert event[2] == record.path


def test_an_output_as_long_as_the_plan_counts_its_bars_and_any_other_counts_by_the_tempo(parts):
    outputs, journal, _ = parts
    job = job_for(journal, "bars-1")
    plan = plan_for(bars=1.0)  # 2 s at 120 BPM in 4/4
    mix, tail = take(2.0), take(1.0)
    records = outputs.write_all(job, plan, {"mix": mix, "mix-tail": tail}, model=MODEL)
    assert [(r.name, r.bars) for r in records] == [("mix", 1.0), ("mix-tail", 0.5)]
    assert Path(records[1].path).with_name("bars-1_mix-tail_0.5bars_120bpm_F#min.wav").exists()


def test_the_manifest_holds_the_request_the_model_and_each_variations_seed(parts):
    outputs, journal, _ = parts
    job = job_for(journal, "var-1", op="variations")
    outputs.write_all(job, plan_for("variations", count=2), {"variation-1": take(2.0), "variation-2": take(2.0)},
                      model=replace(MODEL, modes={"weights": "int8"}))
    manifest = json.loads((outputs.output_root / "var-1" / "manifest.json").read_text())
    assert manifest["params"] == job.params and manifest["op"] == "variations" and manifest["seed"] == 7
    assert manifest["model"] == {"name": "tiny", "source": "local", "smoke_model": False, "modes": {"weights": "int8"}}
    assert manifest["variation_seeds"] == {"variation-1": 7, "variation-2": 8}
    assert "warning" not in manifest


def test_a_smoke_models_render_says_so_in_its_manifest(parts):
    outputs, journal, _ = parts
    outputs.write_all(job_for(journal, "smoke-1"), plan_for(), {"mix": take(2.0)},
                      model=replace(MODEL, is_random=True))
    manifest = json.loads((outputs.output_root / "smoke-1" / "manifest.json").read_text())
    assert manifest["model"]["smoke_model"] is True and "noise, not music" in manifest["warning"]


def test_a_file_continuo_made_carries_its_tempo_metre_and_key_to_the_next_job(parts, tmp_path):
    outputs, journal, _ = parts
    plan = replace(plan_for(), context=MusicalContext(bpm=92.0, beats_per_bar=6, beat_unit=8, key="F# minor"))
    (record,) = outputs.write_all(job_for(journal, "made-1"), plan, {"mix": take(2.0)}, model=MODEL)
    made = {"bpm": 92.0, "beats_per_bar": 6, "beat_unit": 8, "key": "F# minor"}
    assert made_context(record.path, outputs.output_root) == made
    daw = next(p for p in Path(record.path).parent.iterdir() if p.name.startswith("made-1_mix_"))
    assert made_context(daw.as_posix(), outputs.output_root) == made  # its DAW name too
    elsewhere = tmp_path / "mine.wav"  # control: a file Continuo did not make
    elsewhere.write_bytes(Path(record.path).read_bytes())
    assert made_context(elsewhere.as_posix(), outputs.output_root) is None
    (outputs.output_root / "made-1" / "manifest.json").write_text("{broken")
    assert made_context(record.path, outputs.output_root) is None  # an unreadable manifest: the session's apply
