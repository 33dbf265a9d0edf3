"""A style-training job: a musician's folder of recordings -> a LoRA of the served model's family (MusicGen or
ACE-Step) in lora_dir with its card (issue #29).

`train_style(request, ...)`, in order: the name is checked (the schema's adapter-name pattern; not taken in
lora_dir, where nothing is ever overwritten), the checkpoint loaded for training by its family
(inference/loading.py:load_style_model: a StyleModel, inference/runtime/lora_training.py), the folder made into
clips at its rate and channels (bridge/audio/training_clips.py: the report of what was used and skipped), the
family's trainer built on them and run by the one shared loop (`train_clips`: progress per step with epoch, loss and
ETA; cancel and `between_steps` between steps; checkpoints), then `lora_dir/NAME/` written by the family: the
weights and `card.json` (`source_card` and `trained_card`: source files and their sha256, minutes of audio, steps,
final loss, base-model fingerprint, how captions condition it, options, date). The `lora` request setting then
takes NAME as it takes a downloaded adapter.
- MusicGen (inference/musicgen/training.py): peft on our decoder, clips encoded by its codec; our format
  (inference/musicgen/lora.py), applied at any weights, or merged at load by the daemon's `lora` setting.
- ACE-Step (inference/acestep/training.py): peft through diffusers on the DiT, clips as VAE latents; the captions
  are its tags and there are no lyrics ([Instrumental]); diffusers' format, which the ACE-Step engine's lora path
  loads (with its DiT linears at fp32). Clips default to 30 s (the window can be minutes).

Resume: the checkpoint lives in `lora_dir/.training/NAME/` (a hidden folder: not an adapter); a run with the same
name, folder and options continues from its last checkpoint; the folder goes once the adapter is written.

`plan_style(...)` (`continuo train-style --plan`): the same preparation, then a short measured run (one warm-up
step and `PLAN_STEPS` timed ones on the first batch) for steps/s and peak memory, and the estimate for the whole
run. On a CPU with a real-size model (inference/runtime/lora_training.py:GPU_JOB_PARAMETERS) it says plainly that
this is a GPU job, and measures one `EXCERPT_S` clip instead of a batch of 30 s ones (scaled by frames: a full
batch's memory on a shared laptop is what it must not risk); the command adds where else it can run, from the
settings (bridge/tools/train_style.py:where_to_train). The peak memory is the process's (CUDA's allocator peak on a
GPU).

Where it runs: `continuo train-style` sends it to the running daemon (bridge/clients/training.py), or runs it in its
own process with --local or when no daemon answers (bridge/tools/train_style.py); `/continuo/train_style` (OSC, and
HTTP's POST /api/jobs) queues it in the daemon (`submit_style`): a job at batch priority, journalled, whose worker
runs `run_style_job` in a render's place. Renders keep priority: before each step the job waits while any render
runs or waits (`renders_busy`); a step that has started finishes first (on a real model on a CPU, seconds to
minutes), and its torch work runs on the engine's compute thread between the renders' decode steps. Each step sends
/continuo/progress (stage training) and /continuo/training (epoch, step, loss, ETA); cancel stops it between steps;
a new job (new id) with the same name, folder and options resumes from the checkpoint. The model trained is the one
served when the job was admitted (its folder in the job's params), loaded again at fp32 for the job: a second copy
of the model in memory while it runs (musicgen-small: about 2.5 GB more, docs/benchmarks.md "Style training").  The
job runs on the pool's training worker (bridge/jobs/pool.py), never on a render's, so a render sent during training
is taken at once and runs at the next step's end, on any engine (also one that renders one job at a time).
On a `--cluster` gateway the job trains on a replica instead (`train_on_replica`: the clips prepared here, the
steps on the replica's device, the checkpoints and the adapter written here; bridge/cluster/replica.py says how it
shares the replicas with renders).
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from bridge.audio.training_clips import PreparedClips, prepare_clips
from bridge.errors import BadRequest, NotFound
from bridge.jobs.job_ids import conflict
from bridge.jobs.plan import under_input_roots
from bridge.jobs.queue import Job, Priority
from bridge.protocol.destinations import Destination
from inference.adapters import ADAPTER_NAME, find_adapters
from inference.errors import Cancelled

if TYPE_CHECKING:
    import numpy as np

    from inference.api import ModelInfo

log = logging.getLogger("continuo.training")

STYLE_OP = "train_style"  # the schema's op (osc_schema/continuo.json: /continuo/train_style)
REQUESTED = ("folder", "name", "text", "epochs", "learning_rate")  # what makes two train_style requests the same one
RENDER_POLL_S = 0.2  # how often a waiting training step looks whether the renders are done
TRAINING_DIR = ".training"  # lora_dir/.training/NAME/: a run's checkpoint until its adapter is written
PLAN_STEPS = 2  # timed steps of the plan's measured run (after one warm-up step)
EXCERPT_S = 5.0  # a GPU job's plan on a CPU measures one clip of this length, not a whole batch
DEFAULT_TEXT = ""
REPLICA_CLIP_S = 30.0  # a job on a cluster replica: clips at most this long unless the request says (train_on_replica)


@dataclass(frozen=True)
class StyleRequest:
    folder: Path
    name: str
    text: str = DEFAULT_TEXT  # the musician's words for their sound; tempo and key heard are added per file
    clip_s: float = 0.0  # 0: the model's window (30 s for MusicGen)
    rank: int = 8
    epochs: int = 4
    batch_size: int = 2
    learning_rate: float = 1e-4
    seed: int = 0
    checkpoint_every: int = 50
    base_weights: str = "auto"  # the frozen base: QLoRA's nf4 on CUDA with bitsandbytes, else fp32 (lora_training.py)

    def options(self, model):
        """The options model's family trains with (inference/runtime/lora_training.py:StyleModel.options)."""
        return model.options(rank=self.rank, alpha=2.0 * self.rank, learning_rate=self.learning_rate,
                             epochs=self.epochs, batch_size=self.batch_size, seed=self.seed,
                             checkpoint_every=self.checkpoint_every)


