"""The durable job journal (SQLite, WAL).

Outputs and terminal states are fsynced before they are announced (synchronous=FULL
for those commits). Accepting a job is committed without an fsync (WAL,
synchronous=NORMAL): it survives a crash or kill -9 of the daemon, not a power cut,
and it keeps the receive path at well under a millisecond instead of one fsync.

Every accepted job is inserted before ``queued`` is sent, and every output row is
committed before its ``/continuo/output`` event, so what a client was told can
always be replayed with ``/continuo/get``, also after a restart or a crash.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.errors import IoError
from bridge.jobs.queue import JobStatus

log = logging.getLogger("continuo.journal")
CHECKPOINT_INTERVAL_S = 2.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    op TEXT NOT NULL,
    params TEXT NOT NULL,
    reply_host TEXT NOT NULL,
    reply_port INTEGER NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    seed INTEGER,
    elapsed_s REAL,
    error_code TEXT,
    error_message TEXT,
    used_at REAL
);
CREATE TABLE IF NOT EXISTS outputs (
    job_id TEXT NOT NULL REFERENCES jobs(job_id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    name TEXT NOT NULL,
    path TEXT NOT NULL,
    sample_rate INTEGER NOT NULL,
    channels INTEGER NOT NULL,
    seconds REAL NOT NULL,
    bars REAL NOT NULL,
    lufs REAL NOT NULL,
    peak_db REAL NOT NULL,
    PRIMARY KEY (job_id, idx)
);
"""


@dataclass(frozen=True)
class OutputRecord:
    name: str
    path: str
    sample_rate: int
    channels: int
    seconds: float
    bars: float
    lufs: float
    peak_db: float

    def event_args(self, job_id: str) -> list[Any]:
        return [job_id, self.name, self.path, self.sample_rate, self.channels,
                self.seconds, self.bars, self.lufs, self.peak_db]


@dataclass(frozen=True)
class JobRecord:
    job_id: str
    op: str
    params: dict[str, Any]
    reply_to: tuple[str, int]
    status: JobStatus
    created_at: float
    updated_at: float
    seed: int | None
    elapsed_s: float | None
    error_code: str | None
    error_message: str | None
    outputs: tuple[OutputRecord, ...]
    used_at: float | None = None  # when a client last fetched the job (/continuo/get, a resend, a download)

    def data(self) -> dict[str, Any]:
        """The record as plain data, without the reply address and used_at: what HTTP shows of a job."""
        return {"job_id": self.job_id, "op": self.op, "status": self.status.value, "created_at": self.created_at,
                "updated_at": self.updated_at, "seed": self.seed, "elapsed_s": self.elapsed_s,
                "error_code": self.error_code, "error_message": self.error_message, "params": self.params,
                "outputs": [dict(output.__dict__) for output in self.outputs]}


def _reply_host(reply_to: tuple) -> str:
    """A UDP host as it is; a TCP or ZeroMQ peer as "tcp:host" (its connection ends with the daemon)."""
    transport = getattr(reply_to, "transport", None)
    return f"{transport}:{reply_to[0]}" if transport else reply_to[0]


