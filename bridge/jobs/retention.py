"""Retention: finished jobs older than an age, or beyond a count, go with their files; so do inline inputs.

The journal rows are deleted first (so /continuo/get stops announcing the files),
then `<output_root>/<job_id>/`. A job id is checked against the schema's job id
pattern and the folder must resolve to a direct child of the output root before
anything is deleted, so a corrupt row can never remove a file elsewhere.

Inputs that arrived inline over ZeroMQ are written to the inbox as
`zmq-<job>-<id>.wav`; they are needed only until their job has run, so they go
after INLINE_INPUT_AGE_S (or the job age, if shorter). Files a user put in the
inbox never match that name and are never touched.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from pathlib import Path

from bridge.jobs.journal import Journal
from bridge.protocol.schema import load_schema

log = logging.getLogger("continuo.retention")

INLINE_INPUT_PREFIX = "zmq-"  # the inbox name of an input uploaded inline (bridge/transports/zmq.py)
INLINE_INPUT_AGE_S = 86400.0


def prune_inline_inputs(inbox: Path, *, max_age_s: float, now: float | None = None) -> int:
    """Delete inline inputs (zmq-*.wav, regular files) in inbox older than max_age_s; returns how many."""
    if not inbox.is_dir():
        return 0
    cutoff = (time.time() if now is None else now) - max_age_s
    removed = 0
    for path in inbox.glob(f"{INLINE_INPUT_PREFIX}*.wav"):
        try:
            if path.is_symlink() or not path.is_file() or path.stat().st_mtime > cutoff:
                continue
            path.unlink()
        except OSError as exc:
            log.warning("retention: could not remove the inline input %s: %s", path, exc)
            continue
        removed += 1
    if removed:
        log.info("retention: removed %d inline input(s) older than %.0f s from %s", removed, max_age_s, inbox)
    return removed


def prune_jobs(journal: Journal, output_root: Path, *, max_age_s: float, max_jobs: int) -> list[str]:
    """Remove expired finished jobs and their folders; returns the ids removed."""
    job_id_pattern = load_schema().patterns["job_id"][0]
    removed = journal.prune(max_age_s=max_age_s, max_jobs=max_jobs)
    root = output_root.resolve()
    for job_id in removed:
        folder = (root / job_id)
        if not job_id_pattern.fullmatch(job_id) or folder.resolve().parent != root or folder.is_symlink():
            log.warning("job=%s retention: folder %s is not a job folder under %s; left alone", job_id, folder, root)
            continue
        if folder.is_dir():
            try:
                shutil.rmtree(folder)
            except OSError as exc:
                log.warning("job=%s retention: could not remove %s: %s", job_id, folder, exc)
        log.info("job=%s removed by retention (journal row and files)", job_id)
    return removed


class RetentionTimer(threading.Thread):
    """Prunes every interval_s until stopped."""

    def __init__(self, journal: Journal, output_root: Path, *, max_age_s: float, max_jobs: int,
                 inbox: Path | None = None, interval_s: float = 60.0) -> None:
        super().__init__(name="continuo-retention", daemon=True)
        self.journal, self.output_root, self.inbox = journal, output_root, inbox
        self.max_age_s, self.max_jobs, self.interval_s = max_age_s, max_jobs, interval_s
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(self.interval_s):
            self.prune()

    def prune(self) -> None:
        try:
            prune_jobs(self.journal, self.output_root, max_age_s=self.max_age_s, max_jobs=self.max_jobs)
            if self.inbox is not None:
                prune_inline_inputs(self.inbox, max_age_s=min(self.max_age_s, INLINE_INPUT_AGE_S))
        except Exception:  # a full disk or a locked journal must not end retention for good
            log.exception("retention pass failed; trying again in %.0f s", self.interval_s)

    def stop(self) -> None:
        self.stopping.set()


def remove_partials(output_root: Path) -> int:
    """Delete `.<name>.partial` files a killed daemon left in job folders; their final names were never visible."""
    removed = 0
    for partial in output_root.glob("*/.*.partial"):
        if partial.is_file() and not partial.is_symlink():
            try:
                partial.unlink()
            except OSError as exc:
                log.warning("could not remove the left-over %s: %s", partial, exc)
                continue
            removed += 1
            log.warning("job=%s removed the unfinished file %s left by the last run", partial.parent.name, partial)
    return removed
