"""From a validated request to a render plan: preset with overrides, musical context, seed, input.

The same function runs when a request arrives (so every mistake is answered at
once, before anything is queued) and when the worker starts the job.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.context import MusicalContext
from bridge.errors import BadRequest, NotFound
from bridge.presets import Preset

CONTEXT_KEYS = ("bpm", "beats_per_bar", "beat_unit", "key", "sample_rate")


@dataclass(frozen=True)
class RenderPlan:
    op: str
    preset: Preset
    context: MusicalContext
    bars: float
    prompt: str
    seed: int
    input_path: Path | None

    @property
    def duration_s(self) -> float:
        return self.context.seconds_for_bars(self.bars)

    @property
    def frames(self) -> int:
        return self.context.frames_for_bars(self.bars)


def job_params(op: str, args: Mapping[str, Any], settings: Mapping[str, Any], context: MusicalContext) -> dict:
    """What the journal keeps to run the job (again): JSON-safe, seed fixed once."""
    params = {
        "preset": args["preset"],
        "prompt": args.get("prompt", ""),
        "bars": float(args["bars"]),
        "input_path": args.get("input_path") or None,
        "settings": dict(settings),
        "context": {key: getattr(context, key) for key in CONTEXT_KEYS},
    }
    if "seed" not in settings:
        params["seed"] = secrets.randbelow(2**31 - 1)
    return params


def build_plan(op: str, params: Mapping[str, Any], presets: Mapping[str, Preset],
               input_roots: Sequence[Path]) -> RenderPlan:
    preset_name = params["preset"]
    if preset_name not in presets:
        raise NotFound(f"unknown preset {preset_name!r}; known: {', '.join(sorted(presets))} (/continuo/presets lists them)")
    settings = dict(params.get("settings", {}))
    context_changes = {key: settings.pop(key) for key in CONTEXT_KEYS if key in settings}
    context = MusicalContext(**params["context"]).replace(**context_changes)
    preset = presets[preset_name].with_overrides(settings)
    seed = preset.seed if preset.seed is not None else int(params["seed"])
    input_path = resolve_input(params["input_path"], input_roots) if params.get("input_path") else None
    if op == "continue" and input_path is None:
        raise BadRequest("continue needs an input file: send /continuo/continue <job_id> <preset> <absolute wav path> <bars>")
    return RenderPlan(op=op, preset=preset, context=context, bars=float(params["bars"]),
                      prompt=preset.render_prompt(params.get("prompt", ""), context), seed=seed,
                      input_path=input_path)


def resolve_input(raw: str, input_roots: Sequence[Path]) -> Path:
    """An input path, symlinks resolved, that must lie under one of the input roots and exist."""
    path = Path(raw).expanduser()
    if not path.is_absolute():
        raise BadRequest(f"input path {raw!r} is not absolute; send the full path, e.g. /Users/me/Music/clip.wav")
    resolved = path.resolve()
    if not any(resolved.is_relative_to(root) for root in input_roots):
        roots = ", ".join(str(r) for r in input_roots)
        raise BadRequest(f"input path {raw!r} is outside the allowed input folders ({roots}); "
                         "copy the file into one of them or add its folder to input_roots")
    if not resolved.is_file():
        raise NotFound(f"input file {raw!r} does not exist (or is not a file)")
    return resolved