class Journal:
    """Thread-safe; one connection guarded by a lock (writes are small and rare)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # durable writes switch to FULL: see _write
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute("PRAGMA wal_autocheckpoint=0")  # checkpoints run on their own thread: see _checkpoints
            self._db.executescript(SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
            if "used_at" not in columns:  # a journal from before used_at (issue 21)
                self._db.execute("ALTER TABLE jobs ADD COLUMN used_at REAL")
        except (OSError, sqlite3.Error) as exc:
            raise IoError(f"cannot open the job journal {path}: {exc}; check the folder is writable") from exc
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._checkpointer = threading.Thread(target=self._checkpoints, name="continuo-journal-checkpoint",
                                              daemon=True)
        self._checkpointer.start()

    def _checkpoints(self) -> None:
        """Copy the WAL into the database every CHECKPOINT_INTERVAL_S on a second connection.

        SQLite's automatic checkpoint runs inside whichever commit crosses 1000 pages, with
        an fsync: on the receive path that was a 2-4 ms stall about once in 250 requests.
        A PASSIVE checkpoint on its own connection never blocks the writers.
        """
        try:
            db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        except sqlite3.Error as exc:
            log.warning("journal checkpoints off: %s (the WAL file will grow until restart)", exc)
            return
        try:
            while not self._closing.wait(CHECKPOINT_INTERVAL_S):
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error as exc:
                    log.warning("journal checkpoint failed: %s; trying again", exc)
        finally:
            db.close()

    def _write(self, sql: str, args: tuple, *, durable: bool = True) -> int:
        """One write. durable: fsynced before returning (synchronous=FULL for this commit); otherwise the
        commit survives a crash of the daemon (WAL in the OS cache) but not a power cut or an OS crash."""
        with self._lock:
            try:
                if not durable:
                    return self._db.execute(sql, args).rowcount
                self._db.execute("PRAGMA synchronous=FULL")
                try:
                    return self._db.execute(sql, args).rowcount
                finally:
                    self._db.execute("PRAGMA synchronous=NORMAL")
            except sqlite3.Error as exc:
                raise IoError(f"job journal {self.path}: {exc}") from exc

    def insert_job(self, job_id: str, op: str, params: dict[str, Any], reply_to: tuple[str, int]) -> bool:
        """Record a new job; False when the id is already known (nothing written)."""
        now = time.time()
        return 1 == self._write(
            "INSERT OR IGNORE INTO jobs (job_id, op, params, reply_host, reply_port, status, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (job_id, op, json.dumps(params), _reply_host(reply_to), reply_to[1], JobStatus.QUEUED.value, now, now),
            durable=False,  # the receive path: a power cut loses the acceptance, so the client's resend renders it
        )

    def update_params(self, job_id: str, params: dict[str, Any]) -> None:
        self._write("UPDATE jobs SET params = ?, updated_at = ? WHERE job_id = ?",
                    (json.dumps(params), time.time(), job_id))

    def set_status(self, job_id: str, status: JobStatus) -> None:
        self._write("UPDATE jobs SET status = ?, updated_at = ? WHERE job_id = ?", (status.value, time.time(), job_id),
                    durable=False)

    def add_output(self, job_id: str, output: OutputRecord) -> None:
        self._write(
            "INSERT INTO outputs (job_id, idx, name, path, sample_rate, channels, seconds, bars, lufs, peak_db)"
            " VALUES (?, (SELECT COUNT(*) FROM outputs WHERE job_id = ?), ?, ?, ?, ?, ?, ?, ?, ?)",
            (job_id, job_id, output.name, output.path, output.sample_rate, output.channels,
             output.seconds, output.bars, output.lufs, output.peak_db),
        )

    def finish(
        self,
        job_id: str,
        status: JobStatus,
        *,
        seed: int | None = None,
        elapsed_s: float | None = None,
        error_code: str | None = None,
        error_message: str | None = None,
    ) -> None:
        assert status.terminal, status
        self._write(
            "UPDATE jobs SET status = ?, updated_at = ?, seed = ?, elapsed_s = ?, error_code = ?, error_message = ?"
            " WHERE job_id = ?",
            (status.value, time.time(), seed, elapsed_s, error_code, error_message, job_id),
        )

    def get(self, job_id: str) -> JobRecord | None:
        with self._lock:
            row = self._db.execute(
                "SELECT job_id, op, params, reply_host, reply_port, status, created_at, updated_at, seed, elapsed_s,"
                " error_code, error_message, used_at FROM jobs WHERE job_id = ?",
                (job_id,),
            ).fetchone()
            if row is None:
                return None
            outputs = self._db.execute(
                "SELECT name, path, sample_rate, channels, seconds, bars, lufs, peak_db FROM outputs"
                " WHERE job_id = ? ORDER BY idx",
                (job_id,),
            ).fetchall()
        return JobRecord(
            job_id=row[0], op=row[1], params=json.loads(row[2]), reply_to=(row[3], row[4]),
            status=JobStatus(row[5]), created_at=row[6], updated_at=row[7], seed=row[8], elapsed_s=row[9],
            error_code=row[10], error_message=row[11], outputs=tuple(OutputRecord(*o) for o in outputs),
            used_at=row[12],
        )

    def recent(self, limit: int = 50) -> list[JobRecord]:
        """The newest `limit` jobs, newest first (the control room's history)."""
        with self._lock:
            rows = self._db.execute("SELECT job_id FROM jobs ORDER BY created_at DESC, rowid DESC LIMIT ?",
                                    (limit,)).fetchall()
        return [record for record in (self.get(row[0]) for row in rows) if record is not None]

    def unfinished(self) -> list[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT job_id FROM jobs WHERE status IN (?, ?) ORDER BY created_at",
                (JobStatus.QUEUED.value, JobStatus.RUNNING.value),
            ).fetchall()
        return [r[0] for r in rows]

    def mark_used(self, job_id: str) -> None:
        """A client fetched the job's results: `continuo prune` leaves it alone for a while (bridge/jobs/trash.py)."""
        self._write("UPDATE jobs SET used_at = ? WHERE job_id = ?", (time.time(), job_id), durable=False)

    def expired(self, *, max_age_s: float, max_jobs: int, now: float | None = None) -> list[str]:
        """Finished jobs last updated or used more than max_age_s ago, and the oldest beyond max_jobs (each rule
        off at 0), oldest first. Queued and running jobs never are. The caller decides what to forget."""
        now = time.time() if now is None else now
        terminal = tuple(s.value for s in JobStatus if s.terminal)
        marks = ",".join("?" * len(terminal))
        last = "MAX(updated_at, COALESCE(used_at, 0))"
        found: dict[str, float] = {}
        with self._lock:
            try:
                if max_age_s > 0:
                    found.update(self._db.execute(
                        f"SELECT job_id, {last} FROM jobs WHERE status IN ({marks}) AND {last} < ?",
                        (*terminal, now - max_age_s)).fetchall())
                if max_jobs > 0:
                    found.update(self._db.execute(
                        f"SELECT job_id, {last} FROM jobs WHERE status IN ({marks}) ORDER BY {last} DESC, rowid DESC"
                        " LIMIT -1 OFFSET ?", (*terminal, max_jobs)).fetchall())
            except sqlite3.Error as exc:
                raise IoError(f"job journal {self.path}: {exc}") from exc
        return sorted(found, key=lambda job_id: (found[job_id], job_id))

    def forget(self, job_ids: list[str]) -> int:
        """Delete these finished jobs' rows and their outputs' rows (files are the caller's business; a queued or
        running job is never deleted); how many went."""
        terminal = tuple(s.value for s in JobStatus if s.terminal)
        removed = 0
        for start in range(0, len(job_ids), 500):
            chunk = tuple(job_ids[start:start + 500])
            removed += self._write(f"DELETE FROM jobs WHERE job_id IN ({','.join('?' * len(chunk))}) AND status IN "
                                   f"({','.join('?' * len(terminal))})", chunk + terminal)
        return removed

    def count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]

    def close(self) -> None:
        self._closing.set()
        self._checkpointer.join(5.0)
        with self._lock:
            try:
                self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error as exc:
                log.warning("journal checkpoint at close failed: %s", exc)
            self._db.close()


class JournalReads:
    """The journal as a transport sees it (bridge/transports/http.py:JobRecords): records as plain data, and a
    download's mark; nothing else of the store. HTTP reads jobs through it as OSC reads them through /continuo/get."""

    def __init__(self, journal: Journal) -> None:
        self._journal = journal

    def job(self, job_id: str) -> dict[str, Any] | None:
        record = self._journal.get(job_id)
        return None if record is None else record.data()

    def recent(self, limit: int) -> list[dict[str, Any]]:
        return [record.data() for record in self._journal.recent(limit)]

    def fetched(self, job_id: str) -> None:
        self._journal.mark_used(job_id)
