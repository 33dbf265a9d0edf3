"""Retention: what the daemon tidies by itself. Only what is its own alone; never a finished render.

Renders belong to the musician: a Live set or a Reaper project points at ``<output_root>/<job_id>/`` (the stable
``<name>.wav`` and the DAW-named file beside it) and must still play months later. So the passes here (at
startup, then every minute) remove only:

- journal rows of jobs finished (or last fetched) longer ago than retention_age_s, or beyond the newest
  retention_max_jobs, and only where the job stays findable without its row: a finished job with outputs must
  have its ``manifest.json`` (in its folder or in the trash), from which /continuo/get still answers and a
  resent id is still recognised (bridge/jobs/job_ids.py); 0 turns either rule off;
- ``.partial`` files a killed daemon left in job folders (at startup only: a running job may be writing one);
- staging left-overs and the copies Continuo made in the inbox, marked as its own, after inbox_copies_age_s
  (bridge/audio/inbox.py); never an unmarked file, whatever its name, and never an input a waiting job reads.

Freeing the space renders take is an explicit act (`continuo prune`, bridge/jobs/trash.py). The one automatic
mode is opt-in (auto_trash_days, off by default, shown in the ready line and `continuo status`): it moves old,
unfetched renders to the trash inside the output root, from where they can be restored; it never empties it.
Each pass also measures the space renders, the trash and the free disk take, for status and the control room.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection
from pathlib import Path

from bridge.audio.inbox import prune_inbox
from bridge.jobs.journal import Journal
from bridge.jobs.queue import JobStatus
from bridge.jobs.storage import MANIFEST, TRASH_DIR, Space
from bridge.jobs.trash import Trash
from bridge.settings import Settings

log = logging.getLogger("continuo.retention")

PASS_INTERVAL_S = 60.0


def forget_old_rows(journal: Journal, output_root: Path, *, max_age_s: float, max_jobs: int) -> list[str]:
    """Forget expired journal rows whose jobs stay findable without them (see the module's docstring); returns
    the ids forgotten. No file is touched."""
    forgettable = [job_id for job_id in journal.expired(max_age_s=max_age_s, max_jobs=max_jobs)
                   if findable_without_row(journal, output_root, job_id)]
    journal.forget(forgettable)
    if forgettable:
        log.info("retention: the journal forgot %d finished job(s) (their files and manifests stay)",
                 len(forgettable))
    return forgettable


def findable_without_row(journal: Journal, output_root: Path, job_id: str) -> bool:
    """A job without outputs (failed, cancelled, a model switch) needs no row to be safe; one with outputs needs
    its manifest, where it lies or in the trash."""
    record = journal.get(job_id)
    if record is None or record.status is not JobStatus.DONE or not record.outputs:
        return True
    return any((folder / MANIFEST).is_file() for folder in (output_root / job_id, output_root / TRASH_DIR / job_id))


class RetentionTimer(threading.Thread):
    """One pass at startup (``prune``), then one every interval_s until stopped. ``in_use`` gives the input files
    that queued or running jobs read; ``space`` is the last measure."""

    def __init__(self, journal: Journal, output_root: Path, settings: Settings, *, inbox: Path | None = None,
                 in_use: Callable[[], Collection[Path]] = tuple, interval_s: float = PASS_INTERVAL_S) -> None:
        super().__init__(name="continuo-retention", daemon=True)
        self.journal, self.output_root, self.settings, self.inbox = journal, output_root, settings, inbox
        self.in_use, self.interval_s = in_use, interval_s
        self.trash = Trash(journal, output_root)
        self.space: Space | None = None
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(self.interval_s):
            self.prune()

    def prune(self) -> None:
        s = self.settings
        try:
            forget_old_rows(self.journal, self.output_root, max_age_s=s.retention_age_s,
                            max_jobs=s.retention_max_jobs)
            if s.auto_trash_days > 0:
                self.trash.auto_trash(s.auto_trash_days)
            if self.inbox is not None:
                prune_inbox(self.inbox, max_age_s=s.inbox_copies_age_s, in_use=self.in_use())
        except Exception:  # a full disk or a locked journal must not end retention for good
            log.exception("retention pass failed; trying again in %.0f s", self.interval_s)
        self.measure()

    def measure(self) -> Space | None:
        try:
            self.space = self.trash.space()
        except OSError as exc:
            log.warning("could not measure the space renders take under %s: %s", self.output_root, exc)
        return self.space

    def stop(self) -> None:
        self.stopping.set()


def remove_partials(output_root: Path) -> int:
    """Delete the ``.*.partial`` files a killed daemon left in job folders (their previews included); their final
    names were never visible. At startup, before any job runs."""
    removed = 0
    for pattern in ("*/.*.partial", "*/preview/.*.partial", "*/preview/*/.*.partial"):
        for partial in output_root.glob(pattern):
            if partial.is_file() and not partial.is_symlink():
                try:
                    partial.unlink()
                except OSError as exc:
                    log.warning("could not remove the left-over %s: %s", partial, exc)
                    continue
                removed += 1
                log.warning("job=%s removed the unfinished file %s left by the last run",
                            partial.relative_to(output_root).parts[0], partial)
    return removed
