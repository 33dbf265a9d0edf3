"""Where renders live and the room they take: the free-space check before a render, and the space in use.

Renders are written under ``<output_root>/<job_id>/`` and stay there: nothing in the daemon removes a finished
render by itself (bridge/jobs/retention.py forgets journal rows only; freeing space is `continuo prune`,
bridge/jobs/trash.py). So the disk can fill up, and a render that cannot fit must fail cleanly, early when
possible:

- Before a job renders, ``check_room`` compares an estimate of what it will write (every output at the
  session rate and the preset's bit depth, preview chunks, a reserve for the journal and the manifest) with the
  space free where its folder will be, and refuses with ``disk_full`` when it does not fit: minutes of
  rendering are not spent on a file that cannot be written.
- A write that fails anyway (another program filled the disk meanwhile) ends the job ``disk_full`` or
  ``io_error`` from bridge/audio/files.py, which leaves nothing half-written under a final name.

``measure`` counts the bytes in job folders and in the trash, each file once (the DAW-named file is a hard link
of ``<name>.wav``), and the space still free: ``continuo status`` and the control room show it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bridge.audio.files import FREE_SPACE_HINT
from bridge.errors import DiskFull
from bridge.jobs.plan import EDIT_OPS, RenderPlan, input_frames

MANIFEST = "manifest.json"  # <output_root>/<job_id>/manifest.json: what the job was and wrote (bridge/jobs/worker.py)
TRASH_DIR = ".trash"  # <output_root>/.trash/<job_id>/: pruned jobs, until the trash is emptied (bridge/jobs/trash.py)
DISK_RESERVE_BYTES = 16 * 1024 * 1024  # kept free beyond a render's estimate: the journal, manifests, headroom
CHANNELS_AT_MOST = 2  # outputs are mapped to the session's stereo (bridge.audio.render.map_channels)
PREVIEW_BYTES_PER_SAMPLE = 2  # preview chunks are 16-bit (bridge/jobs/preview.py)
WAV_HEADER_BYTES = 4096


@dataclass(frozen=True)
class Space:
    """Bytes used by renders (job folders), by the trash, and free on the output root's disk."""

    renders_bytes: int
    trash_bytes: int
    free_bytes: int
    jobs: int  # job folders under the output root (the trash not counted)


def estimate_bytes(plan: RenderPlan) -> int:
    """What the job will write, at most, without the reserve: each output as a WAV of the plan's length (an
    input's length for stems), the stream's preview chunks, the manifest."""
    frames = plan.frames
    if plan.op == "stems" and plan.input_path is not None:
        frames = input_frames(plan.input_path, plan.context.sample_rate)
    if plan.op == "stems":
        files = len(plan.stems)
    elif plan.op == "variations":
        files = plan.count
    elif plan.op in EDIT_OPS:
        files = 2  # a layer writes the mix and the new track
    else:
        files = 2 + len(plan.stems)  # the mix, its effect tail (at most as long), the stems
    sample_bytes = max(plan.preset.bit_depth // 8, 2)
    wav = frames * CHANNELS_AT_MOST * sample_bytes + WAV_HEADER_BYTES
    previews = frames * CHANNELS_AT_MOST * PREVIEW_BYTES_PER_SAMPLE * max(plan.count, 1) if plan.stream else 0
    return files * wav + previews + 64 * 1024


def free_bytes(folder: Path) -> int:
    """Bytes an unprivileged writer may still use on the disk holding folder (or its nearest existing parent)."""
    return _usage(folder).free


def _usage(folder: Path):
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    return shutil.disk_usage(folder)


def check_room(output_root: Path, plan: RenderPlan, job_id: str) -> None:
    """DiskFull when the job's estimate and the reserve do not fit in what is free under output_root. A filesystem
    that reports no size at all (some network and FUSE mounts) is not judged: the write itself will say."""
    need = estimate_bytes(plan) + DISK_RESERVE_BYTES
    usage = _usage(output_root)
    free = usage.free
    if usage.total > 0 and free < need:
        raise DiskFull(f"not enough free space for this render in {output_root}: it needs about "
                       f"{_mb(need)} (with {_mb(DISK_RESERVE_BYTES)} kept free for the journal) and "
                       f"{_mb(free)} is free; nothing was rendered: {FREE_SPACE_HINT}", job_id=job_id)


def measure(output_root: Path, is_job_folder) -> Space:
    """The space renders and the trash take (each file once, however many names it has) and what is free.
    is_job_folder(path) says which children of output_root are job folders."""
    seen: set[tuple[int, int]] = set()
    renders = jobs = 0
    if output_root.is_dir():
        for child in _children(output_root):
            if child.name != TRASH_DIR and is_job_folder(child):
                jobs += 1
                renders += folder_bytes(child, seen)
    trash = output_root / TRASH_DIR
    trash_bytes = folder_bytes(trash, seen) if trash.is_dir() and not trash.is_symlink() else 0
    return Space(renders_bytes=renders, trash_bytes=trash_bytes, free_bytes=free_bytes(output_root), jobs=jobs)


def folder_bytes(folder: Path, seen: set[tuple[int, int]] | None = None) -> int:
    """The bytes of the regular files under folder (symlinks not followed), each inode counted once."""
    seen = set() if seen is None else seen
    total = 0
    for path in _files(folder):
        try:
            stat = path.stat(follow_symlinks=False)
        except OSError:
            continue  # gone meanwhile
        key = (stat.st_dev, stat.st_ino)
        if key not in seen:
            seen.add(key)
            total += stat.st_size
    return total


def _children(folder: Path) -> Iterator[Path]:
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    yield Path(entry.path)
    except OSError:
        return


def _files(folder: Path) -> Iterator[Path]:
    for root, _dirs, files in os.walk(folder):  # os.walk does not follow symlinked folders
        for name in files:
            path = Path(root) / name
            if not path.is_symlink():
                yield path


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"
