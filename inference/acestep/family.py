"""The ACE-Step family's entry, as inference/loading.py's table reads it: detect, problems, load.

The config decides the family: a directory whose model_index.json names AceStepPipeline is an ACE-Step pipeline.
Resolution (local, cache, download, offline error, the smoke fallback) is loading's, the same for every family.
`load` reads the pipeline with diffusers' own `AceStepPipeline.from_pretrained`: fp32 on the CPU, bf16 on CUDA.
With `memory_budget_gb` on CUDA and components that do not all fit in it, the three-phase placement
(inference/acestep/phases.py) keeps the largest that leave every phase room resident and moves the rest in for
their phase only. On the CPU the DiT's linears then run as the `weights` setting says (inference/acestep/
dit_linears.py: auto measures each kind on captured activations within an error budget, then times the ones
within it, and saves the plan per checkpoint and machine; fp32 converts none and keeps parity with diffusers).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from inference.acestep.tiny import TINY_FILES, build_tiny_acestep
from inference.api import Capability, Engine, ModelInfo
from inference.errors import ModelLoadError

if TYPE_CHECKING:
    import torch

    from inference.acestep.phases import PhasePlacement

log = logging.getLogger("continuo.inference")

__all__ = ["NAME", "REAL_MODEL", "TINY_FILES", "build_tiny", "detect", "load", "load_style_model", "problems"]

NAME = "ace-step"  # ModelInfo.family (and the tiny build's marker: acestep/tiny.py:FAMILY)
REAL_MODEL = ("ACE-Step/acestep-v15-xl-turbo-diffusers", "/path/to/an/ace-step/diffusers/pipeline")  # hub id, folder
PIPELINE_CLASS = "AceStepPipeline"
REQUIRED_COMPONENTS = ("vae", "text_encoder", "tokenizer", "transformer", "condition_encoder", "scheduler")
WEIGHTED_COMPONENTS = ("vae", "transformer", "condition_encoder", "text_encoder")
CAPABILITIES = frozenset({Capability.TEXT, Capability.LYRICS, Capability.REPAINT, Capability.VARIATIONS,
                          Capability.LORA, Capability.EXTRACT, Capability.ADD_LAYER})


def detect(directory: Path) -> bool:
    """directory holds a diffusers pipeline whose model_index.json names AceStepPipeline."""
    try:
        index = json.loads((Path(directory) / "model_index.json").read_text())
    except (OSError, ValueError):
        return False
    return index.get("_class_name") == PIPELINE_CLASS


def problems(directory: Path) -> list[str]:
    """What keeps directory from being a loadable ACE-Step pipeline; empty when nothing does."""
    directory = Path(directory)
    index_path = directory / "model_index.json"
    try:
        index = json.loads(index_path.read_text())
    except (OSError, ValueError) as error:
        return [f"{index_path} is missing or unreadable ({error})"]
    found = []
    if index.get("_class_name") != PIPELINE_CLASS:
        found.append(f"{index_path} names {index.get('_class_name')!r}, expected {PIPELINE_CLASS!r}")
    unlisted = [name for name in REQUIRED_COMPONENTS if name not in index]
    if unlisted:  # one line, the path once: the message travels in a 1 KB error event
        found.append(f"{index_path} lists no {', '.join(unlisted)}")
    for name in REQUIRED_COMPONENTS:
        folder = directory / name
        if name in index and (not folder.is_dir() or not any(folder.iterdir())):
            found.append(f"component folder {folder} is missing or empty")
    for name in WEIGHTED_COMPONENTS:
        folder = directory / name
        if folder.is_dir() and not any(p.suffix in (".safetensors", ".bin") or p.name.endswith(".index.json")
                                       for p in folder.iterdir()):
            found.append(f"no weights in {folder}")
    return found


def load(path: Path, *, name: str, source_kind: str, is_random: bool, device: str = "auto",
         backend: str = "engine", weights: str = "auto", memory_budget_gb: float = 0.0, **_other_modes) -> Engine:
    """The pipeline in path as an AceStepEngine (not warmed up). Modes of other families (kv_cache, attention,
    compile, max_batch) do not apply; the transformers backend is MusicGen's alone."""
    import torch
    from diffusers import AceStepPipeline

    from inference.acestep.dit_linears import resolve_dit_mode
    from inference.acestep.engine import BASE_STEPS, TURBO_STEPS, AceStepEngine
    from inference.runtime.device import mps_bf16_supported, pick_device

    if backend != "engine":
        raise ModelLoadError(f"{path} is an ACE-Step pipeline; backend {backend!r} serves MusicGen only "
                             "(drop --backend or pass --backend engine)")
    found = problems(path)
    if found:
        raise ModelLoadError(f"cannot load {path} as an ACE-Step pipeline: " + "; ".join(found))
    target = pick_device(device)
    dtype = torch.bfloat16 if target.type == "cuda" or (target.type == "mps" and mps_bf16_supported()) \
        else torch.float32
    try:
        mode = resolve_dit_mode(weights, target)
    except ValueError as error:
        raise ModelLoadError(f"cannot load {path}: {error}") from error
    try:
        pipeline = AceStepPipeline.from_pretrained(path, dtype=dtype, local_files_only=True)
        placement = place_components(pipeline, target, memory_budget_gb)
        engine = AceStepEngine(pipeline, describe_pipeline(pipeline, name=name, source_kind=source_kind,
                                                           is_random=is_random, device=str(target)),
                               steps=TURBO_STEPS if pipeline.is_turbo else BASE_STEPS, placement=placement)
        engine.convert_linears(mode, checkpoint=Path(path))
    except ModelLoadError:
        raise
    except Exception as error:
        raise ModelLoadError(f"cannot load {path} as an ACE-Step pipeline: "
                             f"{type(error).__name__}: {error}") from error
    return engine


