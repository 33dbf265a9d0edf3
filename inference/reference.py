"""Render audio with transformers' MusicGen generate: seeded, cancellable, with progress.

A later issue replaces the decode loop with our own; the public surface
(ModelInfo, GenerationRequest, GeneratedAudio, generate) stays.
"""

from __future__ import annotations

import copy
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from inference.errors import Cancelled, InferenceError, OutOfMemory

log = logging.getLogger("continuo.inference")

TRAINED_WINDOW_S = 30.0  # MusicGen is trained on 30 s excerpts
PROGRESS_INTERVAL_S = 0.25  # at most ~4 progress calls per second
RNG_LOCK = threading.Lock()  # seeding forks torch's global RNG; one seeded render at a time

ProgressCallback = Callable[[float, str], None]
CancelCheck = Callable[[], bool]


@dataclass(frozen=True)
class ModelInfo:
    name: str
    source_kind: str
    sample_rate: int
    channels: int
    frame_rate: float
    max_duration_s: float
    is_random: bool
    device: str
    parameters: int
    max_output_s: float = 0.0  # longest output per request; past max_duration_s by windowed re-prompting (0: none)
    takes_melody: bool = False  # a MusicGen-melody checkpoint: requests may carry a melody to follow

    def __post_init__(self):
        if self.max_output_s < self.max_duration_s:
            object.__setattr__(self, "max_output_s", self.max_duration_s)


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str
    duration_s: float
    seed: int
    temperature: float = 1.0
    top_k: int = 250
    top_p: float = 0.0
    guidance_scale: float = 3.0
    audio_prompt: np.ndarray | None = None  # (C, T) float32 at the model's sample rate
    styles: tuple[tuple[str, float], ...] = ()  # style mixing: (prompt, weight) blended with `prompt` (weight 1)
    melody: np.ndarray | None = None  # (C, T) float32 at the model's sample rate: its chroma conditions a melody model


@dataclass
class GeneratedAudio:
    audio: np.ndarray  # (C, T) float32 at the model's sample rate
    sample_rate: int
    seed: int


def describe_model(model, *, name: str, source_kind: str, is_random: bool, device: str) -> ModelInfo:
    codec = model.config.audio_encoder
    decoder = model.config.decoder
    frame_rate = codec.sampling_rate / hop_length(model)
    delay_frames = decoder.num_codebooks // decoder.audio_channels  # bos + delay pattern tail
    position_limit_s = (decoder.max_position_embeddings - delay_frames) / frame_rate
    return ModelInfo(
        name=name,
        source_kind=source_kind,
        sample_rate=int(codec.sampling_rate),
        channels=int(decoder.audio_channels),
        frame_rate=frame_rate,
        max_duration_s=min(TRAINED_WINDOW_S, position_limit_s),
        is_random=is_random,
        device=device,
        parameters=sum(p.numel() for p in model.parameters()),
    )


def hop_length(model) -> int:
    return int(np.prod(model.config.audio_encoder.upsampling_ratios))


class ProgressReporter:
    """Turns decode steps into throttled on_progress(fraction, stage) calls."""

    def __init__(self, on_progress: ProgressCallback | None, total_steps: int):
        self.on_progress = on_progress
        self.total_steps = total_steps
        self.last_report = -math.inf

    def stage(self, stage: str, fraction: float) -> None:
        if self.on_progress is not None:
            self.on_progress(fraction, stage)

    def step(self, steps_done: int) -> None:
        now = time.monotonic()
        if steps_done >= self.total_steps:
            self.stage("generating", 1.0)
            self.stage("decoding", 1.0)
        elif now - self.last_report >= PROGRESS_INTERVAL_S:
            self.last_report = now
            self.stage("generating", steps_done / self.total_steps)


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


