"""The contract between the bridge and an engine: what a model declares, what a request asks, what comes back.

Every engine satisfies `Engine`: ours for MusicGen (inference/musicgen/engine.py), transformers' reference
(inference/musicgen/reference.py), ACE-Step's (inference/acestep/engine.py), and the bridge's proxy of a cluster
(bridge/cluster/proxy.py). The bridge uses nothing else of an engine (tests/bridge/test_engine_contract.py walks
bridge/ for it) and never probes one. What a loaded model can do is data, `ModelInfo.capabilities`: the bridge
refuses a request for anything missing there before it queues it, and an engine refuses it too.
`ModelInfo.max_output_s` says how long one request may be (past the model's window where the engine re-prompts).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Protocol, TypeVar, runtime_checkable

import numpy as np

ProgressCallback = Callable[[float, str], None]  # (fraction 0..1 of the stage, stage name)
CancelCheck = Callable[[], bool]  # True: stop at the next step (the engine raises Cancelled)
ChunkCallback = Callable[[np.ndarray], None]  # streamed audio: (C, samples) from generate, (B, C, samples) batched
T = TypeVar("T")


class Capability(str, Enum):
    """A kind of request or setting a loaded model supports."""

    TEXT = "text"  # a text prompt conditions generation
    CONTINUATION = "continuation"  # an audio prompt is continued (continue, variations of an input)
    VARIATIONS = "variations"  # several takes of one request (generate_batch)
    MELODY = "melody"  # a tune's chroma conditions generation (MusicGen-melody)
    STREAMING = "streaming"  # audio in chunks while decoding (on_chunk)
    STYLES = "styles"  # style mixing: weighted blends of text prompts
    LYRICS = "lyrics"  # sung words, a vocal language, instrumental (ACE-Step)
    REPAINT = "repaint"  # regenerate a span inside given audio (ACE-Step)
    ADD_LAYER = "add_layer"  # a new part over given audio (ACE-Step lego)
    EXTRACT = "extract"  # one instrument pulled out of given audio by the model (ACE-Step extract)
    COVER = "cover"  # given audio restyled by a new prompt (ACE-Step with its audio tokenizer)
    LORA = "lora"  # a LoRA adapter applied for one request, removed after it (ACE-Step)
    CODE_PROMPT = "code_prompt"  # continue from the model's own codes (prompt_codes), no re-encoding (the jam)
    CODE_STREAM = "code_stream"  # a stream that keeps its decoder state between requests (open_stream: the jam)


@dataclass(frozen=True)
class ModelInfo:
    name: str
    source_kind: str
    sample_rate: int
    channels: int
    frame_rate: float
    max_duration_s: float  # the model's window: prompt + new audio in one decode
    is_random: bool
    device: str
    parameters: int
    max_output_s: float = 0.0  # longest output per request; past max_duration_s by windowed re-prompting (0: none)
    capabilities: frozenset[Capability] = frozenset({Capability.TEXT})
    family: str = "musicgen"  # the family its config names: "musicgen" or "ace-step" (inference/loading.py:family)
    # How it runs, as resolved at load (weights, cache, the calibration's decision and figures, a DiT linear plan):
    # JSON-ready, written into every job's manifest.
    modes: dict = field(default_factory=dict, hash=False, compare=False)

    def __post_init__(self):
        if self.max_output_s < self.max_duration_s:
            object.__setattr__(self, "max_output_s", self.max_duration_s)
        object.__setattr__(self, "capabilities", frozenset(Capability(c) for c in self.capabilities))

    def supports(self, capability: Capability) -> bool:
        return capability in self.capabilities


@dataclass(frozen=True)
class MeasuredSpeed:
    """How fast a loaded model renders on this machine: seconds of work per second of audio (`rtf`; under 1 keeps
    up with real time). `source` says how it was measured: "warm-up" (a take at load, before any job) or "finished
    jobs" (the daemon's running figure); `load_1min` the machine's load then (shared machines differ ~2x)."""

    rtf: float
    audio_s: float  # the audio the figure was measured over
    source: str
    load_1min: float = 0.0

    def keeps_up(self) -> bool:
        return self.rtf < 1.0

    def describe(self) -> str:
        """One line for a musician: the figure, how it was measured, and whether it keeps up with playback."""
        how = f"RTF {self.rtf:.2f} measured at {self.source} ({self.audio_s:g} s of audio, load {self.load_1min:.1f})"
        if self.keeps_up():
            return f"{how}: faster than real time ({1 / self.rtf:.1f}x), keeps up with playback"
        return f"{how}: SLOWER than real time: a 4 s bar takes {4 * self.rtf:.1f} s; render ahead, not live"


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str
    duration_s: float
    seed: int
    temperature: float = 1.0
    top_k: int = 250
    top_p: float = 0.0
    guidance_scale: float = 3.0
    audio_prompt: np.ndarray | None = None  # (C, T) float32 at the model's sample rate and channel count
    # Codes to continue instead of audio (needs Capability.CODE_PROMPT): (K, P) int, the model's own frames (a jam's
    # sliding context, from GeneratedAudio.codes); never re-encoded, so a stream continues exactly what it played
    prompt_codes: np.ndarray | None = None
    styles: tuple[tuple[str, float], ...] = ()  # style mixing: (prompt, weight) blended with `prompt` (weight 1)
    melody: np.ndarray | None = None  # (C, T) float32 at the model's sample rate, any C: its chroma (of the mono
    # mix) conditions a melody model
    lyrics: str = ""  # sung words (needs Capability.LYRICS)
    vocal_language: str = ""  # language code of the lyrics, e.g. "en" ("": the model's default)
    instrumental: bool = False  # no vocals (needs Capability.LYRICS: the model is told so)
    bpm: float | None = None  # the session's metadata for models that take it (ACE-Step); MusicGen ignores it
    keyscale: str = ""  # e.g. "C minor"
    timesignature: str = ""  # beats per bar, e.g. "4"
    edit: AudioEdit | None = None  # an edit of given audio instead of new audio (repaint, ...)
    adapter: LoraAdapter | None = None  # a LoRA applied for this request only (needs Capability.LORA)


