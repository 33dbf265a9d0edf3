"""A train_style job on a cluster replica, piece by piece, without Ray's cluster: ClusterEngine.train_style against
a fake deployment handle (what the replica streams becomes progress, checkpoints and the adapter's files; cancel,
errors and a lost replica as for a take), and the gateway's side (bridge/jobs/style_training.py:train_on_replica:
the clips prepared here, the checkpoint kept here and sent back to resume, the adapter written into lora_dir, never
over a name taken meanwhile). The real thing on Ray: tests/e2e/test_cluster.py."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from bridge.cluster.proxy import RemoteEngineError
from bridge.errors import BadRequest, ReplicaLost
from bridge.jobs.style_training import TRAINING_DIR, StyleRequest, train_on_replica, write_adapter_files
from inference.adapters import find_adapters
from inference.errors import Cancelled
from inference.runtime.lora_training import CHECKPOINT_NAME
from tests.bridge.cluster.test_proxy import BLOCK, INFO, STARTED, FakeResponse, engine

CLIPS = [(np.zeros((1, 320), np.float32), "soft chords")]
CARD = {"name": "band", "clips": 1}
FILES = {"pytorch_lora_weights.safetensors": b"weights", "card.json": b'{"name": "band"}'}


def progress(step: int, steps: int = 4) -> tuple:
    return ("training", {"step": step, "steps": steps, "epoch": 1, "epochs": 1, "loss": 1.0 / step,
                         "eta_s": float(steps - step)})


def train(proxy, checkpoint: bytes | None = None, should_cancel=None) -> tuple[dict, dict]:
    seen: dict[str, list] = {"progress": [], "checkpoints": [], "reports": []}
    files = proxy.train_style(StyleRequest(folder=Path("/x"), name="band"), CLIPS, CARD, checkpoint,
                              on_progress=seen["progress"].append,
                              on_checkpoint=lambda step, data: seen["checkpoints"].append((step, data)),
                              on_report=seen["reports"].append, should_cancel=should_cancel)
    return files, seen


def test_progress_checkpoints_and_the_adapter_come_back_through_the_stream():
    response = FakeResponse([STARTED, ("report", "training on replica r1"), progress(1), ("checkpoint", 2, b"ck2"),
                             progress(2), ("done", FILES, 3.0)])
    proxy, handle = engine(response)
    files, seen = train(proxy, checkpoint=b"ck0")
    assert files == FILES and seen["reports"] == ["training on replica r1"]
    assert [(p.step, p.steps, p.loss) for p in seen["progress"]] == [(1, 4, 1.0), (2, 4, 0.5)]
    assert seen["checkpoints"] == [(2, b"ck2")]
    model_id, request, clips, card, checkpoint = handle.calls[0]
    assert (model_id, request.name, clips, card, checkpoint) == ("tiny-model", "band", CLIPS, CARD, b"ck0")
    assert handle.options_seen == [{"stream": True, "multiplexed_model_id": "tiny-model"}]


def test_the_clips_go_through_the_shared_folder_where_there_is_one(tmp_path):
    from bridge.cluster.replica import read_clips

    sent = {}

    class Reading(FakeResponse):
        def __iter__(self):
            sent["clips"] = read_clips(handle.calls[0][2])  # the replica reads them while the request runs
            yield from super().__iter__()

    proxy, handle = engine(Reading([STARTED, ("done", FILES, 1.0)]))
    proxy.shared_dir = tmp_path
    train(proxy)
    (audio, caption), = sent["clips"]
    assert caption == "soft chords" and np.array_equal(audio, CLIPS[0][0])
    assert list(tmp_path.iterdir()) == []  # deleted once the training ended


def test_errors_keep_their_codes_and_a_cancel_cancels_the_request():
    proxy, _ = engine(FakeResponse([STARTED, ("error", "model_error", "the checkpoint was made from other clips")]),
                      FakeResponse([STARTED, ("error", "cancelled", "style training cancelled")]))
    with pytest.raises(RemoteEngineError, match="other clips") as raised:
        train(proxy)
    assert raised.value.code == "model_error"
    with pytest.raises(Cancelled):
        train(proxy)
    response = FakeResponse([STARTED, progress(1), BLOCK])
    proxy, _ = engine(response)
    cancel_at = time.monotonic() + 0.2
    with pytest.raises(Cancelled):
        train(proxy, should_cancel=lambda: time.monotonic() > cancel_at)
    assert response.cancelled.is_set()


def test_a_replica_lost_mid_training_is_replica_lost_and_one_lost_before_is_routed_around():
    exceptions = pytest.importorskip("ray.exceptions", reason="Ray is not installed: pip install 'continuo[cluster]'")
    death = exceptions.ActorDiedError()
    proxy, handle = engine(FakeResponse([STARTED, progress(1), death]))
    with pytest.raises(ReplicaLost, match="died mid-training"):
        train(proxy)
    assert len(handle.calls) == 1  # the worker re-queues the job; it resumes from the gateway's checkpoint
    proxy, handle = engine(FakeResponse([death]), FakeResponse([STARTED, ("done", FILES, 1.0)]))
    assert train(proxy)[0] == FILES and len(handle.calls) == 2


class FakeTrainer:
    """A cluster engine whose train_style plays a replica: it records what it was sent and answers with script."""

    info = INFO

    def __init__(self, script, replicas: int = 2) -> None:
        self.script = script
        self.concurrent_jobs = replicas
        self.sent: list[tuple] = []

    def train_style(self, request, clips, card, checkpoint, *, on_progress, on_checkpoint, on_report, should_cancel):
        self.sent.append((request, clips, card, checkpoint))
        return self.script(on_progress=on_progress, on_checkpoint=on_checkpoint)


def on_replica(recordings, lora_dir: Path, trainer: FakeTrainer, reports: list | None = None) -> Path:
    return train_on_replica(StyleRequest(folder=recordings, name="band", text="soft chords", clip_s=4.0,
                                         checkpoint_every=2), trainer, lora_dir=lora_dir,
                            on_report=(reports if reports is not None else []).append,
                            on_progress=lambda progress: None, should_cancel=lambda: False)


def checkpoint_bytes(step: int) -> bytes:
    """A checkpoint's bytes as the replica sends them (the gateway reads only its step)."""
    import io

    buffer = io.BytesIO()
    torch.save({"step": step}, buffer)
    return buffer.getvalue()