def load_style_model(path: Path, device: str = "cpu", base_weights: str = "auto"):
    """The checkpoint in path loaded for style training (inference/acestep/training.py:load_style_model)."""
    from inference.acestep.training import load_style_model as load

    return load(path, device, base_weights)


def build_tiny(out_dir: Path) -> Path:
    """The tiny random ACE-Step pipeline (inference/acestep/tiny.py)."""
    return build_tiny_acestep(out_dir)


def place_components(pipeline, target: torch.device, memory_budget_gb: float) -> PhasePlacement | None:
    """Everything onto target (None), or a PhasePlacement (a budget on CUDA that not all components fit in): only
    the resident components go to target; the others wait on the CPU for their phase. On the CPU the budget
    changes nothing."""
    from inference.acestep.engine import components
    from inference.acestep.phases import GB, component_bytes, plan_placement

    if memory_budget_gb > 0 and target.type == "cpu":
        log.info("memory_budget_gb %g: no effect on the CPU (every component stays in RAM; the three-phase "
                 "placement moves components to and from a GPU)", memory_budget_gb)
    modules = components(pipeline)
    placement = plan_placement(component_bytes(modules), int(memory_budget_gb * GB), target)
    if placement is None:
        pipeline.to(target)
        return None
    for name in placement.resident:
        modules[name].to(target)
    sizes = component_bytes(modules)
    log.info("memory_budget_gb %g on %s: resident %s (%.2f GB); moved per phase: %s", memory_budget_gb, target,
             ", ".join(sorted(placement.resident)) or "none", sum(sizes[n] for n in placement.resident) / GB,
             ", ".join(sorted(set(modules) - placement.resident)))
    return placement


def describe_pipeline(pipeline, *, name: str, source_kind: str, is_random: bool, device: str) -> ModelInfo:
    """ModelInfo from the pipeline's configs: 48 kHz stereo, 25 latent frames per second, the silence latent's
    length as the window (the longest source the condition encoder has silence for)."""
    vae = pipeline.vae.config
    frames = pipeline.condition_encoder.silence_latent.shape[1]
    parameters = sum(p.numel() for module in (pipeline.transformer, pipeline.condition_encoder,
                                              pipeline.text_encoder, pipeline.vae) for p in module.parameters())
    return ModelInfo(
        name=name, source_kind=source_kind, sample_rate=int(vae.sampling_rate), channels=int(vae.audio_channels),
        frame_rate=pipeline.latents_per_second, max_duration_s=frames / pipeline.latents_per_second,
        is_random=is_random, device=device, parameters=parameters, capabilities=capabilities(pipeline),
        family=NAME,
    )


def capabilities(pipeline) -> frozenset[Capability]:
    """CAPABILITIES, and COVER where the pipeline holds its optional audio tokenizer and detokenizer (the cover
    task quantises the given audio to 5 Hz tokens and back; without them diffusers raises)."""
    has_tokenizers = getattr(pipeline, "audio_tokenizer", None) is not None and \
        getattr(pipeline, "audio_token_detokenizer", None) is not None
    return CAPABILITIES | {Capability.COVER} if has_tokenizers else CAPABILITIES