class RequestChecks:
    """Request validation and audio-prompt preparation shared by every engine (needs self.info, self.hop)."""

    info: ModelInfo
    hop: int

    @contextmanager
    def generation_errors(self) -> Iterator[None]:
        """Every failure inside a render becomes an InferenceError; running out of memory, OutOfMemory."""
        try:
            yield
        except InferenceError:
            raise
        except torch.OutOfMemoryError as error:
            raise self.out_of_memory(error) from error
        except RuntimeError as error:
            if "can't allocate memory" in str(error):
                raise self.out_of_memory(error) from error
            raise InferenceError(f"generation failed: {type(error).__name__}: {error}") from error
        except Exception as error:
            raise InferenceError(f"generation failed: {type(error).__name__}: {error}") from error

    def out_of_memory(self, error: Exception) -> OutOfMemory:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return OutOfMemory(
            f"out of memory on {self.info.device} while generating ({error}); "
            "try int8 weights (--weights int8 on the CPU, bnb-int8 or bnb-nf4 on CUDA), a smaller model or preset, "
            "fewer bars or variations, or guidance_scale <= 1 (halves the work)"
        )

    def validate(self, request: GenerationRequest, prompt_frames: int) -> None:
        if not (math.isfinite(request.duration_s) and request.duration_s > 0):
            raise InferenceError(f"duration_s must be a positive number of seconds, got {request.duration_s}")
        prompt_s = prompt_frames / self.info.frame_rate
        if prompt_s + request.duration_s > self.info.max_duration_s + 1e-6:
            raise InferenceError(
                f"audio prompt ({prompt_s:.2f} s) + duration_s ({request.duration_s:.2f} s) = "
                f"{prompt_s + request.duration_s:.2f} s exceeds this model's {self.info.max_duration_s:.1f} s window; "
                "render fewer bars or a shorter prompt"
            )
        if not (0.0 <= request.top_p <= 1.0):
            raise InferenceError(f"top_p must be between 0 and 1 (0 = off), got {request.top_p}")
        if request.top_k < 0:
            raise InferenceError(f"top_k must be >= 0 (0 = off), got {request.top_k}")
        if not math.isfinite(request.temperature) or request.temperature < 0:
            raise InferenceError(f"temperature must be >= 0 (0 = greedy), got {request.temperature}")

    def prepare_prompt(self, audio: np.ndarray | None) -> np.ndarray | None:
        """(C, T) at the model's channel count, trimmed from the start to whole codec frames."""
        if audio is None:
            return None
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim == 1:
            audio = audio[None, :]
        if audio.ndim != 2:
            raise InferenceError(f"audio_prompt must be (channels, samples), got shape {audio.shape}")
        audio = self.match_channels(audio)
        if not np.isfinite(audio).all():
            raise InferenceError("audio_prompt contains NaN or inf samples")
        usable = (audio.shape[-1] // self.hop) * self.hop
        if usable == 0:
            raise InferenceError(
                f"audio_prompt is shorter than one codec frame ({self.hop} samples at {self.info.sample_rate} Hz)"
            )
        return np.ascontiguousarray(audio[:, audio.shape[-1] - usable :])

    def match_channels(self, audio: np.ndarray) -> np.ndarray:
        channels = audio.shape[0]
        if channels == self.info.channels:
            return audio
        if self.info.channels == 1:
            return audio.mean(axis=0, keepdims=True)
        if channels == 1:
            return np.repeat(audio, self.info.channels, axis=0)
        raise InferenceError(f"audio_prompt has {channels} channels; this model takes 1 or {self.info.channels}")


class TransformersMusicGen(RequestChecks):
    """A loaded MusicGen (model + processor); generate is safe to call repeatedly from one worker thread."""

    streams = False  # transformers' generate hands out audio only at the end

    def __init__(self, model, processor, info: ModelInfo):
        self.model = model
        self.processor = processor
        self.info = info
        self.hop = hop_length(model)
        self.delay_codebooks = model.config.decoder.num_codebooks // model.config.decoder.audio_channels
        self.lock = threading.Lock()

    def warm_up(self) -> float:
        """Run a few decode steps so the first real render does not pay for kernel set-up; returns seconds."""
        started = time.monotonic()
        self.generate(GenerationRequest(prompt="warm up", duration_s=2 / self.info.frame_rate, seed=0))
        return time.monotonic() - started

    def generate(
        self,
        request: GenerationRequest,
        *,
        on_progress: ProgressCallback | None = None,
        should_cancel: CancelCheck | None = None,
    ) -> GeneratedAudio:
        if request.styles:
            raise InferenceError("style mixing is not built yet on the transformers backend; use backend 'engine'")
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
        """The processor's inputs for one prompt (style mixing is built only in MusicGenEngine)."""
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
