"""ACE-Step 1.5 (diffusers' AceStepPipeline) as Continuo's second model family, behind the Engine Protocol.

Loaded by inference/acestep/family.py (a directory whose model_index.json names AceStepPipeline).
`AceStepEngine` turns a GenerationRequest into the pipeline's arguments (`pipeline_arguments`: prompt, lyrics,
vocal language, the session's bpm / keyscale / time signature, a seeded CPU generator, the task of an edit),
runs the flow-matching steps with progress and cancel between steps (callback_on_step_end, pipe._interrupt),
and decodes the latents as the pipeline does (`decode_latents`), so our path and a direct pipeline call agree.

Built: text2music with lyrics / vocal_language / instrumental, repaint, extract (one track of given audio, the
pipeline's task `extract` with `track_name`), lego (a new track over given audio: `lego` with `track_name`, the
whole clip as context; `complete` writes the whole arrangement back, not one stem), cover (`cover` with
audio_cover_strength, where the pipeline has its audio tokenizer: family.capabilities), variations (one take per
seed), a LoRA adapter per request (`adapter_applied`: loaded at its weight, removed after the request, a bad file
an InferenceError), three memory phases (`inference/acestep/phases.py`: encode, sample, decode; with memory_budget_gb
on CUDA the components idle in a phase wait on the CPU; `AceStepEngine.phases.subscribe(listener)` hears each
phase start). On the CPU the DiT's linears run as the `weights` setting says (inference.acestep.dit_linears: auto
keeps fp32/bf16 but where int8 is measured within an error budget, a plan saved per checkpoint and machine;
`convert_linears`); fp32 keeps the pipeline's own layers and parity. Not built yet (refused by capability, and by
`refuse_unsupported` here): complete, streaming previews, style mixing. Lyrics longer than the pipeline reads
(2048 tokens) are refused, never cut. An edit seeds the global RNG from the request (`seeded_encoding`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from inference.acestep.phases import IDLE, PhasePlacement, PhaseTracker, move_module
from inference.adapters import weight_file
from inference.api import (
    CancelCheck,
    ChunkCallback,
    GeneratedAudio,
    GenerationRequest,
    LoraAdapter,
    ModelInfo,
    ProgressCallback,
)
from inference.errors import Cancelled, InferenceError
from inference.runtime.compute import ComputeThread, runs_on_compute
from inference.runtime.progress import ProgressReporter
from inference.runtime.request_checks import RequestChecks

log = logging.getLogger("continuo.inference")

MODEL_COMPONENTS = ("text_encoder", "condition_encoder", "audio_tokenizer", "audio_token_detokenizer", "transformer",
                    "vae")  # the torch modules, the ones the three phases place
TURBO_STEPS = 8  # the turbo checkpoints are distilled for 8 steps
BASE_STEPS = 30
SHIFT = 3.0  # the pipeline's default timestep shift
MAX_TEXT_TOKENS = 256  # the pipeline's max_text_length
MAX_LYRIC_TOKENS = 2048  # the pipeline's max_lyric_length: longer lyrics are refused, never cut silently
DEFAULT_LANGUAGE = "en"
INSTRUMENTAL_LYRICS = "[Instrumental]"  # how ACE-Step is told there are no vocals
PEAK_TARGET = 10.0 ** (-1.0 / 20.0)  # the pipeline normalises every take to a -1 dBFS peak
WARM_UP_S = 0.2
ADAPTER_SLOT = "continuo"  # the one adapter name the transformer holds while a request runs
# What auto's DiT linear plan measures at load (inference.acestep.dit_linears): a short clip at two timesteps
CALIBRATION = GenerationRequest(prompt="warm piano chords over soft drums", duration_s=2.0, seed=0, instrumental=True)
CALIBRATION_STEPS = 2


class AceStepEngine(RequestChecks):
    """A loaded AceStepPipeline: one request at a time, from any thread, on its own compute thread."""

    info: ModelInfo
    concurrent_jobs = 1  # the pipeline renders one request per call (its batch would need a generator per take)
    measured_speed = None  # not measured: a diffusion render's time barely follows its length
    compute: ComputeThread

    def __init__(self, pipeline, info: ModelInfo, *, steps: int, placement: PhasePlacement | None = None,
                 mover=move_module, dit_linears=None):
        self.pipeline, self.info, self.steps = pipeline, info, steps
        self.compute = ComputeThread()
        self.dit_linears = dit_linears  # inference.acestep.dit_linears.LinearPlan, or None: the DiT's own fp32 linears
        self.device = torch.device(info.device)
        self.hop = int(round(info.sample_rate / info.frame_rate))
        self.lock = threading.Lock()
        pipeline.set_progress_bar_config(disable=True)
        # The phase boundaries: encode (sample() before the pipeline call), sample (the DiT's first forward, from
        # inside the pipeline's __call__), decode (decode_latents), idle (after it). Listeners: phases.subscribe.
        self.phases = PhaseTracker(components(pipeline), placement, mover)
        pipeline.transformer.register_forward_pre_hook(lambda _module, _args: self.phases.enter("sample"))

    # ---- the Engine Protocol --------------------------------------------------------------------------------

    def close(self) -> None:
        """Nothing outside this process to let go of."""

    @runs_on_compute
    def warm_up(self) -> float:
        started = time.monotonic()
        self.generate(GenerationRequest(prompt="warm up", duration_s=WARM_UP_S, seed=0))
        return time.monotonic() - started

    @runs_on_compute
    def generate(self, request: GenerationRequest, *, on_progress: ProgressCallback | None = None,
                 should_cancel: CancelCheck | None = None, on_chunk: ChunkCallback | None = None) -> GeneratedAudio:
        self.refuse_unsupported(request, streaming=on_chunk is not None)
        with self.lock, self.adapter_applied(request.adapter), self.generation_errors():
            return self.render(request, on_progress=on_progress, should_cancel=should_cancel)

    @runs_on_compute
    def generate_batch(self, request: GenerationRequest, seeds: Sequence[int], *,
                       on_progress: ProgressCallback | None = None, should_cancel: CancelCheck | None = None,
                       on_chunk: ChunkCallback | None = None) -> list[GeneratedAudio]:
        """One take per seed, one after another (the pipeline's batch would need one generator per take)."""
        self.refuse_batch(request, seeds, streaming=on_chunk is not None)
        takes = []
        with self.lock, self.adapter_applied(request.adapter), self.generation_errors():
            for index, seed in enumerate(seeds):
                def progress(fraction: float, stage: str, index=index) -> None:
                    if on_progress is not None:
                        on_progress((index + fraction) / len(seeds), stage)
                takes.append(self.render(replace_seed(request, seed), on_progress=progress,
                                         should_cancel=should_cancel))
        return takes

    # ---- the DiT's linears ----------------------------------------------------------------------------------

    def convert_linears(self, mode: str, *, checkpoint: Path | None = None):
        """The DiT's linears as mode says (inference.acestep.dit_linears; auto measures on this engine's own
        calibration renders); auto's plan is saved for checkpoint on this machine and reused (inference/runtime/
        plans.py). The plan goes into info.modes (the manifest). Returns it."""
        from inference.acestep.dit_linears import convert_dit_linears_
        from inference.runtime.plans import PlanKey, checkpoint_fingerprint, load_plan, save_plan

        key = saved = None
        if mode == "auto" and checkpoint is not None:
            key = PlanKey("acestep-dit-linears", checkpoint_fingerprint(checkpoint), f"weights={mode}")
            saved = load_plan(key)
        plan = convert_dit_linears_(self.pipeline.transformer, mode, run=lambda: self.calibration_latents(0),
                                    render=self.calibration_latents, saved=saved)
        if key is not None and saved is None:
            save_plan(key, plan.as_dict())
        self.dit_linears = plan
        self.info = dataclasses.replace(self.info, modes={"weights": mode, "dit_linears": plan.as_dict()})
        return plan

    def calibration_latents(self, seed: int) -> torch.Tensor:
        """Final latents (B, T, D) of the calibration clip (CALIBRATION at CALIBRATION_STEPS steps) for seed."""
        request = dataclasses.replace(CALIBRATION, seed=seed,
                                      duration_s=min(CALIBRATION.duration_s, self.info.max_duration_s))
        arguments = self.pipeline_arguments(request) | {"num_inference_steps": CALIBRATION_STEPS}
        try:
            with torch.inference_mode():
                return self.pipeline(**arguments, output_type="latent").audios.float()
        finally:
            self.phases.enter(IDLE)

    # ---- LoRA -----------------------------------------------------------------------------------------------

    @contextmanager
    def adapter_applied(self, adapter: LoraAdapter | None) -> Iterator[None]:
        """The adapter loaded into the transformer at its weight for the block, removed after it (also when the
        block fails), so the next request runs on the bare model and a job's output never depends on the job
        before it. diffusers' load_lora_weights (PEFT backend) under one fixed adapter name. A file that does not
        load is an InferenceError naming it; the engine is left clean and serves the next request. Loading per
        job costs 0.04 s on the tiny pipeline (a real adapter is tens of MB; not measured): a cache of loaded
        adapters would be the next step if that shows up."""
        if adapter is None:
            yield
            return
        if self.dit_linears is not None and self.dit_linears.active:
            raise InferenceError(f"LoRA adapter {adapter.name!r} needs the DiT's own linear layers; this engine runs "
                                 f"them converted ({self.dit_linears.summary()}): restart with --weights fp32 to "
                                 "apply adapters, or send the job without lora")
        started = time.monotonic()
        try:
            self.pipeline.load_lora_weights(str(weight_file(adapter.path)), adapter_name=ADAPTER_SLOT,
                                            local_files_only=True)
            self.pipeline.set_adapters([ADAPTER_SLOT], [float(adapter.weight)])
        except Exception as error:
            try:
                self.remove_adapters()  # whatever the failed load injected
            except Exception as cleanup:  # e.g. no PEFT backend: nothing was injected; the load error says why
                log.warning("lora=%s nothing to remove after the failed load: %s", adapter.name, cleanup)
            raise InferenceError(
                f"LoRA adapter {adapter.name!r} ({adapter.path}) cannot be applied to {self.info.name}: "
                f"{error_summary(error)}; it must be a LoRA for this model's transformer in diffusers' format "
                "(AceStepPipeline.save_lora_weights): replace the file or send the job without lora"
            ) from error
        log.info("lora=%s weight=%g loaded in %.2f s", adapter.name, adapter.weight, time.monotonic() - started)
        try:
            yield
        finally:
            self.remove_adapters()

    def remove_adapters(self) -> None:
        """Every LoRA layer out of the transformer (its own modules back in place)."""
        self.pipeline.unload_lora_weights()

    # ---- one take -------------------------------------------------------------------------------------------

    def render(self, request: GenerationRequest, *, on_progress: ProgressCallback | None = None,
               should_cancel: CancelCheck | None = None) -> GeneratedAudio:
        try:
            latents = self.sample(request, on_progress=on_progress, should_cancel=should_cancel)
            if on_progress is not None:
                on_progress(0.0, "decoding")
            audio = self.decode_latents(latents)[0]
        finally:
            self.phases.enter(IDLE)
        if on_progress is not None:
            on_progress(1.0, "decoding")
        return GeneratedAudio(audio=audio, sample_rate=self.info.sample_rate, seed=request.seed)

    # ---- the steps ------------------------------------------------------------------------------------------

    def pipeline_arguments(self, request: GenerationRequest) -> dict:
        """The AceStepPipeline keyword arguments for request (output_type and callbacks aside)."""
        self.check_request(request)
        lyrics = INSTRUMENTAL_LYRICS if request.instrumental else request.lyrics
        arguments = dict(
            prompt=request.prompt, lyrics=lyrics, vocal_language=request.vocal_language or DEFAULT_LANGUAGE,
            audio_duration=request.duration_s, num_inference_steps=self.steps, shift=SHIFT,
            guidance_scale=1.0 if self.pipeline.is_turbo else request.guidance_scale,
            generator=torch.Generator(device="cpu").manual_seed(request.seed),
            bpm=int(round(request.bpm)) if request.bpm else None, keyscale=request.keyscale or None,
            timesignature=request.timesignature or None,
            max_text_length=MAX_TEXT_TOKENS, max_lyric_length=MAX_LYRIC_TOKENS,
        )
        edit = request.edit
        if edit is not None:
            source = torch.from_numpy(np.ascontiguousarray(edit.audio, dtype=np.float32))
            arguments.update(task_type=edit.task, src_audio=source, audio_duration=None)
            if edit.task == "repaint":
                arguments.update(repainting_start=edit.start_s, repainting_end=edit.end_s)
            elif edit.task == "cover":
                arguments.update(audio_cover_strength=edit.strength)
            elif edit.task in ("extract", "lego"):  # lego: the whole clip is its context (no repainting span)
                arguments.update(track_name=edit.track)
        return arguments

    def check_request(self, request: GenerationRequest) -> None:
        if not (math.isfinite(request.duration_s) and request.duration_s > 0):
            raise InferenceError(f"duration_s must be a positive number of seconds, got {request.duration_s}")
        if request.duration_s > self.info.max_duration_s + 1e-6:
            raise InferenceError(f"{request.duration_s:.1f} s is longer than this model renders "
                                 f"({self.info.max_duration_s:.0f} s); render fewer bars")
        if request.lyrics and request.instrumental:
            raise InferenceError("lyrics and instrumental 1 contradict each other; send one of them")
        tokens = len(self.pipeline.tokenizer(request.lyrics).input_ids) if request.lyrics else 0
        if tokens > MAX_LYRIC_TOKENS - 16:  # room for the language header
            raise InferenceError(f"the lyrics are {tokens} tokens long; this model reads at most "
                                 f"{MAX_LYRIC_TOKENS - 16}: shorten them or split the song into parts")
        edit = request.edit
        if edit is None:
            return
        audio = np.asarray(edit.audio)
        if audio.ndim != 2 or audio.shape[0] != self.info.channels:
            raise InferenceError(f"edit audio must be ({self.info.channels}, samples) at the model's rate, "
                                 f"got shape {audio.shape}")
        seconds = audio.shape[1] / self.info.sample_rate
        if edit.task == "repaint" and not 0.0 <= edit.start_s < edit.end_s <= seconds + 1e-6:
            raise InferenceError(f"repaint span {edit.start_s:.2f}-{edit.end_s:.2f} s must lie inside the "
                                 f"{seconds:.2f} s of audio and end after it starts")

    def sample(self, request: GenerationRequest, *, on_progress: ProgressCallback | None = None,
               should_cancel: CancelCheck | None = None) -> torch.Tensor:
        """The flow-matching steps; the final latents (B, T, D), progress per step, cancel between steps."""
        arguments = self.pipeline_arguments(request)
        reporter = ProgressReporter(on_progress, self.steps)
        cancelled = []

        def on_step_end(pipeline, step: int, timestep, tensors: dict) -> dict:
            if should_cancel is not None and should_cancel():
                cancelled.append(step + 1)
                pipeline._interrupt = True  # the pipeline stops before the next step
            elif step + 1 < self.steps:
                reporter.step(step + 1)
            else:
                reporter.stage("generating", 1.0)
            return tensors

        if should_cancel is not None and should_cancel():
            raise Cancelled("cancelled before generation started")
        reporter.stage("conditioning", 0.0)
        self.phases.enter("encode")
        with torch.inference_mode(), self.seeded_encoding(request):
            latents = self.pipeline(**arguments, output_type="latent", callback_on_step_end=on_step_end).audios
        if cancelled:
            raise Cancelled(f"cancelled after {cancelled[0]} of {self.steps} steps")
        return latents

    @contextmanager
    def seeded_encoding(self, request: GenerationRequest) -> Iterator[None]:
        """The global RNG seeded by the request for an edit, restored after: the pipeline encodes the given audio
        with vae.encode(...).latent_dist.sample() and no generator, so without this the same seed and clip gave
        another take on every call."""
        if request.edit is None:
            yield
            return
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(request.seed)
            yield

    def decode_latents(self, latents: torch.Tensor) -> np.ndarray:
        """(B, T, D) latents -> (B, C, samples) float32, normalised to a -1 dBFS peak as the pipeline does."""
        self.phases.enter("decode")
        with torch.inference_mode():
            audio = self.pipeline.vae.decode(latents.transpose(1, 2).to(self.pipeline.vae.dtype)).sample.float()
            peak = audio.abs().amax(dim=[1, 2], keepdim=True)
            if torch.any(peak > 1.0):
                audio = audio / peak.clamp(min=1.0)
            peak = audio.abs().amax(dim=[1, 2], keepdim=True).clamp(min=1e-6)
            audio = audio * (PEAK_TARGET / peak)
        return np.ascontiguousarray(audio.cpu().numpy(), dtype=np.float32)


def error_summary(error: Exception, limit: int = 300) -> str:
    """The first two non-empty lines of an error, at most limit characters (size-mismatch reports run long)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()][:2]
    text = f"{type(error).__name__}: {' '.join(lines)}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def replace_seed(request: GenerationRequest, seed: int) -> GenerationRequest:
    from dataclasses import replace

    return replace(request, seed=seed)


def components(pipeline) -> dict[str, torch.nn.Module]:
    """The pipeline's torch modules by name (the optional audio tokenizers only where present)."""
    return {name: module for name in MODEL_COMPONENTS
            if isinstance(module := getattr(pipeline, name, None), torch.nn.Module)}


