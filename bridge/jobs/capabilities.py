"""What a request needs of the loaded model, checked at admission against what the model declares.

A request for something the model cannot do is refused before anything is journalled,
with a bad_request that names the model and the missing capability. The engines refuse
such requests too (an InferenceError), so a job journalled under another model and re-run
after a restart fails with a clear message instead of rendering something else.
"""

from __future__ import annotations

from bridge.errors import BadRequest
from bridge.jobs.plan import INPUT_OPS, RenderPlan
from inference.api import Capability, ModelInfo

# How a client gets what it asked for when the model lacks the capability.
REMEDIES = {
    Capability.MELODY: "serve a MusicGen-melody checkpoint (serve --model facebook/musicgen-melody) or drop the "
                       "melody setting",
    Capability.STREAMING: "serve with --backend engine (the default: our engine streams) or send stream 0",
    Capability.STYLES: "serve with --backend engine (the default: our engine mixes styles) or drop style and "
                       "style_weight",
    Capability.CONTINUATION: "serve a model that continues audio, or send /continuo/generate without an input",
    Capability.VARIATIONS: "serve a model that renders variations, or send /continuo/generate once per take",
    Capability.LYRICS: "serve an ACE-Step pipeline (serve --model ACE-Step/acestep-v15-xl-turbo-diffusers) or drop "
                       "lyrics, vocal_language and instrumental",
    Capability.REPAINT: "serve an ACE-Step pipeline (serve --model ACE-Step/acestep-v15-xl-turbo-diffusers) to "
                        "repaint a range of a clip",
    Capability.EXTRACT: "serve an ACE-Step pipeline (serve --model ACE-Step/acestep-v15-xl-turbo-diffusers) to "
                        "extract a track with the model, or separate with /continuo/stems (HDemucs)",
    Capability.ADD_LAYER: "serve an ACE-Step pipeline (serve --model ACE-Step/acestep-v15-xl-turbo-diffusers) to "
                          "add a layer to a clip",
    Capability.COVER: "serve an ACE-Step pipeline with its audio tokenizer (serve --model "
                      "ACE-Step/acestep-v15-xl-turbo-diffusers) to cover a clip",
    Capability.LORA: "serve an ACE-Step pipeline (serve --model ACE-Step/acestep-v15-xl-turbo-diffusers) to apply "
                     "a LoRA adapter, or drop lora and lora_weight",
}


# The edit requests and what each needs of the model.
EDIT_OP_CAPABILITIES = {"repaint": Capability.REPAINT, "extract": Capability.EXTRACT, "layer": Capability.ADD_LAYER,
                        "cover": Capability.COVER}


def needed_capabilities(plan: RenderPlan) -> list[tuple[Capability, str]]:
    """(capability, what in the request asks for it) for every capability the plan needs beyond text."""
    if plan.op in INPUT_OPS:
        return []  # separation and transcription only: the generator is not used
    needs = []
    if plan.op == "continue" or (plan.op == "variations" and plan.input_path is not None):
        needs.append((Capability.CONTINUATION, f"/continuo/{plan.op} of an input file"))
    if plan.op == "variations":
        needs.append((Capability.VARIATIONS, "/continuo/variations"))
    if plan.melody_path is not None:
        needs.append((Capability.MELODY, "the melody setting"))
    if plan.stream:
        needs.append((Capability.STREAMING, "stream 1"))
    if plan.styles:
        needs.append((Capability.STYLES, "style (style mixing)"))
    if plan.lyrics or plan.vocal_language or plan.instrumental:
        needs.append((Capability.LYRICS, "the lyrics, vocal_language or instrumental setting"))
    if plan.op in EDIT_OP_CAPABILITIES:
        needs.append((EDIT_OP_CAPABILITIES[plan.op], f"/continuo/{plan.op}"))
    if plan.lora:
        needs.append((Capability.LORA, "the lora setting"))
    return needs


def check_capabilities(plan: RenderPlan, info: ModelInfo, job_id: str) -> None:
    """Refuse a plan that needs a capability the model behind ``info`` lacks (BadRequest)."""
    for capability, asked_by in needed_capabilities(plan):
        if not info.supports(capability):
            raise BadRequest(f"{asked_by} needs the model capability '{capability.value}'; this daemon serves "
                             f"{info.name}, which lacks it: {REMEDIES[capability]}", job_id=job_id)
