"""The smoke marker: a random model says so on disk, so that it is never presented as music.

Every tiny builder (inference/musicgen/tiny.py, inference/acestep/tiny.py) writes SMOKE_MARKER last into the
folder it builds; inference/loading.py reads it to call a model random wherever it was found (local, cache,
download), to name it ("... (SMOKE: noise, not music)") and to reuse a tiny build only when its format is current.
With no real checkpoint (no --model directory, nothing in the Hugging Face cache, no network) the daemon serves a
tiny random MusicGen (inference/musicgen/tiny.py, the real architecture and rates) and says so loudly: a log
banner (inference/loading.py:warn_random, naming a real model of the family), the model name every client sees,
and each manifest.json. --no-allow-smoke-model makes that a startup error.
"""

from __future__ import annotations

import json
from pathlib import Path

SMOKE_MARKER = "continuo_smoke.json"
FORMAT_VERSION = 1  # of the tiny builds: bump when a builder writes something else, so older builds are rebuilt
WARNING = "random weights: produces noise, not music"


def write_marker(out_dir: Path, *, name: str, **fields: object) -> None:
    """The marker of a random model built into out_dir: its name, the format version, and what built it."""
    marker = {"smoke": True, "warning": WARNING, "name": name, "format_version": FORMAT_VERSION, **fields}
    (Path(out_dir) / SMOKE_MARKER).write_text(json.dumps(marker, indent=2) + "\n")


def read_marker(directory: Path) -> dict | None:
    """The smoke marker of a checkpoint directory, or None when it carries none."""
    path = Path(directory) / SMOKE_MARKER
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {"smoke": True, "unreadable": True}


def has_marker(directory: Path) -> bool:
    return (Path(directory) / SMOKE_MARKER).is_file()