@dataclass
class StylePlan:
    """The estimate of `continuo train-style --plan`, from a short measured run on this machine."""

    minutes: float
    clips: int
    steps: int
    steps_per_s: float
    peak_memory_gb: float
    device: str
    parameters: int
    gpu_job: bool
    report: str
    extrapolated: bool = False  # measured on one EXCERPT_S clip, scaled to a full batch's frames
    base_weights: str = "fp32"  # how the frozen base ran (inference/runtime/lora_training.py:BaseWeights)
    elsewhere: tuple[str, ...] = ()  # a GPU job's places to run instead (bridge/tools/train_style.py:where_to_train)

    @property
    def estimated_s(self) -> float:
        return self.steps / self.steps_per_s if self.steps_per_s > 0 else math.inf

    def describe(self) -> str:
        lines = [self.report, "",
                 f"plan: {self.minutes:.1f} min of audio in {self.clips} clips, {self.steps} steps; measured here "
                 f"({self.device}, {self.base_weights} base"
                 f"{', one 5 s clip scaled to a batch' if self.extrapolated else ''}): "
                 f"{self.steps_per_s:.3g} steps/s, peak memory {self.peak_memory_gb:.2f} GB; "
                 f"estimated {format_duration(self.estimated_s)}"]
        if self.gpu_job:
            lines.append(f"This is a GPU job: a {self.parameters / 1e6:.0f}M-weight model trains at "
                         f"{self.steps_per_s:.3g} steps/s on this CPU ({format_duration(self.estimated_s)} for this "
                         "folder). On a CUDA GPU it trains on a 4-bit base by default (QLoRA, with bitsandbytes; the "
                         "design plans an hour or two for 10 minutes of audio on one 8 GB GPU).")
            if self.elsewhere:
                lines += ["Where it can run instead:", *(f"- {line}" for line in self.elsewhere)]
        return "\n".join(lines)


def check_name(lora_dir: Path, name: str) -> Path:
    """lora_dir/name for a new adapter; BadRequest when the name is not a valid adapter name or is taken."""
    if not ADAPTER_NAME.fullmatch(name):
        raise BadRequest(f"adapter name {name!r} must be 1-64 letters, digits, '.', '_' or '-', starting with a "
                         "letter or digit (e.g. my-band)")
    taken = find_adapters(lora_dir).get(name)
    target = Path(lora_dir) / name
    if taken is not None or target.exists() or (Path(lora_dir) / f"{name}.safetensors").exists():
        raise BadRequest(f"an adapter named {name!r} already exists in {lora_dir} ({taken or target}); choose "
                         "another --name, or move that one away first (it is never overwritten)")
    return target


