"""Input files for a daemon on this machine: a file the daemon may not read where it lies is copied into its inbox.

The daemon reads inputs only under its input roots (by default its output root and an ``inbox/`` beside it),
so that a request cannot make it read any file the daemon's user can. A person on the command line should not
have to know that: the CLI copies such a file into the inbox, says so, and sends the copy's path.

Where the inbox is comes over the wire (``/continuo/welcome`` names it), not from this client's settings: the
daemon may have been started with other ``--output-root`` / ``--input-roots`` flags, another ``--config`` or
other ``CONTINUO_*`` variables than this shell has, and only the daemon knows which ones won. The welcome does not
list every input root, so a file is sent where it lies only when it is under the inbox; anything else (a previous
render included) is copied. A copy is named ``<stem>-<hash of its bytes>`` so the same file is copied once.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

HASH_CHARS = 10
CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class StagedInput:
    """The path to send, and where it came from when it was copied (None when sent as it was)."""

    path: Path
    copied_from: Path | None = None


class InputMissing(FileNotFoundError):
    """The input file does not exist on this machine."""


def stage_input(raw: str | os.PathLike, inbox: str | None) -> StagedInput:
    """The absolute path to send for the input file ``raw``: itself when it lies under ``inbox`` (or when no
    inbox is known: a daemon on another machine), else a copy in ``inbox``. InputMissing when it is not a file."""
    path = Path(raw).expanduser().absolute()
    if not path.is_file():
        raise InputMissing(f"input file {raw} does not exist (or is not a file)")
    if not inbox:
        return StagedInput(path)
    folder = Path(inbox)
    resolved = path.resolve()
    if resolved.is_relative_to(folder.resolve()):
        return StagedInput(path)
    target = folder / f"{path.stem}-{content_hash(resolved)}{path.suffix.lower()}"
    if not target.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f".{target.name}.partial"
        shutil.copyfile(resolved, partial)
        os.replace(partial, target)
    return StagedInput(target, copied_from=path)


def content_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()[:HASH_CHARS]
