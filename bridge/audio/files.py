"""Reading input audio and writing results atomically.

``write_bytes_atomic`` (and ``write_wav_atomic`` on it) writes ``<dir>/.<name>.<random>.partial`` with plain
``os.write`` calls, fsyncs it, renames it onto the final name with ``os.replace`` and fsyncs the directory, so
a reader sees either no file or the complete one, also after a crash or a full disk. The WAV is encoded in
memory first: libsndfile writing into a file swallows the OS error of a full disk (soundfile's callback cannot
raise through it) and reports a bare failure, so the write itself is ours and its errno survives.

A failed write is reported by what the disk said (``disk_error``): a full disk or quota (ENOSPC, EDQUOT) is
``DiskFull`` (the wire's ``disk_full``); a read-only filesystem, an I/O error or a permission problem is
``IoError`` with that reason in words. Each partial name is unique, so two writers never share one.

Windows: files are opened binary (O_BINARY: no newline translation inside a WAV); a directory cannot be opened to
fsync it, and NTFS journals the rename itself, so that step is skipped there; a rename onto a file another program
holds open (a virus scanner, the search indexer, a player) is refused with "access denied", so ``replace_file``
tries again for about 1.5 s, and what is still refused after that is said as "open in another program".
"""

from __future__ import annotations

import errno
import io
import os
import shutil
import time
import uuid
from pathlib import Path

import numpy as np
import soundfile

from bridge.errors import BadRequest, BridgeError, DiskFull, IoError, NotFound

FREE_SPACE_HINT = "free space (`continuo prune`, then `continuo prune --empty-trash --yes`) and send it again"

WAV_SUBTYPES: dict[int, str] = {16: "PCM_16", 24: "PCM_24", 32: "FLOAT"}
REPLACE_RETRY_WAITS_S = (0.05, 0.1, 0.2, 0.4, 0.8)  # Windows: a scanner or indexer lets go of a file within these


def read_audio(path: Path) -> tuple[np.ndarray, int]:
    """Audio (C, T) float32 and its sample rate, from any format libsndfile reads.

    A missing file is ``NotFound``; a directory, an unreadable file, a file that
    is not audio or has no frames is ``BadRequest`` with the reason.
    """
    path = Path(path)
    if not path.exists():
        raise NotFound(f"no such audio file: {path}")
    if not path.is_file():
        raise BadRequest(f"not a file: {path}")
    try:
        data, sample_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, OSError) as exc:
        raise BadRequest(f"cannot read audio from {path}: {exc}") from exc
    if data.shape[0] == 0:
        raise BadRequest(f"audio file has no frames: {path}")
    return np.ascontiguousarray(data.T), int(sample_rate)


def write_wav_atomic(path: Path, audio: np.ndarray, sample_rate: int, *, bit_depth: int = 24) -> None:
    """Write ``audio`` (C, T) as a WAV file at ``path``, atomically.

    Samples are clipped to [-1, 1]; ``bit_depth`` 16 and 24 are PCM, 32 is
    float. A missing parent directory is created (``<output_root>/<job_id>/``).
    Bad arguments (bit depth, shape, non-finite samples) are ``BadRequest`` and
    touch nothing on disk; a failure while writing is ``DiskFull`` or ``IoError``
    (``write_bytes_atomic``) and leaves no partial file behind (an existing file
    at ``path`` is left as it was).
    """
    path = Path(path)
    subtype = WAV_SUBTYPES.get(bit_depth)
    if subtype is None or isinstance(bit_depth, bool):
        valid = ", ".join(map(str, WAV_SUBTYPES))
        raise BadRequest(f"bit_depth must be one of {valid}, got {bit_depth!r}")
    if not isinstance(audio, np.ndarray) or audio.ndim != 2 or audio.shape[0] == 0:
        raise BadRequest(f"audio must be a (channels, frames) array, got shape {np.shape(audio)}")
    if not np.isfinite(audio).all():
        raise BadRequest("audio contains non-finite samples (nan or inf)")
    encoded = io.BytesIO()
    soundfile.write(encoded, np.clip(audio.T, -1.0, 1.0).astype(np.float32), sample_rate, subtype=subtype,
                    format="WAV")
    write_bytes_atomic(path, encoded.getbuffer())


def write_bytes_atomic(path: Path, data: bytes | memoryview) -> None:
    """``data`` as the file ``path``, atomically (a unique partial, fsynced, renamed, the directory fsynced); a
    missing parent directory is created. A failure is ``disk_error``'s DiskFull or IoError, and no partial is
    left behind (an existing file at ``path`` stays as it was)."""
    path = Path(path)
    partial = partial_name(path)
    try:
        created = not path.parent.is_dir()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o644)
        try:
            view = memoryview(data).cast("B")
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        replace_file(partial, path)
        _fsync_directory(path.parent)
        if created:
            _fsync_directory(path.parent.parent)
    except OSError as exc:  # no partial is left, the caller gets what the disk said
        raise disk_error(exc, path, _remove_partial(partial)) from exc
    except BaseException:
        _remove_partial(partial)
        raise


