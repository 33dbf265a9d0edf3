"""LoRA adapters on disk: what a LoRA directory holds, by name (no torch: the bridge lists and admits with it).

An adapter named NAME is either the file NAME.safetensors or the directory NAME/ holding diffusers' default
weight file (pytorch_lora_weights.safetensors, what `AceStepPipeline.save_lora_weights` writes). Loading one
into a model is the engine's (`inference/acestep/engine.py:AceStepEngine.adapter_applied`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

WEIGHT_NAME = "pytorch_lora_weights.safetensors"  # diffusers' LORA_WEIGHT_NAME_SAFE
ADAPTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")  # the schema's adapter name pattern


@dataclass(frozen=True)
class LoraHyperparameters:
    """What every family's LoRA training is asked (inference/musicgen/training.py, inference/acestep/training.py
    add their own schedule): rank, alpha (the adapter adds alpha / rank * B A), AdamW's learning rate, the seed."""

    rank: int = 8
    alpha: float = 16.0
    learning_rate: float = 1e-4
    seed: int = 0


def find_adapters(directory: Path | None) -> dict[str, Path]:
    """{name: path} of every adapter in directory, sorted by name; {} when it does not exist."""
    if directory is None or not directory.is_dir():
        return {}
    found = {}
    for entry in directory.iterdir():
        if entry.is_file() and entry.suffix == ".safetensors":
            found[entry.stem] = entry
        elif entry.is_dir() and (entry / WEIGHT_NAME).is_file():
            found[entry.name] = entry
    return {name: found[name] for name in sorted(found) if ADAPTER_NAME.fullmatch(name)}


def weight_file(path: Path) -> Path:
    """The .safetensors file of an adapter path (a file, or a directory holding WEIGHT_NAME)."""
    return path / WEIGHT_NAME if path.is_dir() else path


def write_card(directory: Path, card: dict) -> Path:
    """directory/card.json (what an adapter was made from), written to a partial name and renamed: written last, so
    a directory with a card is complete. The directory."""
    partial = Path(directory) / ".card.json.partial"
    partial.write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
    partial.replace(Path(directory) / "card.json")
    return Path(directory)