# The instruments ACE-Step's extract and lego tasks were trained on (ACE-Step's own TRACK_NAMES; diffusers'
# AceStepPipeline puts any track_name into its instruction, upper-cased, so the list is checked here).
TRACKS = ("woodwinds", "brass", "fx", "synth", "strings", "percussion", "keyboard", "guitar", "bass", "drums",
          "backing_vocals", "vocals")

EDIT_CAPABILITIES = {"repaint": Capability.REPAINT, "lego": Capability.ADD_LAYER, "extract": Capability.EXTRACT,
                     "cover": Capability.COVER}


@dataclass(frozen=True)
class AudioEdit:
    """Given audio to edit: `task` names the edit (a key of EDIT_CAPABILITIES); the result is as long as `audio`."""

    task: str
    audio: np.ndarray  # (C, T) float32 at the model's sample rate and channel count
    start_s: float = 0.0  # repaint: the span regenerated, in seconds of `audio`
    end_s: float = 0.0
    track: str = ""  # lego / extract: the instrument
    strength: float = 1.0  # cover: how much of the given audio's structure is kept

    def __post_init__(self):
        if self.task not in EDIT_CAPABILITIES:
            raise ValueError(f"unknown edit task {self.task!r}; known: {', '.join(EDIT_CAPABILITIES)}")
        if self.task in ("lego", "extract") and self.track not in TRACKS:
            raise ValueError(f"{self.task} needs a track, one of {', '.join(TRACKS)}; got {self.track!r}")


@dataclass(frozen=True)
class LoraAdapter:
    """A LoRA adapter file in diffusers' format, applied at `weight` (0: no effect, 1: as trained)."""

    name: str
    path: Path  # a .safetensors file, or a directory holding pytorch_lora_weights.safetensors
    weight: float = 1.0


@dataclass
class GeneratedAudio:
    audio: np.ndarray  # (C, T) float32 at the model's sample rate
    sample_rate: int
    seed: int
    codes: np.ndarray | None = None  # (K, frames) int64: the new frames' codes, where the engine has codes
    # A code prompt's last frames as decoded together with the new ones, (C, samples) just before `audio`: where
    # a stream joins its previous chunk, both renditions of that span exist, for a crossfade at the seam
    lead_in: np.ndarray | None = None


