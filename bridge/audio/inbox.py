"""The inbox: a folder the daemon reads inputs from, shared by people and by Continuo's own copies.

Who writes there: a person (their own clips, never touched), the CLI (a copy of a file that lies outside the
input roots, bridge/clients/inbox.py), the HTTP upload (bridge/transports/http.py) and inline ZeroMQ audio
(bridge/transports/zmq.py). Every copy Continuo makes is marked as its own: a marker file
``<inbox>/.continuo/<name>.json`` holding the copy's size and sha256. Retention (bridge/jobs/retention.py)
removes a copy only when its marker is there and the file still has that size and that hash, after
inbox_copies_age_s since it was made or last reused, and never while a queued or running job reads it. A file
without a marker is never removed, whatever its name (an older daemon pruned by the name ``zmq-*.wav``, which a
person's file could share); a marked copy someone changed loses its marker and is kept.

Staging is safe when two writers stage the same file at once: each writes its own temporary name
(``.<name>.<random>.partial``, bridge.audio.files.partial_name), fsyncs it, checks its size and sha256 against
what it meant to write, and only then renames it into place. Two stagings of one file both end with a correct
copy (the second rename replaces a complete copy with an identical one); a copy that does not match (the source
changed while it was read, a short write) is removed and reported, never renamed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from bridge.audio.files import disk_error, partial_name, replace_file, write_bytes_atomic
from bridge.errors import IoError

log = logging.getLogger("continuo.inbox")

MARKER_DIR = ".continuo"  # <inbox>/.continuo/<name>.json: the copies Continuo made
STAGING_AGE_S = 3600.0  # a temporary staging file this old is a killed writer's left-over
CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class Marker:
    """What Continuo wrote: the copy's size and sha256, who made it and when."""

    size: int
    sha256: str
    made_by: str
    made_at: float


def marker_path(path: Path) -> Path:
    return path.parent / MARKER_DIR / f"{path.name}.json"


def mark_owned(path: Path, *, size: int, sha256: str, made_by: str) -> None:
    """Record path (in an inbox) as a copy Continuo made, with its size and hash."""
    marker = Marker(size=size, sha256=sha256, made_by=made_by, made_at=time.time())
    write_bytes_atomic(marker_path(path), json.dumps(marker.__dict__).encode())


def read_marker(path: Path) -> Marker | None:
    try:
        return Marker(**json.loads(marker_path(path).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def is_owned_copy(path: Path, sha256: str | None = None) -> bool:
    """path is a copy Continuo made and nobody changed since (size and hash as marked; of these bytes when
    sha256 is given)."""
    marker = read_marker(path)
    if marker is None or (sha256 is not None and marker.sha256 != sha256):
        return False
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size != marker.size:
            return False
        return sha256_of(path) == marker.sha256
    except OSError:
        return False


def write_owned(path: Path, data: bytes | memoryview, *, made_by: str) -> None:
    """data as the inbox file path (atomic, unique temporary name), marked as Continuo's (the marker first: a
    copy is never visible unmarked, so another stager never takes it for a person's file)."""
    mark_owned(path, size=len(memoryview(data).cast("B")), sha256=hashlib.sha256(data).hexdigest(), made_by=made_by)
    write_bytes_atomic(path, data)


def copy_verified(source: Path, target: Path, *, sha256: str, made_by: str) -> None:
    """Copy source to target through a temporary name of its own; rename only a copy whose size and sha256
    match source's (sha256, hashed before), marked as Continuo's. IoError (or DiskFull) otherwise, nothing left."""
    partial = partial_name(target)
    try:
        size = source.stat().st_size
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, partial)
        with open(partial, "rb+") as handle:  # Windows' fsync (_commit) refuses a handle opened read-only
            os.fsync(handle.fileno())
        if partial.stat().st_size != size or sha256_of(partial) != sha256:
            raise IoError(f"the copy of {source} did not match it (the file changed while it was copied, or the "
                          "write was short); nothing was staged: send it again")
        mark_owned(target, size=size, sha256=sha256, made_by=made_by)  # before the copy is visible (write_owned)
        replace_file(partial, target)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise disk_error(exc, target) from exc
    except BaseException:  # a copy that did not match, a marker that could not be written: nothing is left
        partial.unlink(missing_ok=True)
        raise


def prune_inbox(inbox: Path, *, max_age_s: float, in_use: Collection[Path] = (), now: float | None = None) -> int:
    """Remove Continuo's own copies older than max_age_s (0: none) that no job in in_use reads, and staging
    left-overs older than STAGING_AGE_S; returns how many files went. Nothing unmarked is ever removed."""
    if not inbox.is_dir():
        return 0
    now = time.time() if now is None else now
    removed = _remove_stale_staging(inbox, now)
    markers = inbox / MARKER_DIR
    if max_age_s <= 0 or not markers.is_dir():
        return removed
    busy = {Path(path).resolve() for path in in_use}
    for marker in sorted(markers.glob("*.json")):
        path = inbox / marker.name.removesuffix(".json")
        try:
            if not path.exists() and not path.is_symlink():
                marker.unlink()  # the copy is gone already
                continue
            if path.is_symlink() or not path.is_file() or path.stat().st_mtime > now - max_age_s or \
                    path.resolve() in busy:
                continue
            if not is_owned_copy(path):
                marker.unlink()  # changed since Continuo made it: it is someone's file now, and stays
                log.info("inbox: %s changed since Continuo copied it; kept, and no longer marked as a copy", path)
                continue
            path.unlink()
            marker.unlink()
        except OSError as exc:
            log.warning("inbox: could not remove the copy %s: %s", path, exc)
            continue
        removed += 1
    if removed:
        log.info("inbox: removed %d of Continuo's copies (older than %.0f s) from %s", removed, max_age_s, inbox)
    return removed


def _remove_stale_staging(inbox: Path, now: float) -> int:
    removed = 0
    for folder in (inbox, inbox / MARKER_DIR):
        for partial in folder.glob(".*.partial"):
            try:
                if partial.is_file() and not partial.is_symlink() and partial.stat().st_mtime < now - STAGING_AGE_S:
                    partial.unlink()
                    removed += 1
            except OSError as exc:
                log.warning("inbox: could not remove the left-over %s: %s", partial, exc)
    return removed
