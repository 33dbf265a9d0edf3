"""Freeing the space renders take, explicitly: prune into a trash inside the output root, restore, empty.

Renders stay where they were written until the musician says otherwise (bridge/jobs/retention.py never removes
one). `continuo prune` (/continuo/prune, POST /api/requests/prune) is that word, in three separate steps:

1. **prune**: select finished jobs by age (``older_than_days``), by count (all but the newest ``keep_newest``) or
   by size (the oldest, until the renders fit in ``max_total_gb``); a job any rule selects is selected, and 0
   turns a rule off (at least one must be on). A job a client fetched in the last ``keep_used_days`` days
   (/continuo/get, a resent id, a download: the journal's used_at) is never selected, nor a queued or running
   one. Without ``apply`` nothing moves: the answer lists the jobs and the space they would free (a dry run).
   With it, each job folder is renamed to ``<output_root>/.trash/<job_id>/`` (same disk: nothing is copied, a
   restore is exact). A DAW project that uses those files misses them until they are restored.
2. **restore** puts a job (or every job) back where it was, under the same path.
3. **empty** the trash: a second, separate request, also a dry run unless ``apply``; only this deletes, and the
   journal then forgets those jobs.

Only folders that are Continuo's jobs are ever moved: a job-id-named folder with a journal row or a
``manifest.json``; anything else under the output root stays. The opt-in auto_trash_days setting runs step 1
with age and fetch guards of that many days on every retention pass; it never empties the trash.

The job id of a job in the trash stays taken (bridge/jobs/job_ids.py), and /continuo/get says where it went.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge.errors import BadRequest, NotFound
from bridge.jobs.events import EventSink
from bridge.jobs.journal import Journal
from bridge.jobs.storage import MANIFEST, TRASH_DIR, Space, folder_bytes, measure
from bridge.protocol.destinations import Destination
from bridge.protocol.schema import load_schema

log = logging.getLogger("continuo.trash")

DAY_S = 86400.0
GB = 1e9


@dataclass(frozen=True)
class Rules:
    """Which finished jobs a prune selects; 0 turns a rule off."""

    older_than_days: float = 0.0
    keep_newest: int = 0
    max_total_gb: float = 0.0
    keep_used_days: float = 7.0

    def check(self) -> None:
        if not (self.older_than_days > 0 or self.keep_newest > 0 or self.max_total_gb > 0):
            raise BadRequest("say which renders to move to the trash: older than some days (continuo prune "
                             "--older-than 30d), all but the newest N (--keep 200), or the oldest until the renders "
                             "fit in a size (--max-size 20G); nothing was moved")


@dataclass(frozen=True)
class Entry:
    """One job folder a prune, restore or empty acts on (or would)."""

    job_id: str
    folder: Path
    size: int
    finished_at: float
    used_at: float = 0.0


@dataclass
class Report:
    """What a prune, restore or empty did, or (dry run) would do."""

    action: str  # would_move, moved, restored, would_empty, emptied (the schema's trash_action)
    entries: list[Entry] = field(default_factory=list)
    kept_recent: int = 0  # jobs the rules selected but a client fetched within keep_used_days
    skipped: list[str] = field(default_factory=list)  # why some could not be acted on

    @property
    def size(self) -> int:
        return sum(entry.size for entry in self.entries)


class Trash:
    def __init__(self, journal: Journal, output_root: Path) -> None:
        self.journal, self.output_root = journal, output_root
        self.folder = output_root / TRASH_DIR
        self.job_id = load_schema().patterns["job_id"][0]

    # -- what is there ------------------------------------------------------------------------------
    def jobs(self, active: Collection[str] = ()) -> list[Entry]:
        """The finished jobs' folders under the output root, oldest first (queued, running and active jobs, and
        folders that are no job of Continuo's, left out)."""
        entries = [entry for folder in self._folders(self.output_root)
                   if folder.name not in active and (entry := self._entry(folder, finished_only=True)) is not None]
        return sorted(entries, key=lambda entry: (entry.finished_at, entry.job_id))

    def contents(self) -> list[Entry]:
        """What the trash holds, oldest first."""
        entries = [entry for folder in self._folders(self.folder)
                   if (entry := self._entry(folder, finished_only=False)) is not None]
        return sorted(entries, key=lambda entry: (entry.finished_at, entry.job_id))

    def space(self) -> Space:
        return measure(self.output_root, lambda folder: bool(self.job_id.fullmatch(folder.name)))

    # -- the three steps ------------------------------------------------------------------------------
    def select(self, rules: Rules, *, active: Collection[str] = (), now: float | None = None) -> Report:
        """The dry run: the jobs the rules select, oldest first, and how many the fetch guard kept."""
        rules.check()
        now = time.time() if now is None else now
        jobs = self.jobs(active)
        newest_first = list(reversed(jobs))
        chosen: set[str] = set()
        if rules.older_than_days > 0:
            chosen |= {e.job_id for e in jobs if e.finished_at < now - rules.older_than_days * DAY_S}
        if rules.keep_newest > 0:
            chosen |= {e.job_id for e in newest_first[rules.keep_newest:]}
        recent = {e.job_id for e in jobs if rules.keep_used_days > 0 and e.used_at > now - rules.keep_used_days * DAY_S}
        if rules.max_total_gb > 0:
            over = sum(e.size for e in jobs) - rules.max_total_gb * GB
            for entry in jobs:  # oldest first, until the rest fits
                if over <= 0:
                    break
                if entry.job_id not in recent:
                    chosen.add(entry.job_id)
                    over -= entry.size
        return Report("would_move", [e for e in jobs if e.job_id in chosen - recent],
                      kept_recent=len(chosen & recent))

    def prune(self, rules: Rules, *, apply: bool, active: Collection[str] = ()) -> Report:
        """select, and with apply move each selected job folder into the trash."""
        report = self.select(rules, active=active)
        if not apply:
            return report
        moved = Report("moved", kept_recent=report.kept_recent)
        for entry in report.entries:
            target = self.folder / entry.job_id
            if os.path.lexists(target):
                moved.skipped.append(f"{entry.job_id}: the trash already holds a folder of that name")
                continue
            try:
                self.folder.mkdir(exist_ok=True)
                os.rename(entry.folder, target)
            except OSError as exc:
                moved.skipped.append(f"{entry.job_id}: {exc}")
                continue
            moved.entries.append(Entry(entry.job_id, target, entry.size, entry.finished_at, entry.used_at))
            log.info("job=%s moved to the trash (%s): %s", entry.job_id, _mb(entry.size), target)
        return moved

    def answer(self, op: str, args: Mapping[str, Any], *, active: Callable[[], Collection[str]]) -> Report:
        """A request's report, by its op and its schema arguments: prune (rules; apply 1 moves), trash_restore
        (a job id, or * for all), trash_empty (apply 1 deletes). active: the queued and running jobs' ids."""
        if op == "prune":
            rules = Rules(older_than_days=args["older_than_days"], keep_newest=args["keep_newest"],
                          max_total_gb=args["max_total_gb"], keep_used_days=args["keep_used_days"])
            return self.prune(rules, apply=bool(args["apply"]), active=active())
        if op == "trash_restore":
            return self.restore(args["job_id"])
        return self.empty(apply=bool(args["apply"]))

    def restore(self, job_id: str) -> Report:
        """Move a job (``*``: every job) from the trash back to where it was."""
        entries = self.contents()
        if job_id != "*":
            entries = [entry for entry in entries if entry.job_id == job_id]
            if not entries:
                raise NotFound(f"no job {job_id!r} in the trash ({self.folder}); `continuo trash list` shows it",
                               job_id=job_id)
        report = Report("restored")
        for entry in entries:
            target = self.output_root / entry.job_id
            if os.path.lexists(target):
                report.skipped.append(f"{entry.job_id}: {target} exists again; move one of them by hand")
                continue
            try:
                os.rename(entry.folder, target)
            except OSError as exc:
                report.skipped.append(f"{entry.job_id}: {exc}")
                continue
            report.entries.append(Entry(entry.job_id, target, entry.size, entry.finished_at, entry.used_at))
            log.info("job=%s restored from the trash: %s", entry.job_id, target)
        return report

    def empty(self, *, apply: bool) -> Report:
        """What the trash holds; with apply, delete it for good and let the journal forget those jobs."""
        entries = self.contents()
        if not apply:
            return Report("would_empty", entries)
        report = Report("emptied")
        for entry in entries:
            try:
                shutil.rmtree(entry.folder)  # does not follow symlinks, and refuses a symlinked folder
            except OSError as exc:
                report.skipped.append(f"{entry.job_id}: {exc}")
                continue
            report.entries.append(entry)
            log.info("job=%s deleted from the trash for good (%s)", entry.job_id, _mb(entry.size))
        self.journal.forget([entry.job_id for entry in report.entries])
        return report

    def auto_trash(self, days: float, *, active: Collection[str] = ()) -> Report:
        """The opt-in automatic mode: jobs finished and unfetched for `days` go to the trash."""
        report = self.prune(Rules(older_than_days=days, keep_used_days=days), apply=True, active=active)
        if report.entries:
            log.info("auto_trash_days=%g: moved %d job(s) (%s) to %s; `continuo trash restore` brings them back",
                     days, len(report.entries), _mb(report.size), self.folder)
        return report

    # -- internals -------------------------------------------------------------------------------------
    def _folders(self, parent: Path) -> list[Path]:
        if not parent.is_dir() or parent.is_symlink():
            return []
        with os.scandir(parent) as found:
            return [Path(e.path) for e in found if e.is_dir(follow_symlinks=False) and self.job_id.fullmatch(e.name)]

    def _entry(self, folder: Path, *, finished_only: bool) -> Entry | None:
        """The folder as a job, or None when it is not a finished job of Continuo's (no row, no manifest)."""
        record = self.journal.get(folder.name)
        manifest = folder / MANIFEST
        if record is None and not manifest.is_file():
            return None
        if record is not None and finished_only and not record.status.terminal:
            return None
        finished_at = record.updated_at if record is not None else manifest.stat().st_mtime
        used_at = (record.used_at or 0.0) if record is not None else 0.0
        return Entry(folder.name, folder, folder_bytes(folder), finished_at, used_at)


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


