"""The durable job journal (SQLite, WAL, synchronous=FULL).

Every accepted job is inserted before ``queued`` is sent, and every output row is
committed before its ``/continuo/output`` event, so what a client was told can
always be replayed with ``/continuo/get``, also after a restart or a crash.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.errors import IoError
from bridge.jobs import JobStatus

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
    error_message TEXT
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


class Journal:
    """Thread-safe; one connection guarded by a lock (writes are small and rare)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise IoError(f"cannot open the job journal {path}: {exc}; check the folder is writable") from exc
        self._lock = threading.Lock()

    def _write(self, sql: str, args: tuple) -> int:
        with self._lock:
            try:
                return self._db.execute(sql, args).rowcount
            except sqlite3.Error as exc:
                raise IoError(f"job journal {self.path}: {exc}") from exc

    def insert_job(self, job_id: str, op: str, params: dict[str, Any], reply_to: tuple[str, int]) -> bool:
        """Record a new job; False when the id is already known (nothing written)."""
        now = time.time()
        return 1 == self._write(
            "INSERT OR IGNORE INTO jobs (job_id, op, params, reply_host, reply_port, status, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (job_id, op, json.dumps(params), reply_to[0], reply_to[1], JobStatus.QUEUED.value, now, now),
        )

    def set_status(self, job_id: str, status: JobStatus) -> None:
        self._write("UPDATE jobs SET status = ?, updated_at = ? WHERE job_id = ?", (status.value, time.time(), job_id))

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
                " error_code, error_message FROM jobs WHERE job_id = ?",
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
        )

    def unfinished(self) -> list[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT job_id FROM jobs WHERE status IN (?, ?) ORDER BY created_at",
                (JobStatus.QUEUED.value, JobStatus.RUNNING.value),
            ).fetchall()
        return [r[0] for r in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()
