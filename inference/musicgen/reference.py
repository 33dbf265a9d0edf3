"""The reference engine: transformers' MusicGen generate, seeded, cancellable, with progress.

Tests and `continuo bench` hold our engine (inference.musicgen.engine) to it; `serve --backend transformers`
serves it. It declares what transformers' generate gives: text, continuation and variations (one take
after another), no streaming, no style mixing, no melody (load_engine refuses melody checkpoints here).
"""

from __future__ import annotations

import copy
import logging
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from inference.api import (
    CancelCheck,
    Capability,
    ChunkCallback,
    GeneratedAudio,
    GenerationRequest,
    ModelInfo,
    ProgressCallback,
)
from inference.errors import Cancelled, InferenceError
from inference.musicgen.checkpoint import describe_model, hop_length
from inference.runtime.compute import ComputeThread, runs_on_compute
from inference.runtime.progress import ProgressReporter
from inference.runtime.request_checks import RequestChecks

log = logging.getLogger("continuo.inference")

RNG_LOCK = threading.Lock()  # seeding forks torch's global RNG; one seeded render at a time
REFERENCE_CAPABILITIES = frozenset({Capability.TEXT, Capability.CONTINUATION, Capability.VARIATIONS})


class StepWatcher(StoppingCriteria):
    """Runs after every decode step: counts it, reports progress, raises Cancelled on request."""

    def __init__(self, reporter: ProgressReporter, should_cancel: CancelCheck | None):
        self.reporter = reporter
        self.should_cancel = should_cancel
        self.steps_done = 0

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        self.steps_done += 1
        if self.should_cancel is not None and self.should_cancel():
            raise Cancelled(f"cancelled after {self.steps_done} of {self.reporter.total_steps} steps")
        self.reporter.step(self.steps_done)
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


