"""Checks every engine makes on a request: what it asks against what the model declares, its settings,
its audio prompt; and failures inside a render turned into InferenceError / OutOfMemory."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np

from inference.api import EDIT_CAPABILITIES, Capability, GenerationRequest, ModelInfo
from inference.errors import InferenceError, OutOfMemory
from inference.runtime.memory import first_line, is_out_of_memory, release_memory

# What an engine says when a request needs a capability its model does not declare (after the model's name).
UNSUPPORTED = {
    Capability.MELODY: "takes no melody; load a MusicGen-melody checkpoint to follow one",
    Capability.STREAMING: "cannot stream (on_chunk) on this engine: transformers' generate hands out audio only "
                          "at the end; use our engine (backend 'engine') to stream",
    Capability.STYLES: "cannot mix styles on this engine; use our engine (backend 'engine')",
    Capability.CONTINUATION: "cannot continue an audio prompt; drop audio_prompt",
    Capability.VARIATIONS: "renders one take per request; ask for one seed",
    Capability.LYRICS: "sings no lyrics (and takes no vocal language or instrumental flag); load an ACE-Step "
                       "pipeline for songs with words",
    Capability.REPAINT: "cannot repaint a span of given audio; load an ACE-Step pipeline",
    Capability.EXTRACT: "cannot extract a track from given audio; load an ACE-Step pipeline (or separate with "
                        "HDemucs stems)",
    Capability.ADD_LAYER: "cannot add a layer over given audio; load an ACE-Step pipeline",
    Capability.COVER: "cannot cover (restyle) given audio; load an ACE-Step pipeline with its audio tokenizer",
    Capability.LORA: "takes no LoRA adapter per request here (an ACE-Step pipeline takes diffusers' LoRAs; our "
                     "MusicGen engine takes its own in any weight mode, but not with compile on, nor on a melody "
                     "checkpoint: merge it at load with the lora setting there)",
    Capability.CODE_PROMPT: "cannot continue from codes (prompt_codes: a jam's context); serve a MusicGen model "
                            "with our engine (backend 'engine') to jam",
    Capability.CODE_STREAM: "cannot keep a stream's decoder state between requests (open_stream); a jam on it "
                            "prefills its context every bar (prompt_codes) instead",
}


def needed_capabilities(request: GenerationRequest, *, seeds: int = 1, streaming: bool = False) -> list[Capability]:
    """What a request asks of the model, beyond text."""
    needs = []
    if request.audio_prompt is not None:
        needs.append(Capability.CONTINUATION)
    if request.prompt_codes is not None:
        needs.append(Capability.CODE_PROMPT)
    if seeds > 1:
        needs.append(Capability.VARIATIONS)
    if request.melody is not None:
        needs.append(Capability.MELODY)
    if request.styles:
        needs.append(Capability.STYLES)
    if streaming:
        needs.append(Capability.STREAMING)
    if request.lyrics or request.vocal_language or request.instrumental:
        needs.append(Capability.LYRICS)
    if request.edit is not None:
        needs.append(EDIT_CAPABILITIES[request.edit.task])
    if request.adapter is not None:
        needs.append(Capability.LORA)
    return needs


def unsupported(info: ModelInfo, capability: Capability) -> InferenceError:
    """What an engine raises for a capability its model does not declare (the model's name, then what to do)."""
    return InferenceError(f"{info.name} {UNSUPPORTED.get(capability, f'lacks {capability.value}')}")


class RequestChecks:
    """Request validation and audio-prompt checks shared by every engine (needs self.info, self.hop)."""

    info: ModelInfo
    hop: int

    def refuse_unsupported(self, request: GenerationRequest, *, seeds: int = 1, streaming: bool = False) -> None:
        """InferenceError for the first thing the request needs that info.capabilities lacks."""
        for capability in needed_capabilities(request, seeds=seeds, streaming=streaming):
            self.refuse_capability(capability)

    def open_stream(self, *, max_frames: int = 0):
        """Engines that keep no stream state (inference/api.py:CodeStream) refuse by capability."""
        self.refuse_capability(Capability.CODE_STREAM)
        raise InferenceError(f"{self.info.name} declares {Capability.CODE_STREAM.value} but keeps no stream state")

    def refuse_capability(self, capability: Capability) -> None:
        if not self.info.supports(capability):
            raise unsupported(self.info, capability)

    def refuse_batch(self, request: GenerationRequest, seeds: Sequence[int], *, streaming: bool = False) -> None:
        """generate_batch's checks: at least one seed, then refuse_unsupported for that many takes."""
        if not seeds:
            raise InferenceError("generate_batch needs at least one seed")
        self.refuse_unsupported(request, seeds=len(seeds), streaming=streaming)

    @contextmanager
    def generation_errors(self) -> Iterator[None]:
        """Every failure inside a render becomes an InferenceError; running out of memory, OutOfMemory."""
        try:
            yield
        except InferenceError:
            raise
        except Exception as error:
            if is_out_of_memory(error):
                release_memory(error)  # the failed frames' tensors first, then CUDA's cached blocks
                raise self.out_of_memory(error) from error
            raise InferenceError(f"generation failed: {type(error).__name__}: {error}") from error

    def out_of_memory(self, error: Exception) -> OutOfMemory:
        return OutOfMemory(
            f"out of memory on {self.info.device} while generating ({first_line(error)}); "
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
        """(C, T) at the model's channel count, trimmed from the start to whole codec frames.

        Channels are the caller's to map, as the sample rate is (the bridge maps an input once, in
        Worker.read_prompt, with the same function that maps every output): a prompt with another
        channel count is refused here, not mixed a second time.
        """
        if audio is None:
            return None
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim == 1:
            audio = audio[None, :]
        if audio.ndim != 2:
            raise InferenceError(f"audio_prompt must be (channels, samples), got shape {audio.shape}")
        if audio.shape[0] != self.info.channels:
            raise InferenceError(
                f"audio_prompt has {audio.shape[0]} channel(s); this model takes {self.info.channels}: "
                "map the prompt to the model's channel count (info.channels) before generating"
            )
        if not np.isfinite(audio).all():
            raise InferenceError("audio_prompt contains NaN or inf samples")
        usable = (audio.shape[-1] // self.hop) * self.hop
        if usable == 0:
            raise InferenceError(
                f"audio_prompt is shorter than one codec frame ({self.hop} samples at {self.info.sample_rate} Hz)"
            )
        return np.ascontiguousarray(audio[:, audio.shape[-1] - usable :])