# -- answers ---------------------------------------------------------------------------------------------------
MAX_LISTED = 200  # /continuo/trash/job events per answer; /continuo/trash/result counts them all
NEXT_STEP = {
    "would_move": "send it again with apply 1 (continuo prune ... --yes) to move them; nothing was moved",
    "moved": "DAW projects that use them miss them until restored (continuo trash restore JOB); the space is freed "
             "once the trash is emptied (continuo trash empty --yes)",
    "restored": "they are back where they were",
    "would_empty": "continuo trash empty --yes deletes them for good; nothing was deleted",
    "emptied": "deleted for good",
}


def send_report(events: EventSink, reply_to: Destination, report: Report, *, now: float | None = None) -> None:
    """One /continuo/trash/job per job (at most MAX_LISTED), then /continuo/trash/result."""
    now = time.time() if now is None else now
    listed = report.entries[:MAX_LISTED]
    for entry in listed:
        events.emit(reply_to, "/continuo/trash/job", entry.job_id, float(entry.size / 1e6),
                    float(max(now - entry.finished_at, 0.0) / DAY_S), entry.folder.as_posix())
    verb = {"would_move": "would move", "would_empty": "would delete", "emptied": "deleted"}.get(
        report.action, report.action)
    where = " to the trash" if report.action in ("would_move", "moved") else \
        " from the trash" if report.action in ("restored", "would_empty", "emptied") else ""
    message = f"{verb} {len(report.entries)} job(s) ({_mb(report.size)}){where}; {NEXT_STEP[report.action]}"
    if report.kept_recent:
        message += f"; kept {report.kept_recent} fetched recently"
    if report.skipped:
        message += f"; not done: {'; '.join(report.skipped)}"
    events.emit(reply_to, "/continuo/trash/result", report.action, len(report.entries), float(report.size / 1e6),
                len(listed), report.kept_recent, message)


def send_storage(events: EventSink, reply_to: Destination, space: Space | None, *, output_root: Path,
                 auto_trash_days: float) -> None:
    """/continuo/storage: the space renders, the trash and the free disk take (zeros before the first measure)."""
    space = space or Space(0, 0, 0, 0)
    events.emit(reply_to, "/continuo/storage", float(space.renders_bytes / 1e6), float(space.trash_bytes / 1e6),
                float(space.free_bytes / 1e6), space.jobs, float(auto_trash_days), output_root.as_posix())