class ReferenceEngine(RequestChecks):
    """transformers' MusicGen (model + processor) behind the Engine surface: one request at a time, from any
    thread, on its own compute thread."""

    info: ModelInfo
    concurrent_jobs = 1  # transformers' generate takes one request per call
    measured_speed = None  # not measured: the reference for tests and benchmarks, not a live instrument
    compute: ComputeThread

    def __init__(self, model, processor, info: ModelInfo):
        self.model = model
        self.processor = processor
        self.info = info
        self.hop = hop_length(model.config)
        self.delay_codebooks = model.config.decoder.num_codebooks // model.config.decoder.audio_channels
        self.lock = threading.Lock()
        self.compute = ComputeThread()

    def close(self) -> None:
        """Nothing outside this process to let go of."""

    @runs_on_compute
    def warm_up(self) -> float:
        """Run a few decode steps so the first real render does not pay for kernel set-up; returns seconds."""
        started = time.monotonic()
        self.generate(GenerationRequest(prompt="warm up", duration_s=2 / self.info.frame_rate, seed=0))
        return time.monotonic() - started

    @runs_on_compute
    def generate_batch(self, request: GenerationRequest, seeds: Sequence[int], *,
                       on_progress: ProgressCallback | None = None, should_cancel: CancelCheck | None = None,
                       on_chunk: ChunkCallback | None = None) -> list[GeneratedAudio]:
        """One take per seed, one after another (transformers' generate samples one sequence per call here)."""
        self.refuse_batch(request, seeds, streaming=on_chunk is not None)
        return [self.generate(replace(request, seed=seed), on_progress=on_progress, should_cancel=should_cancel)
                for seed in seeds]

    @runs_on_compute
    def generate(
        self,
        request: GenerationRequest,
        *,
        on_progress: ProgressCallback | None = None,
        should_cancel: CancelCheck | None = None,
        on_chunk: ChunkCallback | None = None,
    ) -> GeneratedAudio:
        """One take; on_chunk is refused (no STREAMING: generate hands out audio only at the end)."""
        self.refuse_unsupported(request, streaming=on_chunk is not None)
        prompt_audio = self.prepare_prompt(request.audio_prompt)
        prompt_frames = 0 if prompt_audio is None else prompt_audio.shape[-1] // self.hop
        self.validate(request, prompt_frames)
        frames = math.ceil(request.duration_s * self.info.frame_rate - 1e-6)
        total_steps = frames + self.delay_codebooks - 1  # the delay pattern needs K - 1 extra steps
        reporter = ProgressReporter(on_progress, total_steps)
        started = time.monotonic()
        with self.lock:
            audio = self.render(request, prompt_audio, total_steps, reporter, should_cancel)
        audio = audio[:, prompt_frames * self.hop :]
        if not np.isfinite(audio).all():
            raise InferenceError("the model produced non-finite audio (NaN or inf); try fp32 or another seed")
        log.info(
            "generated %.2f s (%d steps%s) in %.2f s, seed %d",
            audio.shape[-1] / self.info.sample_rate, total_steps,
            f", continuing {prompt_frames / self.info.frame_rate:.2f} s" if prompt_frames else "",
            time.monotonic() - started, request.seed,
        )
        return GeneratedAudio(audio=audio, sample_rate=self.info.sample_rate, seed=request.seed)

    def render(self, request, prompt_audio, total_steps, reporter, should_cancel) -> np.ndarray:
        """(C, T) float32 audio for the prompt frames plus the new ones; errors become inference errors."""
        with self.generation_errors():
            if should_cancel is not None and should_cancel():
                raise Cancelled("cancelled before generation started")
            reporter.stage("conditioning", 0.0)
            inputs = self.build_inputs(request.prompt, prompt_audio)
            config = self.build_generation_config(request, total_steps)
            watcher = StoppingCriteriaList([StepWatcher(reporter, should_cancel)])
            with RNG_LOCK, torch.random.fork_rng(devices=self.rng_devices()), torch.inference_mode():
                torch.manual_seed(request.seed)
                values = self.model.generate(**inputs, generation_config=config, stopping_criteria=watcher)
            return values[0].float().cpu().numpy()  # (C, T)

    def rng_devices(self) -> list[int]:
        device = self.model.device
        if device.type != "cuda":
            return []
        return [device.index if device.index is not None else torch.cuda.current_device()]

    def build_inputs(self, prompt: str, prompt_audio: np.ndarray | None) -> dict:
        """The processor's inputs for one prompt (no style mixing, no melody: refused before)."""
        kwargs = {"text": [prompt], "padding": True, "return_tensors": "pt"}
        if prompt_audio is not None:
            kwargs["audio"] = prompt_audio[0] if self.info.channels == 1 else prompt_audio
            kwargs["sampling_rate"] = self.info.sample_rate
        inputs = self.processor(**kwargs)
        inputs = {name: value.to(self.model.device) for name, value in inputs.items()}
        if "input_values" in inputs:
            inputs["input_values"] = inputs["input_values"].to(self.model.dtype)
        return inputs

    def build_generation_config(self, request: GenerationRequest, total_steps: int):
        """A fresh config per request; the shared model's own config is never touched."""
        config = copy.deepcopy(self.model.generation_config)
        # generate() fills any None from the checkpoint's defaults, so "off" is spelled out:
        # top_k=0 and top_p=1.0 disable those filters; greedy keeps transformers' neutral values.
        sampling = request.temperature > 0
        nucleus = request.top_p > 0  # as in audiocraft: top_p, when set, replaces top_k
        config.update(
            max_new_tokens=total_steps,
            min_new_tokens=0,
            do_sample=sampling,
            temperature=request.temperature if sampling else 1.0,
            top_k=(0 if nucleus else request.top_k) if sampling else 50,
            top_p=request.top_p if sampling and nucleus else 1.0,
            guidance_scale=request.guidance_scale if request.guidance_scale > 1 else 1.0,
            num_return_sequences=1,
            return_dict_in_generate=False,
        )
        return config


def reference_from_hf_model(model, processor, *, name: str, source_kind: str, is_random: bool,
                            device: str) -> ReferenceEngine:
    """The reference engine around a loaded MusicgenForConditionalGeneration (already on its device)."""
    info = describe_model(model.config, name=name, source_kind=source_kind, is_random=is_random, device=device,
                          parameters=sum(p.numel() for p in model.parameters()), capabilities=REFERENCE_CAPABILITIES)
    return ReferenceEngine(model, processor, info)