def steps(on_progress, on_checkpoint, upto: int, total: int = 4) -> None:
    from inference.runtime.lora_training import TrainingProgress

    for step in range(1, upto + 1):
        if step % 2 == 0:
            on_checkpoint(step, checkpoint_bytes(step))
        on_progress(TrainingProgress(step=step, steps=total, epoch=1, epochs=1, loss=1.0, eta_s=0.0))


def test_the_gateway_prepares_the_clips_keeps_the_checkpoints_and_writes_the_adapter(chord_recordings, tmp_path):
    checkpoint = tmp_path / "loras" / TRAINING_DIR / "band" / CHECKPOINT_NAME

    def cancelled_after_three(on_progress, on_checkpoint):
        steps(on_progress, on_checkpoint, 3)
        assert checkpoint.read_bytes() == checkpoint_bytes(2)  # kept on the gateway as it comes
        raise Cancelled("cancelled on the gateway")

    first = FakeTrainer(cancelled_after_three)
    reports: list[str] = []
    with pytest.raises(Cancelled, match=r"cancelled after 3 of 4 steps; the checkpoint of step 2 is kept: run it "
                                        "again to resume"):
        on_replica(chord_recordings, tmp_path / "loras", first, reports)
    assert "16 clips" in reports[0] and not any("one replica" in line for line in reports)  # control: two replicas
    request, clips, card, sent_checkpoint = first.sent[0]
    assert len(clips) == 16 and clips[0][0].shape == (1, 4 * 32000) and "soft chords" in clips[0][1]
    assert card["clips"] == 16 and card["source_files"][1]["name"] == "take 0.wav" and sent_checkpoint is None
    assert find_adapters(tmp_path / "loras") == {}

    def finishes(on_progress, on_checkpoint):
        steps(on_progress, on_checkpoint, 4)
        return FILES

    second, reports = FakeTrainer(finishes, replicas=1), []
    target = on_replica(chord_recordings, tmp_path / "loras", second, reports)
    assert "one replica: renders sent while this trains wait" in reports[1]
    assert reports[2].startswith("the checkpoint of step 2 in ") and "goes to the replica" in reports[2]
    assert second.sent[0][3] == checkpoint_bytes(2)  # the next run resumes from the gateway's checkpoint
    assert find_adapters(tmp_path / "loras") == {"band": target}
    assert {p.name: p.read_bytes() for p in target.iterdir()} == FILES
    assert not checkpoint.parent.exists()  # the checkpoint goes once the adapter is written


def test_a_name_taken_while_it_trained_is_refused_and_left_alone(chord_recordings, tmp_path):
    lora_dir = tmp_path / "loras"

    def someone_takes_the_name(on_progress, on_checkpoint):
        lora_dir.mkdir(exist_ok=True)
        (lora_dir / "band.safetensors").write_bytes(b"someone's")
        return FILES

    with pytest.raises(BadRequest, match="already exists"):
        on_replica(chord_recordings, lora_dir, FakeTrainer(someone_takes_the_name))
    assert (lora_dir / "band.safetensors").read_bytes() == b"someone's" and not (lora_dir / "band").exists()
    with pytest.raises(ValueError, match="not a plain file name"):
        write_adapter_files(lora_dir, "other", {"../escape": b"x"})
    assert not (tmp_path / "escape").exists() and not (lora_dir / "other").exists()


