"""The engine interface: every engine has every member of inference.api.Engine with its parameters, and
what each declares in ModelInfo.capabilities is what it does (declared: it works; not declared: refused)."""

from __future__ import annotations

import inspect
import re

import numpy as np
import pytest

from inference.acestep.engine import AceStepEngine
from inference.api import Capability, Engine, GenerationRequest, ModelInfo
from inference.errors import InferenceError
from inference.loading import load_engine, resolve_model
from inference.musicgen.engine import MusicGenEngine
from inference.musicgen.reference import ReferenceEngine

RATE = 32_000
NEXT_FAMILY = {Capability.LYRICS, Capability.REPAINT, Capability.ADD_LAYER}


def protocol_gaps(cls: type, protocol: type = Engine) -> list[str]:
    """What cls lacks of protocol: a data member it does not declare, a method it does not have, or a
    parameter of a method it does not take (by name and kind)."""
    gaps = []
    declared = {name for klass in cls.__mro__ for name in getattr(klass, "__annotations__", {})}
    gaps += [f"{name}: not declared" for name in protocol.__annotations__ if name not in declared and
             not hasattr(cls, name)]
    for name, member in vars(protocol).items():
        if name.startswith("_") or not inspect.isfunction(member):
            continue
        ours = getattr(cls, name, None)
        if not callable(ours):
            gaps.append(f"{name}: missing")
            continue
        have = inspect.signature(ours).parameters
        for parameter in inspect.signature(member).parameters.values():
            if parameter.name not in have or have[parameter.name].kind != parameter.kind:
                gaps.append(f"{name}: no {parameter.kind.description} parameter {parameter.name!r}")
    return gaps


@pytest.mark.parametrize("cls", [MusicGenEngine, ReferenceEngine, AceStepEngine])
def test_every_engine_has_every_member_of_the_protocol(cls):
    assert protocol_gaps(cls) == []


class Undeclared:
    """Every member of the protocol but info."""

    concurrent_jobs = 1
    measured_speed = None
    compute = None

    def close(self) -> None:
        pass

    def warm_up(self) -> float:
        return 0.0

    def generate(self, request, *, on_progress=None, should_cancel=None, on_chunk=None):
        return None

    def generate_batch(self, request, seeds, *, on_progress=None, should_cancel=None, on_chunk=None):
        return []

    def open_stream(self, *, max_frames=0):
        return None


class Complete(Undeclared):
    info: ModelInfo


class NoBatch(Complete):
    generate_batch = None


class NoChunk(Complete):
    def generate(self, request, *, on_progress=None, should_cancel=None):
        return None


def test_the_structural_check_fails_on_a_class_missing_a_member():
    assert protocol_gaps(Complete) == []
    assert protocol_gaps(Undeclared) == ["info: not declared"]
    assert protocol_gaps(NoBatch) == ["generate_batch: missing"]
    assert protocol_gaps(NoChunk) == ["generate: no keyword-only parameter 'on_chunk'"]
    assert not isinstance(Undeclared(), Engine)  # the runtime check sees the missing info too


@pytest.fixture(scope="module")
def engines(tiny_model_dir, tiny_melody_model_dir, tmp_path_factory):
    """name -> a loaded engine: the reference and ours on the plain tiny model, ours on the melody one."""
    def load(directory, backend, **modes):
        source = resolve_model(str(directory), tiny_dir=tmp_path_factory.mktemp("unused"))
        return load_engine(source, device="cpu", warm_up=False, backend=backend, **modes)

    return {
        "reference": load(tiny_model_dir, "transformers"),
        "ours": load(tiny_model_dir, "engine", weights="fp32"),
        "ours-melody": load(tiny_melody_model_dir, "engine", weights="fp32"),
    }


