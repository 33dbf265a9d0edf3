"""Decisions measured at load, saved per checkpoint and machine, so restarts and replicas reuse them.

A lossy mode is taken only after a measurement (MusicGen's calibration gate, inference/musicgen/calibration.py; the
ACE-Step DiT's linear plan, inference/acestep/dit_linears.py). A measurement on a shared machine can land either
side of its budget when it is close, so two loads could serve one seed differently; the first load's decision is
saved here and later loads on this machine reuse it. The key (`PlanKey`) is the checkpoint's content
(`checkpoint_fingerprint`), this CPU's instruction sets, torch's version, the settings the decision answered and a
format version: another checkpoint, CPU, torch or setting measures afresh. `continuo doctor` lists the saved
decisions for the configured model (`describe_plans`), and the speed the engine measured at warm-up beside them
(kinds ending in SPEED: a record of this machine, not a decision).

A decision's fields are its owner's, read by the owner with its own defaults: a field added later is absent from
older files, and the owner says what its absence means (MusicGen's LM heads: no "heads" is bf16 heads, as those
decisions were measured; calibration.Calibration.from_dict), so an older plan is reused as it was decided.

Files: one JSON per decision in plans_dir() (CONTINUO_PLANS_DIR, default ~/.cache/continuo/plans), written
atomically; an unreadable file is measured again, an unwritable folder is logged and the decision used anyway.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("continuo.inference")

FORMAT = 1
SAMPLES = 16  # slices of each weight file hashed, spread over its bytes
SAMPLE_BYTES = 4096
WEIGHT_SUFFIXES = (".safetensors", ".bin")


def plans_dir() -> Path:
    from inference.runtime.kernels import cache_dir

    return cache_dir("CONTINUO_PLANS_DIR", "plans")


def checkpoint_fingerprint(directory: Path) -> str:
    """A content hash of a checkpoint folder that reads about 100 KB, not its gigabytes: every config (*.json), and
    of every weight file below it its relative name, size, safetensors header (each tensor's name, dtype, shape and
    offsets) and SAMPLES slices spread over its bytes. A fine-tune changes every slice; a copy elsewhere keeps it."""
    directory = Path(directory)
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        relative = path.relative_to(directory).as_posix()
        if path.suffix == ".json":
            digest.update(relative.encode() + b"\0" + path.read_bytes())
        elif path.suffix in WEIGHT_SUFFIXES:
            digest.update(relative.encode() + b"\0" + weight_summary(path))
    return digest.hexdigest()


def weight_summary(path: Path) -> bytes:
    size = path.stat().st_size
    parts = [str(size).encode()]
    with path.open("rb") as file:
        if path.suffix == ".safetensors" and size >= 8:
            (header,) = struct.unpack("<Q", file.read(8))
            parts.append(file.read(min(header, size - 8)))
        for index in range(SAMPLES):
            file.seek(max(0, (size - SAMPLE_BYTES) * index // max(1, SAMPLES - 1)))
            parts.append(file.read(SAMPLE_BYTES))
    return b"\0".join(parts)


def machine_identity() -> str:
    """This CPU's instruction sets and torch's version: what kernels and their rounding depend on."""
    import torch

    from inference.runtime.kernels import cpu_features

    return f"{cpu_features().strip()}\ntorch {torch.__version__}"


@dataclass(frozen=True)
class PlanKey:
    """What a saved decision answered: kind (its owner), the checkpoint's fingerprint, the settings asked."""

    kind: str
    checkpoint: str
    settings: str

    def digest(self) -> str:
        identity = "\n".join([str(FORMAT), self.kind, self.checkpoint, self.settings, machine_identity()])
        return hashlib.sha256(identity.encode()).hexdigest()[:20]

    def path(self) -> Path:
        return plans_dir() / f"{self.kind}-{self.digest()}.json"


def load_plan(key: PlanKey) -> dict | None:
    """The decision saved for key on this machine, or None (never saved, or unreadable: measure again)."""
    path = key.path()
    try:
        saved = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        log.warning("saved plan %s is unreadable (%s); measuring again", path, error)
        return None
    return saved.get("decision") if isinstance(saved, dict) else None


def save_plan(key: PlanKey, decision: dict) -> Path | None:
    """decision (JSON-ready) saved for key; the path, or None when the folder cannot be written (logged)."""
    path = key.path()
    record = {"format": FORMAT, "kind": key.kind, "checkpoint": key.checkpoint, "settings": key.settings,
              "decision": decision}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        partial.write_text(json.dumps(record, indent=1))
        partial.replace(path)
        return path
    except OSError as error:
        log.warning("cannot save the %s plan in %s (%s): the next load measures again", key.kind, path.parent, error)
        return None


SPEED = "-speed"  # a kind ending so is a measured speed (inference/musicgen/engine.py:measure_speed), not a decision


def describe_plans(directory: Path) -> list[tuple[str, str, str]]:
    """(kind, settings, summary) per record saved for the checkpoint in directory, on this machine (for
    `continuo doctor`)."""
    fingerprint = checkpoint_fingerprint(directory)
    lines = []
    for path in sorted(plans_dir().glob("*.json")) if plans_dir().is_dir() else []:
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if record.get("checkpoint") != fingerprint or record.get("format") != FORMAT:
            continue
        if PlanKey(record.get("kind", ""), fingerprint, record.get("settings", "")).path().name != path.name:
            continue  # saved under another CPU or torch: this machine would measure again
        decision = record.get("decision") or {}
        lines.append((record.get("kind", ""), str(record.get("settings")), str(decision.get("summary", decision))))
    return lines
