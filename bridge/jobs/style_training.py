"""A style-training job: a musician's folder of recordings -> a MusicGen LoRA in lora_dir with its card (issue #29).

`train_style(request, ...)`, in order: the name is checked (the schema's adapter-name pattern; not taken in
lora_dir, where nothing is ever overwritten), the folder made into clips (bridge/audio/training_clips.py: the
report of what was used and skipped), the checkpoint's fp32 training copy loaded and the clips encoded by its
codec, the LoRA trained (inference/musicgen/training.py: progress per step with epoch, loss and ETA; cancel and
`between_steps` between steps), then `lora_dir/NAME/` written: `pytorch_lora_weights.safetensors` (our MusicGen
format, inference/musicgen/lora.py) and `card.json` (`build_card`: source files and their sha256, minutes of
audio, steps, final loss, base-model fingerprint, date). The `lora` request setting then takes NAME as it takes a
downloaded adapter, on an engine whose weights are the checkpoint's (fp32 / bf16 / fp16), or merged at load.

Resume: the checkpoint lives in `lora_dir/.training/NAME/` (a hidden folder: not an adapter); a run with the same
name, folder and options continues from its last checkpoint; the folder goes once the adapter is written.

`plan_style(...)` (`continuo train-style --plan`): the same preparation, then a short measured run (one warm-up
step and `PLAN_STEPS` timed ones on the first batch) for steps/s and peak memory, and the estimate for the whole
run. On a CPU with a real-size model (inference/musicgen/training.py:GPU_JOB_PARAMETERS) it says plainly that
this is a GPU job, and measures one `EXCERPT_S` clip instead of a batch of 30 s ones (scaled by frames: a full
batch's memory on a shared laptop is what it must not risk). The peak memory is the process's (CUDA's allocator
peak on a GPU).

Where it runs: `continuo train-style` runs it in its own process (this version). In the daemon's queue at batch
priority, yielding to renders between steps, it is not wired yet: `between_steps` is the hook for it.
ACE-Step style training is not built (refused with that message).
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

from bridge.audio.training_clips import PreparedClips, prepare_clips
from bridge.errors import BadRequest
from inference.adapters import ADAPTER_NAME, find_adapters
from inference.loading import family

log = logging.getLogger("continuo.training")

TRAINING_DIR = ".training"  # lora_dir/.training/NAME/: a run's checkpoint until its adapter is written
PLAN_STEPS = 2  # timed steps of the plan's measured run (after one warm-up step)
EXCERPT_S = 5.0  # a GPU job's plan on a CPU measures one clip of this length, not a whole batch
DEFAULT_TEXT = ""


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

    def options(self):
        from inference.musicgen.training import TrainingOptions

        return TrainingOptions(rank=self.rank, alpha=2.0 * self.rank, learning_rate=self.learning_rate,
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

    @property
    def estimated_s(self) -> float:
        return self.steps / self.steps_per_s if self.steps_per_s > 0 else math.inf

    def describe(self) -> str:
        lines = [self.report, "",
                 f"plan: {self.minutes:.1f} min of audio in {self.clips} clips, {self.steps} steps; measured here "
                 f"({self.device}{', one 5 s clip scaled to a batch' if self.extrapolated else ''}): "
                 f"{self.steps_per_s:.3g} steps/s, peak memory {self.peak_memory_gb:.2f} GB; "
                 f"estimated {format_duration(self.estimated_s)}"]
        if self.gpu_job:
            lines.append(f"This is a GPU job: a {self.parameters / 1e6:.0f}M-weight decoder trains at "
                         f"{self.steps_per_s:.3g} steps/s on this CPU ({format_duration(self.estimated_s)} for this "
                         "folder). Run it on a machine with a CUDA GPU (--device cuda; the design plans an hour or "
                         "two for 10 minutes of audio on one 8 GB GPU). Handing it to a cluster replica is not "
                         "built yet.")
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


def check_family(model_dir: Path) -> None:
    kind = family(model_dir)
    if kind != "musicgen":
        raise BadRequest(f"style training for {kind} models is not built yet; train with a MusicGen checkpoint "
                         "(--model facebook/musicgen-small or a local MusicGen folder)")


def prepare(request: StyleRequest, engine) -> PreparedClips:
    clip_s = request.clip_s or engine.info.max_duration_s
    return prepare_clips(request.folder, sample_rate=engine.info.sample_rate, channels=engine.info.channels,
                         clip_s=clip_s, text=request.text)


def encode(engine, prepared: PreparedClips, count: int | None = None) -> list:
    from inference.musicgen.training import TrainingClip, encode_clip

    clips = prepared.clips if count is None else prepared.clips[:count]
    return [TrainingClip(encode_clip(engine, clip.audio), clip.caption) for clip in clips]


def train_style(request: StyleRequest, *, model_dir: Path, lora_dir: Path, device: str = "cpu",
                on_report: Callable[[str], None] | None = None, on_progress: Callable | None = None,
                should_cancel: Callable[[], bool] | None = None,
                between_steps: Callable[[], None] | None = None) -> Path:
    """Train and write lora_dir/NAME (module docstring); the adapter's directory."""
    from inference.musicgen.lora import FORMAT, write_adapter_dir
    from inference.musicgen.training import StyleTrainer, load_training_engine

    lora_dir = Path(lora_dir).expanduser()
    target = check_name(lora_dir, request.name)
    check_family(model_dir)
    engine = load_training_engine(model_dir, device=device)
    prepared = prepare(request, engine)
    if on_report is not None:
        on_report(prepared.report())
    work_dir = lora_dir / TRAINING_DIR / request.name
    trainer = StyleTrainer(engine, encode(engine, prepared), request.options(), work_dir)
    resumed = trainer.resume()
    if resumed and on_report is not None:
        on_report(f"resuming from the checkpoint of step {resumed} in {work_dir}")
    result = trainer.run(on_step=on_progress, should_cancel=should_cancel, between_steps=between_steps)
    card = build_card(request, prepared, result, model_dir=model_dir, fingerprint=engine.fingerprint,
                      format_name=FORMAT)
    write_adapter_dir(target, result.lora, card)
    shutil.rmtree(work_dir, ignore_errors=True)
    log.info("style %s trained: %d steps, final loss %.4f, %.1f min of audio -> %s", request.name, result.steps,
             result.final_loss, prepared.minutes, target)
    return target


