"""Input files for a daemon on this machine: a file the daemon may not read where it lies is copied into its inbox.

The daemon reads inputs only under its input roots (by default its output root and an ``inbox/`` beside it),
so that a request cannot make it read any file the daemon's user can. A person on the command line should not
have to know that: the CLI copies such a file into the inbox, says so, and sends the copy's path.

Where the inbox is comes over the wire (``/continuo/welcome`` names it), not from this client's settings: the
daemon may have been started with other ``--output-root`` / ``--input-roots`` flags, another ``--config`` or
other ``CONTINUO_*`` variables than this shell has, and only the daemon knows which ones won. The welcome does not
list every input root, so a file is sent where it lies only when it is under the inbox or the output root (a
previous render, found through /continuo/storage; the daemon reads its output root unless input_roots leave it
out); anything else is copied. A copy is named ``<stem>-<hash of its bytes>`` so the same file is copied once; it is
written and checked by bridge/audio/inbox.py (a temporary name of its own, size and hash verified before the
rename, marked as Continuo's copy so the daemon may remove it after inbox_copies_age_s). Reusing a copy makes it
young again. A file of that name that is not Continuo's intact copy is never overwritten: the copy gets a name
of its own.

A folder (`continuo train-style`'s recordings) is staged the same way, file by file, into
``<inbox>/<folder name>-<hash of its files' names and hashes>/``: the same folder is copied once, and the same
path sent again resumes the same training. Retention prunes only the inbox's top level, so these copies stay until
someone removes them (the CLI says where they are).
"""

from __future__ import annotations

import hashlib
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from bridge.audio.inbox import copy_verified, is_owned_copy, sha256_of

HASH_CHARS = 10


@dataclass(frozen=True)
class StagedInput:
    """The path to send, and where it came from when it was copied (None when sent as it was)."""

    path: Path
    copied_from: Path | None = None


class InputMissing(FileNotFoundError):
    """The input file does not exist on this machine."""


def stage_input(raw: str | os.PathLike, inbox: str | None, output_root: str | None = None) -> StagedInput:
    """The absolute path to send for the input file ``raw``: itself when it lies under ``inbox`` or the daemon's
    ``output_root`` (a render: the daemon then knows it as its own), or when no inbox is known (a daemon on another
    machine), else a verified copy in ``inbox``. InputMissing when it is not a file; IoError or DiskFull
    (bridge.errors) when the copy cannot be made."""
    path = Path(raw).expanduser().absolute()
    if not path.is_file():
        raise InputMissing(f"input file {raw} does not exist (or is not a file)")
    if not inbox:
        return StagedInput(path)
    folder = Path(inbox)
    resolved = path.resolve()
    if any(resolved.is_relative_to(Path(root).resolve()) for root in (inbox, output_root) if root):
        return StagedInput(path)
    sha256 = sha256_of(resolved)
    target = folder / f"{path.stem}-{sha256[:HASH_CHARS]}{path.suffix.lower()}"
    if is_owned_copy(target, sha256):
        os.utime(target)  # reused: young again, so retention does not take it from under the job
        return StagedInput(target, copied_from=path)
    if target.exists() or target.is_symlink():  # someone's own file of that name: never overwritten
        target = target.with_name(f"{path.stem}-{sha256[:HASH_CHARS]}-{uuid.uuid4().hex[:6]}{path.suffix.lower()}")
    copy_verified(resolved, target, sha256=sha256, made_by="cli")
    return StagedInput(target, copied_from=path)


def content_hash(path: Path) -> str:
    """The short hash a copy's name carries."""
    return sha256_of(path)[:HASH_CHARS]


def stage_folder(raw: str | os.PathLike, inbox: str | None, output_root: str | None = None) -> StagedInput:
    """The absolute folder to send for the folder ``raw``: itself when it lies under ``inbox`` or ``output_root`` or
    no inbox is known, else a verified copy of its visible files (not its subfolders) in a folder of the inbox
    (module docstring). InputMissing when it is not a folder; IoError or DiskFull when a copy cannot be made."""
    path = Path(raw).expanduser().absolute()
    if not path.is_dir():
        raise InputMissing(f"folder {raw} does not exist (or is not a folder)")
    resolved = path.resolve()
    if not inbox or any(resolved.is_relative_to(Path(root).resolve()) for root in (inbox, output_root) if root):
        return StagedInput(path)
    files = sorted(p for p in resolved.iterdir() if p.is_file() and not p.name.startswith("."))
    hashes = {file.name: sha256_of(file) for file in files}
    digest = hashlib.sha256("".join(f"{name}\0{sha}\n" for name, sha in hashes.items()).encode()).hexdigest()
    target = Path(inbox) / f"{path.name}-{digest[:HASH_CHARS]}"
    for file in files:
        copy = target / file.name
        if is_owned_copy(copy, hashes[file.name]):
            os.utime(copy)
            continue
        if copy.exists() or copy.is_symlink():  # not Continuo's intact copy: a folder of its own instead
            return stage_folder_fresh(files, hashes, target.with_name(f"{target.name}-{uuid.uuid4().hex[:6]}"), path)
        copy_verified(file, copy, sha256=hashes[file.name], made_by="cli")
    return StagedInput(target, copied_from=path)


def stage_folder_fresh(files: list[Path], hashes: dict[str, str], target: Path, source: Path) -> StagedInput:
    for file in files:
        copy_verified(file, target / file.name, sha256=hashes[file.name], made_by="cli")
    return StagedInput(target, copied_from=source)
