"""The MusicGen family's entry, as inference/loading.py's table reads it: detect, problems, load.

A MusicGen checkpoint is a Hugging Face folder whose config.json names model_type musicgen or musicgen_melody,
with its weights, processor config and tokenizer beside it. `load` reads it with transformers and serves it
with the backend asked for: "engine" (the default), our decoder (inference/musicgen/engine.py, also for melody
checkpoints), or "transformers", transformers' own generate (inference/musicgen/reference.py: fp32 on the CPU,
fp16 on CUDA), the reference in tests and benchmarks. Our engine copies what it keeps (T5, EnCodec, its decoder):
transformers maps safetensors privately and any tensor still viewing the map keeps the whole file resident, so
the transformers model is dropped and the heap trimmed (a musicgen-small daemon holds 2.0 GB after startup
instead of 3.6 GB).
"""

from __future__ import annotations

import json
from pathlib import Path

from inference.api import Engine
from inference.errors import ModelLoadError
from inference.musicgen.tiny import TINY_FILES, build_tiny_musicgen

NAME = "musicgen"  # ModelInfo.family
REAL_MODEL = ("facebook/musicgen-small", "/path/to/a/musicgen/checkpoint")  # a hub id, a local folder
MUSICGEN_TYPES = {"musicgen"}
MELODY_TYPES = {"musicgen_melody"}
WEIGHT_FILES = (
    "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json",
)
FEATURE_EXTRACTOR_FILES = ("preprocessor_config.json", "processor_config.json")
TOKENIZER_FILES = ("tokenizer.json", "spiece.model")


__all__ = ["NAME", "REAL_MODEL", "TINY_FILES", "build_tiny", "detect", "load", "load_style_model", "problems"]


def checkpoint_type(directory: Path) -> str | None:
    try:
        return json.loads((Path(directory) / "config.json").read_text()).get("model_type")
    except (OSError, ValueError):
        return None


def detect(directory: Path) -> bool:
    """directory's config.json names a MusicGen (plain or melody)."""
    return checkpoint_type(directory) in MUSICGEN_TYPES | MELODY_TYPES


def problems(directory: Path) -> list[str]:
    """What keeps directory from being a loadable MusicGen checkpoint; empty when nothing does."""
    directory = Path(directory)
    config_path = directory / "config.json"
    if not config_path.is_file():
        return [f"{config_path} is missing"]
    try:
        model_type = json.loads(config_path.read_text()).get("model_type")
    except (OSError, ValueError) as error:
        return [f"{config_path} is unreadable ({error})"]
    found = []
    if model_type not in MUSICGEN_TYPES | MELODY_TYPES:
        found.append(f"{config_path} has model_type {model_type!r}, expected 'musicgen' or 'musicgen_melody'")
    if not any((directory / name).is_file() for name in WEIGHT_FILES):
        found.append(f"no weights in {directory} (expected {' or '.join(WEIGHT_FILES)})")
    if not any((directory / name).is_file() for name in FEATURE_EXTRACTOR_FILES):
        found.append(f"no processor config in {directory} (expected {' or '.join(FEATURE_EXTRACTOR_FILES)})")
    if not any((directory / name).is_file() for name in TOKENIZER_FILES):
        found.append(f"no tokenizer in {directory} (expected {' or '.join(TOKENIZER_FILES)})")
    return found


def load(path: Path, *, name: str, source_kind: str, is_random: bool, device: str = "auto",
         backend: str = "engine", weights: str = "auto", kv_cache: str = "auto", attention: str = "auto",
         compile: bool = False, max_batch: int = 4, lora: str = "", lora_weight: float = 1.0,
         **_other_modes) -> Engine:
    """The checkpoint in path served by `backend` (not warmed up). Our engine takes the named weights / kv_cache /
    attention modes, decodes up to max_batch jobs together and merges the MusicGen LoRA at `lora` (a path) into its
    weights at load (inference/musicgen/lora.py); modes of other families (memory_budget_gb) do not apply."""
    import torch
    from transformers import AutoProcessor, MusicgenForConditionalGeneration, MusicgenMelodyForConditionalGeneration

    from inference.musicgen.reference import reference_from_hf_model
    from inference.runtime.device import pick_device
    from inference.runtime.memory import trim_heap

    found = problems(path)
    if found:
        raise ModelLoadError(f"cannot load {path}: " + "; ".join(found))
    target = pick_device(device)
    dtype = torch.float16 if target.type == "cuda" and backend == "transformers" else torch.float32
    try:
        melody = checkpoint_type(path) in MELODY_TYPES
        if melody and backend == "transformers":
            raise ModelLoadError(f"{path} is a MusicGen-melody checkpoint: our engine serves it (backend "
                                 "'engine'); the transformers reference backend serves plain MusicGen only")
        processor = AutoProcessor.from_pretrained(path, local_files_only=True)
        model_class = MusicgenMelodyForConditionalGeneration if melody else MusicgenForConditionalGeneration
        model = model_class.from_pretrained(path, dtype=dtype, local_files_only=True)
        model = model.eval()
        if backend == "transformers":
            return reference_from_hf_model(model.to(target), processor, name=name, source_kind=source_kind,
                                           is_random=is_random, device=str(target))
        engine = build_our_engine(model, processor, target, name=name, source_kind=source_kind, is_random=is_random,
                                  checkpoint=Path(path), weights=weights, kv_cache=kv_cache, attention=attention,
                                  compile=compile, max_batch=max_batch, lora=lora, lora_weight=lora_weight)
        del model  # our engine owns copies of what it keeps: the checkpoint's memory map can go
        trim_heap()
        return engine
    except ModelLoadError:
        raise
    except ValueError as error:  # a mode this device cannot run; the message names the alternatives
        raise ModelLoadError(f"cannot load {path}: {error}") from error
    except Exception as error:
        raise ModelLoadError(f"cannot load {path}: {type(error).__name__}: {error}") from error


def build_our_engine(model, processor, target, *, name: str, source_kind: str, is_random: bool,
                     checkpoint: Path | None = None, **modes) -> Engine:
    """Our decoder from the checkpoint's weights; transformers' decoder is dropped once mapped."""
    from inference.musicgen.engine import EngineOptions, engine_from_hf_model

    engine = engine_from_hf_model(
        model, processor.tokenizer, options=EngineOptions(**modes), device=target, name=name,
        source_kind=source_kind, is_random=is_random, chroma_extractor=getattr(processor, "feature_extractor", None),
        checkpoint=checkpoint,
    )
    del model.decoder  # its weights now live in our decoder
    return engine


def load_style_model(path: Path, device: str = "cpu", base_weights: str = "auto"):
    """The checkpoint in path loaded for style training (inference/musicgen/training.py:load_style_model)."""
    from inference.musicgen.training import load_style_model as load

    return load(path, device, base_weights)


def build_tiny(out_dir: Path) -> Path:
    """The tiny random MusicGen (inference/musicgen/tiny.py), the smoke model loading builds."""
    return build_tiny_musicgen(out_dir)