def prepare(request: StyleRequest, model) -> PreparedClips:
    clip_s = request.clip_s or model.window_s
    return prepare_clips(request.folder, sample_rate=model.sample_rate, channels=model.channels, clip_s=clip_s,
                         text=request.text)


def clip_pairs(prepared: PreparedClips, count: int | None = None) -> list[tuple]:
    """[(audio, caption)] of the prepared clips (the first count), as a family's trainer takes them."""
    clips = prepared.clips if count is None else prepared.clips[:count]
    return [(clip.audio, clip.caption) for clip in clips]


def train_style(request: StyleRequest, *, model_dir: Path, lora_dir: Path, device: str = "cpu",
                on_report: Callable[[str], None] | None = None, on_progress: Callable | None = None,
                should_cancel: Callable[[], bool] | None = None, between_steps: Callable[[], None] | None = None,
                call: Callable | None = None) -> Path:
    """Train and write lora_dir/NAME (module docstring); the adapter's directory. call(function): where the torch
    work runs (the daemon's compute thread: the load, the encoding, each step); None: here."""
    from inference.loading import load_style_model

    call = call or (lambda function: function())
    lora_dir = Path(lora_dir).expanduser()
    target = check_name(lora_dir, request.name)
    model = call(lambda: load_style_model(model_dir, device=device, base_weights=request.base_weights))
    prepared = prepare(request, model)
    if on_report is not None:
        on_report(prepared.report() + f"\n  conditioning: {model.conditioning}\n  base weights: "
                  f"{model.base_weights.describe()}")
    work_dir = lora_dir / TRAINING_DIR / request.name
    result = train_clips(request, model, clip_pairs(prepared), source_card(request, prepared), model_dir=model_dir,
                         work_dir=work_dir, target=target, on_report=on_report, on_progress=on_progress,
                         should_cancel=should_cancel, between_steps=between_steps, call=call)
    shutil.rmtree(work_dir, ignore_errors=True)
    log.info("style %s trained (%s): %d steps, final loss %.4f, %.1f min of audio -> %s", request.name, model.family,
             result.steps, result.final_loss, prepared.minutes, target)
    return target


def train_clips(request: StyleRequest, model, pairs: list[tuple], card: dict, *, model_dir: Path, work_dir: Path,
                target: Path, on_report: Callable[[str], None] | None = None, on_progress: Callable | None = None,
                should_cancel: Callable[[], bool] | None = None, between_steps: Callable[[], None] | None = None,
                call: Callable | None = None, on_checkpoint: Callable | None = None):
    """The training itself, in this process or on a cluster replica (bridge/cluster/replica.py): model's trainer on
    pairs [(audio, caption)], resumed from work_dir's checkpoint, run by the shared loop, the adapter and its card
    (card: `source_card`'s fields, completed here) written to target; the TrainingResult."""
    call = call or (lambda function: function())
    options = request.options(model)
    trainer = call(lambda: model.make_trainer(pairs, options, work_dir))
    resumed = trainer.resume()
    if resumed and on_report is not None:
        on_report(f"resuming from the checkpoint of step {resumed} in {work_dir}")
    result = trainer.run(on_step=on_progress, should_cancel=should_cancel, between_steps=between_steps, call=call,
                         on_checkpoint=on_checkpoint)
    model.write(target, result, {**card, **trained_card(result, model=model, model_dir=model_dir, options=options)})
    return result


def source_card(request: StyleRequest, prepared: PreparedClips) -> dict:
    """The card's fields from the request and the folder: what the adapter was made from (for the musician)."""
    return {
        "name": request.name, "text": request.text,
        "source_files": [{"name": f.name, "sha256": f.sha256, "used_s": round(f.used_s, 3), "skipped": f.skipped}
                         for f in prepared.files],
        "minutes_of_audio": round(prepared.minutes, 3), "clips": len(prepared.clips), "clip_s": prepared.clip_s,
    }


