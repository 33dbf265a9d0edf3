"""Admission against what the model declares: each setting or op that needs a capability is refused,
naming the model and the capability, when the model lacks it, and admitted when it has it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bridge.audio.context import MusicalContext
from bridge.audio.presets import Preset
from bridge.errors import BadRequest
from bridge.jobs.capabilities import check_capabilities, needed_capabilities
from bridge.jobs.plan import RenderPlan
from inference.api import Capability, ModelInfo

PLAIN = ModelInfo(name="plain-model", source_kind="local", sample_rate=32000, channels=1, frame_rate=50.0,
                  max_duration_s=30.0, is_random=False, device="cpu", parameters=0)
PLAN = RenderPlan(op="generate", preset=Preset(name="default", path=Path()), context=MusicalContext(), bars=1.0,
                  prompt="x", seed=0, input_path=None)
INPUT = Path("/inbox/loop.wav")

CASES = {  # name -> (plan, the capability it needs, words the refusal must carry)
    "melody": (replace(PLAN, melody_path=INPUT), Capability.MELODY, "MusicGen-melody"),
    "stream": (replace(PLAN, stream=True), Capability.STREAMING, "stream 1"),
    "style": (replace(PLAN, styles=(("dark", 0.5),)), Capability.STYLES, "style"),
    "continue": (replace(PLAN, op="continue", input_path=INPUT), Capability.CONTINUATION, "/continuo/continue"),
    "variations of an input": (replace(PLAN, op="variations", input_path=INPUT, count=2), Capability.CONTINUATION,
                               "/continuo/variations of an input"),
    "variations": (replace(PLAN, op="variations", count=2), Capability.VARIATIONS, "/continuo/variations"),
    "lora": (replace(PLAN, lora="grain"), Capability.LORA, "the lora setting"),
}


@pytest.mark.parametrize("case", CASES)
def test_a_missing_capability_is_refused_naming_model_and_capability(case):
    plan, capability, words = CASES[case]
    info = replace(PLAIN, capabilities=frozenset(Capability) - {capability})
    with pytest.raises(BadRequest) as refused:
        check_capabilities(plan, info, "job-1")
    message = refused.value.message
    assert refused.value.code == "bad_request" and refused.value.job_id == "job-1"
    assert "plain-model" in message and f"'{capability.value}'" in message and words in message


@pytest.mark.parametrize("case", CASES)
def test_a_declared_capability_is_admitted(case):
    plan, capability, _ = CASES[case]
    needs = {need for need, _ in needed_capabilities(plan)}
    assert capability in needs
    check_capabilities(plan, replace(PLAIN, capabilities=needs), "job-1")  # exactly what it needs: admitted


def test_a_plain_generate_needs_nothing_but_text_and_stems_nothing_at_all():
    assert needed_capabilities(PLAN) == []
    check_capabilities(PLAN, PLAIN, "job-1")
    stems = replace(PLAN, op="stems", input_path=INPUT, stream=True)  # the generator is not used
    assert needed_capabilities(stems) == []