def build_card(request: StyleRequest, prepared: PreparedClips, result, *, model_dir: Path, fingerprint: str,
               format_name: str) -> dict:
    """What the adapter was made from and how: for the musician, and for whoever loads it later."""
    return {
        "name": request.name, "family": "musicgen", "format": format_name, "text": request.text,
        "base_model": str(model_dir), "base_fingerprint": fingerprint,
        "source_files": [{"name": f.name, "sha256": f.sha256, "used_s": round(f.used_s, 3), "skipped": f.skipped}
                         for f in prepared.files],
        "minutes_of_audio": round(prepared.minutes, 3), "clips": len(prepared.clips), "clip_s": prepared.clip_s,
        "steps": result.steps, "final_loss": round(result.final_loss, 5),
        "options": dataclasses.asdict(request.options()),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def plan_style(request: StyleRequest, *, model_dir: Path, device: str = "cpu") -> StylePlan:
    """The estimate from a short measured run (module docstring); nothing is written."""
    import tempfile

    from inference.musicgen.training import (
        GPU_JOB_PARAMETERS,
        StyleTrainer,
        load_training_engine,
        peak_memory_bytes,
    )

    check_family(model_dir)
    engine = load_training_engine(model_dir, device=device)
    prepared = prepare(request, engine)
    options = request.options()
    clips = encode(engine, prepared, count=options.batch_size)
    parameters = sum(p.numel() for p in engine.decoder.parameters())
    gpu_job = engine.device.type == "cpu" and parameters > GPU_JOB_PARAMETERS
    scale = 1.0  # measured step time -> a full step's
    if gpu_job:  # one clip of EXCERPT_S measured, scaled by the frames a full batch holds (the linears dominate)
        frames = max(1, round(EXCERPT_S * engine.info.frame_rate))
        full = min(clip.codes.shape[-1] for clip in clips) * options.batch_size
        clips = [dataclasses.replace(clips[0], codes=clips[0].codes[:, :frames])]
        scale = full / clips[0].codes.shape[-1]
    with tempfile.TemporaryDirectory() as work:
        measured = dataclasses.replace(options, epochs=1, batch_size=len(clips), checkpoint_every=10**9)
        trainer = StyleTrainer(engine, clips, measured, Path(work))
        trainer.train_step()  # warm-up: allocations, kernels
        started = time.perf_counter()
        for _ in range(PLAN_STEPS):
            trainer.step_index = 0  # the same batch again: one epoch of these clips is one step
            trainer.train_step()
        steps_per_s = PLAN_STEPS / (time.perf_counter() - started) / scale
    steps = options.epochs * math.ceil(len(prepared.clips) / options.batch_size)
    return StylePlan(minutes=prepared.minutes, clips=len(prepared.clips), steps=steps, steps_per_s=steps_per_s,
                     peak_memory_gb=peak_memory_bytes(engine.device) / 2**30, device=str(engine.device),
                     parameters=parameters, gpu_job=gpu_job, report=prepared.report(),
                     extrapolated=scale != 1.0)


def format_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "unknown"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