def trained_card(result, *, model, model_dir: Path, options) -> dict:
    """The card's fields from the training: the base model and how it was trained (for whoever loads it later)."""
    return {
        "family": model.family, "format": model.format, "conditioning": model.conditioning,
        "base_model": str(model_dir), "base_fingerprint": model.fingerprint, "base_weights": model.base_weights.mode,
        "steps": result.steps, "final_loss": round(result.final_loss, 5), "options": dataclasses.asdict(options),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def plan_style(request: StyleRequest, *, model_dir: Path, device: str = "cpu") -> StylePlan:
    """The estimate from a short measured run (module docstring); nothing is written."""
    import tempfile

    from inference.loading import load_style_model
    from inference.runtime.lora_training import GPU_JOB_PARAMETERS, peak_memory_bytes

    model = load_style_model(model_dir, device=device, base_weights=request.base_weights)
    prepared = prepare(request, model)
    options = request.options(model)
    clips = clip_pairs(prepared, count=options.batch_size)
    gpu_job = model.device.type == "cpu" and model.parameters > GPU_JOB_PARAMETERS
    scale = 1.0  # measured step time -> a full step's
    if gpu_job:  # one clip of EXCERPT_S measured, scaled by the audio a full batch holds (the linears dominate)
        samples = max(1, round(EXCERPT_S * model.sample_rate))
        full = min(audio.shape[-1] for audio, _ in clips) * options.batch_size
        clips = [(clips[0][0][:, :samples], clips[0][1])]
        scale = full / clips[0][0].shape[-1]
    with tempfile.TemporaryDirectory() as work:
        measured = dataclasses.replace(options, epochs=1, batch_size=len(clips), checkpoint_every=10**9)
        trainer = model.make_trainer(clips, measured, Path(work))
        trainer.train_step()  # warm-up: allocations, kernels
        started = time.perf_counter()
        for _ in range(PLAN_STEPS):
            trainer.step_index = 0  # the same batch again: one epoch of these clips is one step
            trainer.train_step()
        steps_per_s = PLAN_STEPS / (time.perf_counter() - started) / scale
    steps = options.epochs * math.ceil(len(prepared.clips) / options.batch_size)
    return StylePlan(minutes=prepared.minutes, clips=len(prepared.clips), steps=steps, steps_per_s=steps_per_s,
                     peak_memory_gb=peak_memory_bytes(model.device) / 2**30, device=str(model.device),
                     parameters=model.parameters, gpu_job=gpu_job, report=prepared.report(),
                     extrapolated=scale != 1.0, base_weights=model.base_weights.mode)


# ---- in the daemon's queue ----------------------------------------------------------------------------------------

def submit_style(intake, job_id: str, args: dict, *, reply_to: Destination, client_key: Destination, settings,
                 model_spec: str, device: str, on_replica: bool = False) -> Job | None:
    """/continuo/train_style: journalled, queued at batch priority and announced; None for a resend of a known id
    (reported as any job is), IdConflict for another request under that id; BadRequest / NotFound before anything
    is queued (module docstring). on_replica: a `--cluster` gateway's job, whose replica resolves the model on its
    node (the gateway may not hold the checkpoint at all: no model_dir is looked up here)."""
    requested = {key: args[key] for key in REQUESTED}
    existing = intake.find(job_id)
    if existing is not None:
        if existing.op != STYLE_OP or {key: existing.params.get(key) for key in REQUESTED} != requested:
            raise conflict(existing)
        intake.report(existing, reply_to)
        return None
    folder = resolve_folder(str(args["folder"]), intake.input_roots)
    lora_dir = settings.resolved_lora_dir
    check_name(lora_dir, str(args["name"]))
    busy = [job.job_id for job in [*intake.queue.waiting(), *intake.pool.running_jobs()]
            if job.op == STYLE_OP and job.params.get("name") == args["name"]]
    if busy:
        raise BadRequest(f"job {busy[0]} already trains an adapter named {args['name']!r}; wait for it or cancel it")
    from inference.loading import resolve_model

    model_dir = "" if on_replica else str(resolve_model(model_spec, tiny_dir=settings.smoke_model_dir.expanduser(),
                                                        allow_tiny_fallback=settings.allow_smoke_model).path)
    params = {**requested, "resolved_folder": str(folder), "lora_dir": str(lora_dir), "model_dir": model_dir,
              "device": device, "on_replica": on_replica, "retries": 0, "priority": Priority.BATCH.value}
    job = Job(job_id=job_id, op=STYLE_OP, params=params, reply_to=reply_to, client_key=client_key,
              priority=Priority.BATCH)
    intake.journal.insert_job(job.job_id, job.op, job.params, job.reply_to)
    position = intake.queue.put(job)
    intake.events.queued(job.reply_to, job.job_id, position, -1.0)
    log.info("job=%s queued op=%s name=%s folder=%s position=%d priority=batch", job_id, STYLE_OP, args["name"],
             folder, position)
    return job


def resolve_folder(raw: str, input_roots) -> Path:
    """The recordings' folder, symlinks resolved: under one of the input roots, and a folder."""
    resolved = under_input_roots(raw, input_roots, "folder", "move the recordings")
    if not resolved.is_dir():
        raise NotFound(f"no such folder of recordings: {raw}")
    return resolved


def run_style_job(job: Job, *, events, call: Callable, stopped: Callable[[], bool],
                  renders_busy: Callable[[], bool], engine=None) -> Path:
    """A queued train_style job, in a worker's place: training that waits for the renders between its steps; on a
    cluster replica where the job was queued on a `--cluster` gateway (params on_replica: `train_on_replica`, with the
    worker's engine, the gateway's ClusterEngine, as its ReplicaTrainer)."""
    params = job.params
    request = StyleRequest(folder=Path(params["resolved_folder"]), name=str(params["name"]), text=str(params["text"]),
                           epochs=int(params["epochs"]), learning_rate=float(params["learning_rate"]))

    def between_steps() -> None:
        while renders_busy() and not stopped():
            time.sleep(RENDER_POLL_S)

    def on_progress(progress) -> None:
        events.progress(job.reply_to, job.job_id, progress.step / progress.steps, "training")
        events.emit(job.reply_to, "/continuo/training", job.job_id, progress.epoch, progress.epochs, progress.step,
                    progress.steps, float(progress.loss), float(progress.eta_s))
        log.info("job=%s training epoch %d/%d step %d/%d loss %.4f eta_s %.0f", job.job_id, progress.epoch,
                 progress.epochs, progress.step, progress.steps, progress.loss, progress.eta_s)

    def on_report(text: str) -> None:
        for line in text.splitlines():
            log.info("job=%s %s", job.job_id, line.strip())

    if params.get("on_replica"):
        return train_on_replica(request, engine, lora_dir=Path(params["lora_dir"]), on_report=on_report,
                                on_progress=on_progress, should_cancel=stopped)
    return train_style(request, model_dir=Path(params["model_dir"]), lora_dir=Path(params["lora_dir"]),
                       device=str(params["device"]), on_report=on_report, on_progress=on_progress,
                       should_cancel=stopped, between_steps=between_steps, call=call)


# ---- on a cluster replica -----------------------------------------------------------------------------------------

class ReplicaTrainer(Protocol):
    """What a `--cluster` gateway's engine (bridge/cluster/proxy.py:ClusterEngine) offers beside inference/api.py's
    Engine: a style training run on one of its replicas. Not an Engine member: training on a replica is the
    gateway's, and a job reaches it only when the daemon queued it on a gateway (params on_replica), never by
    probing an engine."""

    info: ModelInfo
    concurrent_jobs: int

    def train_style(self, request: StyleRequest, clips: list[tuple[np.ndarray, str]], card: dict,
                    checkpoint: bytes | None, *, on_progress: Callable, on_checkpoint: Callable[[int, bytes], None],
                    on_report: Callable[[str], None], should_cancel: Callable[[], bool] | None) -> dict[str, bytes]: ...


def train_on_replica(request: StyleRequest, trainer: ReplicaTrainer, *, lora_dir: Path,
                     on_report: Callable[[str], None], on_progress: Callable,
                     should_cancel: Callable[[], bool]) -> Path:
    """The job on a `--cluster` gateway: clips prepared here, trained on a replica, the adapter written here.

    trainer.train_style (bridge/cluster/proxy.py:ClusterEngine) runs `train_clips` on a replica's device and hands
    back the adapter's files and its progress. The clips are cut at the served model's rate and channels
    (trainer.info), `REPLICA_CLIP_S` long unless the request says (both families' default: MusicGen's window,
    ACE-Step's DEFAULT_CLIP_S); the replica checks they fit the model it loads. Checkpoints live here, in
    lora_dir/.training/NAME/ as for a local job: the replica sends each one as it writes it, and the next run with
    the same name, folder and options sends it back to resume from (on whichever replica takes it). So a replica
    lost mid-training costs the steps since the last checkpoint: the worker queues the job again once
    (bridge/jobs/worker.py:Worker.requeue_lost) and it resumes; a second loss fails it, and a new job with the same
    name, folder and options resumes from that checkpoint too. Cancel cancels the replica's request (it stops
    between steps) and keeps the checkpoint. The training holds its replica to the end: with one replica, renders
    wait for it (said in the job's log; bridge/cluster/replica.py). The adapter is written as a local job writes
    it: never over a name taken meanwhile (checked again, then one rename).
    """
    from inference.runtime.lora_training import CHECKPOINT_NAME, cancelled_message, checkpoint_step

    lora_dir = Path(lora_dir).expanduser()
    check_name(lora_dir, request.name)
    info = trainer.info
    prepared = prepare_clips(request.folder, sample_rate=info.sample_rate, channels=info.channels,
                             clip_s=request.clip_s or min(info.max_duration_s, REPLICA_CLIP_S), text=request.text)
    on_report(prepared.report())
    if trainer.concurrent_jobs == 1:
        on_report("the cluster has one replica: renders sent while this trains wait until it ends or is cancelled "
                  "(two or more replicas render beside it)")
    work_dir = lora_dir / TRAINING_DIR / request.name
    checkpoint = work_dir / CHECKPOINT_NAME
    saved = {"step": 0, "done": 0, "steps": 0}

    def on_checkpoint(step: int, data: bytes) -> None:
        work_dir.mkdir(parents=True, exist_ok=True)
        partial = checkpoint.with_name(f".{CHECKPOINT_NAME}.partial")
        partial.write_bytes(data)
        partial.replace(checkpoint)
        saved["step"] = step

    def on_step(progress) -> None:
        saved.update(done=progress.step, steps=progress.steps)
        on_progress(progress)

    if checkpoint.is_file():
        on_report(f"the checkpoint of step {checkpoint_step(checkpoint)} in {work_dir} goes to the replica to resume "
                  "from")
    try:
        files = trainer.train_style(request, clip_pairs(prepared), source_card(request, prepared),
                                   checkpoint.read_bytes() if checkpoint.is_file() else None,
                                   on_progress=on_step, on_checkpoint=on_checkpoint, on_report=on_report,
                                   should_cancel=should_cancel)
    except Cancelled:
        raise Cancelled(cancelled_message(saved["done"], saved["steps"], saved["step"] or checkpoint_step(checkpoint),
                                          request.checkpoint_every)) from None
    target = write_adapter_files(lora_dir, request.name, files)
    shutil.rmtree(work_dir, ignore_errors=True)
    log.info("style %s trained on a replica: %.1f min of audio -> %s", request.name, prepared.minutes, target)
    return target


def write_adapter_files(lora_dir: Path, name: str, files: dict[str, bytes]) -> Path:
    """lora_dir/NAME from the files a replica sent ({file name: bytes}): written into a hidden folder, then renamed
    into place; BadRequest when NAME was taken meanwhile (nothing is overwritten), ValueError for a file name with
    a folder in it."""
    target = check_name(lora_dir, name)
    partial = Path(lora_dir) / TRAINING_DIR / f".{name}.adapter.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for file_name, data in files.items():
        if Path(file_name).name != file_name or file_name in ("", ".", ".."):
            raise ValueError(f"a replica sent an adapter file named {file_name!r}: not a plain file name")
        (partial / file_name).write_bytes(data)
    check_name(lora_dir, name)
    partial.rename(target)
    return target


def format_duration(seconds: float) -> str:
    """'42 s', '12 min', '3.5 h'; 'unknown' for an infinite or negative (unknown: -1 on the wire) time."""
    if not math.isfinite(seconds) or seconds < 0:
        return "unknown"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