def test_the_replica_refuses_clips_that_do_not_fit_its_model():
    from types import SimpleNamespace

    from bridge.cluster.replica import check_clips
    from inference.errors import InferenceError

    model = SimpleNamespace(channels=1, sample_rate=32000, window_s=4.0)
    check_clips([(np.zeros((1, 4 * 32000), np.float32), "x")], model)
    with pytest.raises(InferenceError, match="must serve the same model"):
        check_clips([(np.zeros((2, 32000), np.float32), "x")], model)
    with pytest.raises(InferenceError, match="at most 4 s"):
        check_clips([(np.zeros((1, 5 * 32000), np.float32), "x")], model)


@pytest.mark.slow
def test_a_replica_resumes_from_the_gateways_checkpoint_to_the_same_adapter(chord_recordings, tiny_model_dir,
                                                                           tmp_path):
    """EngineReplica.run_training in process (no Serve) on the tiny model: cancelled after step 2, it has sent the
    step-2 checkpoint; sent back to a fresh run it resumes there and ends on the adapter of a run that never
    stopped; a checkpoint of other options is refused with its code."""
    import threading

    from safetensors.torch import load as load_tensors

    pytest.importorskip("ray.serve", reason="Ray Serve is not installed: pip install 'continuo[cluster]'")
    from bridge.cluster.replica import EngineReplica
    from bridge.jobs.style_training import clip_pairs, prepare, source_card
    from tests.daemons import daemon_settings

    class Replica:  # the deployment's methods on a plain object: what Serve would call on its actor
        replica_id = "r-test"
        settings = daemon_settings(tiny_model_dir, tmp_path)
        run_training = EngineReplica.run_training
        reported = EngineReplica.reported

    request = StyleRequest(folder=chord_recordings, name="band", text="soft chords", clip_s=4.0, epochs=1,
                           batch_size=4, learning_rate=1e-2, checkpoint_every=2)
    shape = type("Shape", (), {"sample_rate": 32000, "channels": 1, "window_s": 30.0})
    prepared = prepare(request, shape)
    clips, card = clip_pairs(prepared), source_card(request, prepared)

    def run(checkpoint: bytes | None, stop_after: int = 0, run_request: StyleRequest = request) -> list[tuple]:
        items, cancel = [], threading.Event()

        def put(item: tuple) -> None:
            items.append(item)
            if stop_after and item[0] == "training" and item[1]["step"] == stop_after:
                cancel.set()  # what the gateway's cancel does to the replica's flag

        Replica().run_training(str(tiny_model_dir), run_request, clips, card, checkpoint, put, cancel)
        return items

    def weights(items: list[tuple]) -> dict:
        assert items[-1][0] == "done", items[-1]
        return load_tensors(items[-1][1]["pytorch_lora_weights.safetensors"])

    stopped = run(None, stop_after=2)
    assert stopped[-1][:2] == ("error", "cancelled"), stopped[-1]
    (step, data), = [item[1:] for item in stopped if item[0] == "checkpoint"]
    assert step == 2
    resumed = run(data)
    assert any(item[0] == "report" and "resuming from the checkpoint of step 2" in item[1] for item in resumed)
    assert [item[1]["step"] for item in resumed if item[0] == "training"] == [3, 4]
    whole, again = weights(run(None)), weights(resumed)
    assert whole.keys() == again.keys() and all(torch.equal(whole[name], again[name]) for name in whole)  # bit for bit
    other = run(data, run_request=dataclasses.replace(request, learning_rate=5e-3))
    assert other[-1][:2] == ("error", "model_error") and "other recordings or options" in other[-1][2], other[-1]


def test_a_cluster_gateway_queues_training_without_the_checkpoint_here(chord_recordings, tmp_path):
    """The replica resolves the model on its node: a gateway that does not hold it still queues the job (control:
    the same request in process needs the model here)."""
    from types import SimpleNamespace

    from bridge.jobs.style_training import submit_style
    from inference.errors import InferenceError
    from tests.daemons import daemon_settings

    queued = []
    intake = SimpleNamespace(find=lambda job_id: None, input_roots=[chord_recordings.parent],
                             queue=SimpleNamespace(waiting=list, put=lambda job: queued.append(job) or 1),
                             pool=SimpleNamespace(running_jobs=list),
                             journal=SimpleNamespace(insert_job=lambda *args: None),
                             events=SimpleNamespace(queued=lambda *args: None))
    settings = daemon_settings(tmp_path / "no-such-model", tmp_path, lora_dir=tmp_path / "loras",
                               allow_smoke_model="false")
    args = {"folder": str(chord_recordings), "name": "band", "text": "", "epochs": 1, "learning_rate": 1e-3}
    submit = dict(reply_to=("127.0.0.1", 1), client_key=("127.0.0.1", 1), settings=settings,
                  model_spec=str(tmp_path / "not-on-this-gateway"), device="ray:cuda")
    job = submit_style(intake, "train-1", args, on_replica=True, **submit)
    assert queued == [job] and job.params["model_dir"] == "" and job.params["resolved_folder"] == str(
        chord_recordings)
    with pytest.raises(InferenceError, match="not-on-this-gateway"):
        submit_style(intake, "train-2", args, **submit)