def replace_file(source: Path, target: Path) -> None:
    """os.replace (atomic on POSIX filesystems and on NTFS). On Windows, a target another program holds open
    refuses it with PermissionError for as long as it is held: tried again after each of REPLACE_RETRY_WAITS_S, then
    the error is raised (disk_error says "open in another program"). Elsewhere the first error is raised."""
    for wait in (*REPLACE_RETRY_WAITS_S, None):
        try:
            os.replace(source, target)
            return
        except PermissionError:
            if os.name != "nt" or wait is None:
                raise
            time.sleep(wait)


def partial_name(path: Path) -> Path:
    """A name no other writer uses, beside path, hidden, ending in .partial (left-overs are found by that)."""
    return path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.partial"


def disk_error(exc: OSError, path: Path, note: str = "") -> BridgeError:
    """What a failed write of path means to a musician: DiskFull for a full disk or quota, IoError otherwise,
    each with the reason in words and what to do."""
    folder = path.parent
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        what = "is full" if exc.errno == errno.ENOSPC else "is over its quota"
        return DiskFull(f"cannot write {path.name}: the disk holding {folder} {what} ({exc.strerror}); nothing "
                        f"half-written was left: {FREE_SPACE_HINT}{note}")
    if exc.errno == errno.EROFS:
        return IoError(f"cannot write {path}: {folder} is on a read-only filesystem (a drive mounted read-only, or "
                       f"remounted after errors); point output_root at a writable folder{note}")
    if exc.errno == errno.EIO:
        return IoError(f"cannot write {path}: the disk reported an input/output error (EIO: a failing drive, or "
                       f"a network or USB drive that went away); check the drive{note}")
    if exc.errno in (errno.EACCES, errno.EPERM) and os.name == "nt" and path.exists():
        return IoError(f"cannot replace {path}: it is open in another program (your DAW, a media player or a virus "
                       f"scanner; Windows keeps an open file from being replaced): close it there and send again{note}")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return IoError(f"cannot write {path}: no permission to write in {folder} ({exc.strerror}){note}")
    return IoError(f"cannot write {path}: {exc}{note}")


def _fsync_directory(directory: Path) -> None:
    """Make a rename in directory durable (POSIX). Windows cannot open a directory, and NTFS journals the rename."""
    if os.name == "nt":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_partial(partial: Path) -> str:
    """Remove ``partial`` if it exists; a note for the error message if that fails."""
    try:
        partial.unlink(missing_ok=True)
    except OSError as exc:
        return f" (and could not remove {partial}: {exc})"
    return ""


def daw_file_name(job_id: str, output_name: str, *, bars: float, bpm: float, key: str = "",
                  suffix: str = ".wav") -> str:
    """A name a musician can drop into any DAW and still read: ``<job>_<stem>_<bars>bars_<bpm>bpm_<key>.wav``.

    ``job-1``, ``mix``, 8 bars, 92 BPM, "F# minor" -> ``job-1_mix_8bars_92bpm_F#min.wav``; without a key the
    last part is left out. Numbers keep at most two decimals (``1.5bars``, ``133.33bpm``). A stem's MIDI file
    takes the same name with ``suffix=".mid"``, so it sorts beside its audio.
    """
    parts = [job_id, output_name, f"{_short_number(bars)}bars", f"{_short_number(bpm)}bpm"]
    key_text = short_key(key)
    if key_text:
        parts.append(key_text)
    return "_".join(parts) + suffix


def peaks_path(wav: Path) -> Path:
    """Where an output's waveform peaks lie: ``<name>.peaks`` beside ``<name>.wav`` (bridge/audio/loudness.py:
    waveform_peaks; the worker writes them with the file, HTTP serves them and measures an older render's once)."""
    return Path(wav).with_suffix(".peaks")


def short_key(key: str) -> str:
    """"C minor" -> "Cmin", "eb major" -> "Ebmaj", "Bbm" -> "Bbmin", "F#" -> "F#", "" -> ""."""
    text = key.strip().replace(" ", "")
    if not text:
        return ""
    root = text[0].upper() + (text[1] if len(text) > 1 and text[1] in "#b" else "")
    mode = text[len(root):].lower()
    return root + {"": "", "major": "maj", "maj": "maj", "minor": "min", "min": "min", "m": "min"}.get(mode, mode)


def _short_number(value: float) -> str:
    return f"{round(float(value), 2):g}"


def link_or_copy_atomic(source: Path, target: Path) -> str:
    """Give ``source`` a second name ``target``: a hard link (no extra disk space; both names are the same bytes),
    or a copy where the filesystem cannot link (FAT/exFAT drives, some network shares). Atomic like
    ``write_wav_atomic`` (a ``.partial`` name renamed into place, replacing an older ``target``); returns "link" or
    "copy". A failure is ``disk_error``'s DiskFull or IoError and leaves no partial file behind."""
    partial = partial_name(target)
    if target.exists() and os.path.samefile(source, target):
        return "link"  # already (renaming a link onto the same file would do nothing and leave the partial)
    try:
        try:
            os.link(source, partial)
            how = "link"
        except OSError:
            shutil.copyfile(source, partial)
            how = "copy"
        replace_file(partial, target)
        _fsync_directory(target.parent)
    except OSError as exc:
        raise disk_error(exc, target, _remove_partial(partial)) from exc
    return how