class CodeStream(Protocol):
    """One stream decoded request after request, its decoder state (self-attention KV cache, delay pattern) kept in
    between, so a request costs its own frames' steps, not its context's prefill again (Engine.open_stream; the
    jam's bars). Each `generate` continues `request.prompt_codes` (the stream's last frames, as every code prompt):
    where they are the end of what this stream made, it keeps decoding from its state; otherwise (a first request,
    a bank recalled, CFG turned on or off, the state past its length limit) it starts over from them, as a plain
    generate would, and keeps that state. A new prompt or styles condition the next frames (the cross-attention
    keys and values are recomputed; the history stays); temperature, top-k/p and guidance are sampling only.
    One caller at a time; its torch work runs on the engine's compute thread a step at a time, between the other
    jobs' steps, so a stream never holds the engine."""

    starts: int  # requests that started it over (prefilled their code prompt): the first, and each mismatch or limit
    continued: int  # requests continued from the kept state
    plain: int  # requests too long to keep even from a start over (prompt + new past its limit): Engine.generate's
    peak_bytes: int  # the most bytes its state (the KV cache) held
    label: str  # what its log lines start with: the caller's id for them ("job=ID" for a jam), "" for none

    def generate(self, request: GenerationRequest, *, should_cancel: CancelCheck | None = None) -> GeneratedAudio:
        """The next ceil(duration_s x frame rate) frames: their codes, audio and lead-in, as Engine.generate gives
        for a code prompt. A request that fails or is cancelled (Cancelled) leaves no state to continue: the next
        one starts over from its code prompt."""
        ...

    def close(self) -> None:
        """Let go of the state (its cache); the stream cannot be used after."""
        ...


class StopSignal(Protocol):
    def is_set(self) -> bool: ...


class Compute(Protocol):
    """The one thread that runs torch for an engine (inference/runtime/compute.py:ComputeThread is the one).

    A second thread running torch makes a second OpenMP team, and decoding ran at half speed on 2 cores, so every
    torch call of an engine, and the bridge's other torch work while it serves (stems, the next model's load),
    goes through `call`. `continuo serve` hands the main thread to `serve`; without a serving thread, the callers
    take turns running the work themselves.
    """

    def call(self, function: Callable[[], T]) -> T:
        """function() on the compute thread; its value, or its exception raised here."""
        ...

    def serve(self, stop: StopSignal, on_ready: Callable[[], None] | None = None) -> None:
        """Run every call on this thread until stop.is_set() and nothing is left; on_ready() once serving."""
        ...


@runtime_checkable
class Engine(Protocol):
    """A loaded model, as the bridge uses it: everything the bridge touches of an engine is declared here.

    Threads: the bridge runs `concurrent_jobs` worker threads on an engine, one job each, and they call generate
    and generate_batch at the same time. The engine's torch work runs on one compute thread, `compute`, whoever
    calls: our MusicGen engine's is its batch scheduler, which decodes the jobs of every caller together
    (continuous batching); the reference and ACE-Step run one request at a time on theirs. The bridge hands
    `compute` its other torch work too, and `continuo serve` runs it on the main thread. An engine whose work
    runs elsewhere (the cluster's proxy: its replicas compute) has none, and its calls run on the caller.
    """

    info: ModelInfo
    concurrent_jobs: int  # jobs the bridge runs on it at once (1: one after another)
    compute: Compute | None  # the thread its torch calls run on; None: it runs no torch here, calls run on the caller
    measured_speed: MeasuredSpeed | None  # measured by warm_up on this machine; None: not measured

    def warm_up(self) -> float:
        """Run a few decode steps so the first real render pays no set-up (and, where the engine measures it, set
        measured_speed); returns seconds."""
        ...

    def generate(self, request: GenerationRequest, *, on_progress: ProgressCallback | None = None,
                 should_cancel: CancelCheck | None = None,
                 on_chunk: ChunkCallback | None = None) -> GeneratedAudio:
        """One take; on_chunk(audio (C, samples)) only where info declares STREAMING."""
        ...

    def generate_batch(self, request: GenerationRequest, seeds: Sequence[int], *,
                       on_progress: ProgressCallback | None = None, should_cancel: CancelCheck | None = None,
                       on_chunk: ChunkCallback | None = None) -> list[GeneratedAudio]:
        """One take per seed, in seed order; on_chunk(audio (B, C, samples)) only where STREAMING is declared."""
        ...

    def open_stream(self, *, max_frames: int = 0) -> CodeStream:
        """A CodeStream (needs Capability.CODE_STREAM, else InferenceError saying what to do). max_frames: the most
        frames its state holds before it starts over from the request's code prompt (0: the model's window)."""
        ...

    def close(self) -> None:
        """Let go of what the engine holds outside this process (a cluster engine leaves or stops its cluster).
        In-process engines hold nothing there: their memory goes with their last reference."""
        ...