def test_what_each_engine_declares(engines):
    base = {Capability.TEXT, Capability.CONTINUATION, Capability.VARIATIONS}
    assert engines["reference"].info.capabilities == base
    # ours at fp32 takes a MusicGen LoRA per request (inference/musicgen/lora.py); a melody model has none to take
    ours = base | {Capability.STREAMING, Capability.STYLES, Capability.CODE_PROMPT}
    # and keeps a stream's decoder state (code_stream.py), which a melody model's prefix in the cache rules out
    assert engines["ours"].info.capabilities == ours | {Capability.LORA, Capability.CODE_STREAM}
    assert engines["ours-melody"].info.capabilities == ours | {Capability.MELODY}
    for engine in engines.values():
        assert isinstance(engine, Engine)
        assert not engine.info.capabilities & NEXT_FAMILY  # declared by nobody yet


def sine(seconds: float, channels: int = 1) -> np.ndarray:
    tone = 0.3 * np.sin(2 * np.pi * 220 * np.arange(int(seconds * RATE)) / RATE).astype(np.float32)
    return np.repeat(tone[None, :], channels, axis=0)


def request(**overrides) -> GenerationRequest:
    return GenerationRequest(**({"prompt": "warm piano", "duration_s": 0.2, "seed": 1} | overrides))


def use(engine, capability: Capability) -> None:
    """Ask engine for capability in the smallest request; assert it did what was asked."""
    if capability is Capability.CONTINUATION:
        out = engine.generate(request(audio_prompt=sine(0.3, engine.info.channels)))
        assert out.audio.shape[-1] == round(0.2 * RATE)
    elif capability is Capability.VARIATIONS:
        takes = engine.generate_batch(request(), [1, 2])
        assert [take.seed for take in takes] == [1, 2] and not np.allclose(takes[0].audio, takes[1].audio)
    elif capability is Capability.MELODY:
        assert np.isfinite(engine.generate(request(melody=sine(1.0))).audio).all()
    elif capability is Capability.STREAMING:
        chunks = []
        out = engine.generate(request(), on_chunk=chunks.append)
        assert chunks and np.allclose(np.concatenate(chunks, axis=-1), out.audio, atol=1e-5)
    elif capability is Capability.STYLES:
        assert np.isfinite(engine.generate(request(styles=(("dark techno", 0.5),))).audio).all()
    elif capability is Capability.CODE_PROMPT:
        codes = np.zeros((engine.info.channels * 4, 10), dtype=np.int64)
        out = engine.generate(request(prompt_codes=codes))
        assert out.audio.shape[-1] == round(0.2 * RATE) and out.codes.shape == (codes.shape[0], 10)
    elif capability is Capability.CODE_STREAM:
        stream = engine.open_stream()
        first = stream.generate(request())
        out = stream.generate(request(prompt_codes=first.codes))
        assert out.audio.shape[-1] == round(0.2 * RATE) and out.codes.shape == first.codes.shape
        stream.close()


CHECKED = [Capability.CONTINUATION, Capability.VARIATIONS, Capability.MELODY, Capability.STREAMING,
           Capability.STYLES, Capability.CODE_PROMPT, Capability.CODE_STREAM]


@pytest.mark.parametrize("capability", CHECKED, ids=[c.value for c in CHECKED])
@pytest.mark.parametrize("name", ["reference", "ours", "ours-melody"])
def test_declared_capabilities_are_what_the_engine_does(engines, name, capability):
    engine = engines[name]
    if engine.info.supports(capability):
        use(engine, capability)
    else:
        with pytest.raises(InferenceError, match=re.escape(engine.info.name)):
            use(engine, capability)


def test_the_reference_refuses_streaming_with_a_way_out(engines):
    with pytest.raises(InferenceError, match="cannot stream .*backend 'engine'"):
        engines["reference"].generate(request(), on_chunk=lambda audio: None)
    with pytest.raises(InferenceError, match="cannot stream"):
        engines["reference"].generate_batch(request(), [1, 2], on_chunk=lambda audio: None)


def test_a_plain_model_refuses_a_melody_in_its_own_words(engines):
    with pytest.raises(InferenceError, match="takes no melody; load a MusicGen-melody checkpoint"):
        engines["ours"].generate(request(melody=sine(1.0)))


@pytest.mark.parametrize("name", ["reference", "ours"])
def test_a_batch_without_seeds_is_refused(engines, name):
    with pytest.raises(InferenceError, match="at least one seed"):
        engines[name].generate_batch(request(), [])
