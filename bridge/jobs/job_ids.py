"""What a job id already names, and whether a request with it is a resend or a conflict.

A job id is the client's key for one render, for good: its files live in ``<output_root>/<job_id>/``, DAW
projects point there, and ``/continuo/get`` answers with them. So an id the daemon knows is never rendered again
and never handed to another request:

- The same id with the same request (op, arguments, settings, session context; the seed the daemon picked
  aside) is a resend: the client is told where the first one is (``Daemon.report_existing``).
- The same id with anything else is refused with ``id_conflict``, naming the job the id belongs to; the old
  files are never the answer to a new prompt (a Max patch's ids once restarted with the machine's clock).

The daemon knows an id from its journal row, and after the journal forgot the job (bridge/jobs/retention.py)
from the job's folder: ``manifest.json`` carries the journalled params, so ``/continuo/get`` still answers and a
resend is still recognised. A folder of that name without a manifest (a failed job's previews, or a folder a
person made) still takes the id: nothing is ever written into it. A job moved to the trash by ``continuo prune``
(bridge/jobs/trash.py) keeps its id too, and ``files_gone`` says where its files went.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bridge.audio.context import MusicalContext
from bridge.errors import IdConflict
from bridge.jobs.journal import JobRecord, Journal, OutputRecord
from bridge.jobs.plan import job_params
from bridge.jobs.queue import JobStatus
from bridge.jobs.storage import MANIFEST, TRASH_DIR

# Params the daemon adds or changes itself: not part of what the client asked for.
OWN_PARAMS = ("seed", "retries", "priority", "lora_path")
OUTPUT_FIELDS = ("name", "path", "sample_rate", "channels", "seconds", "bars", "lufs", "peak_db")


def find_job(journal: Journal, output_root: Path, job_id: str) -> JobRecord | None:
    """The job this id names: its journal row, else what its folder (or its folder in the trash) says."""
    record = journal.get(job_id)
    if record is not None:
        return record
    for folder in (output_root / job_id, output_root / TRASH_DIR / job_id):
        if folder.is_dir() and not folder.is_symlink():
            return record_from_folder(job_id, folder)
    return None


def record_from_folder(job_id: str, folder: Path) -> JobRecord:
    """A finished job as its folder describes it (manifest.json). A folder without one is no request's (op "":
    every request with its id conflicts), and /continuo/get says so."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        stamp = (folder / MANIFEST).stat().st_mtime
    except (OSError, ValueError):
        return JobRecord(job_id=job_id, op="", params={}, reply_to=("", 0), status=JobStatus.FAILED,
                         created_at=folder.stat().st_mtime, updated_at=folder.stat().st_mtime, seed=None,
                         elapsed_s=None, error_code="not_found", outputs=(),
                         error_message=f"job {job_id} is not in the journal, and its folder {folder} has no "
                                       "manifest.json (a job that did not finish, or a folder that is no job's); "
                                       "its id stays taken: send a new job with a new id")
    outputs = tuple(OutputRecord(**{key: output[key] for key in OUTPUT_FIELDS})
                    for output in manifest.get("outputs", []) if all(key in output for key in OUTPUT_FIELDS))
    return JobRecord(job_id=job_id, op=str(manifest.get("op", "")), params=dict(manifest.get("params", {})),
                     reply_to=("", 0), status=JobStatus.DONE, created_at=stamp, updated_at=stamp,
                     seed=manifest.get("seed"), elapsed_s=None, error_code=None, error_message=None,
                     outputs=outputs)


def check_resend(record: JobRecord, op: str, args: Mapping[str, Any], settings: Mapping[str, Any],
                 context: MusicalContext) -> None:
    """Nothing when this request is the one record was made from (a resend); IdConflict otherwise."""
    asked = json.loads(json.dumps(job_params(op, args, settings, context)))  # as the journal stores it
    if record.op == op and _requested(record.params) == _requested(asked):
        return
    raise conflict(record)


def check_same_model(record: JobRecord, name: str) -> None:
    """A /continuo/model/load job id: a resend names the same model; IdConflict otherwise."""
    if record.op != "load_model" or record.params.get("model") != name:
        raise conflict(record)


def conflict(record: JobRecord) -> IdConflict:
    return IdConflict(f"job id {record.job_id!r} belongs to another job: {describe(record)}; nothing was rendered "
                      "and its files are not this request's answer: send this request again with a new job id",
                      job_id=record.job_id)


def describe(record: JobRecord) -> str:
    """One line a musician recognises: 'a generate job ("warm piano", 8 bars), done 2026-12-01 14:03'."""
    if not record.op:
        return "a folder of that name holds files (no manifest.json); the id is kept for them"
    params = record.params
    what = [f'"{params["prompt"]}"'] if params.get("prompt") else []
    if params.get("bars"):
        what.append(f"{float(params['bars']):g} bars")
    if params.get("model"):
        what.append(str(params["model"]))
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(record.created_at))
    detail = f" ({', '.join(what)})" if what else ""
    return f"a {record.op} job{detail}, {record.status.value}, from {when}"


def files_gone(record: JobRecord, output_root: Path) -> str | None:
    """Why a finished job's files cannot be handed out (moved to the trash, removed by hand), or None."""
    if record.status is not JobStatus.DONE or not record.outputs:
        return None
    trashed = output_root / TRASH_DIR / record.job_id
    if trashed.is_dir() and not (output_root / record.job_id).exists():
        return (f"job {record.job_id}'s files were moved to the trash by `continuo prune` ({trashed}); "
                f"`continuo prune --restore {record.job_id}` puts them back where they were")
    missing = [output.path for output in record.outputs if not Path(output.path).is_file()]
    if missing:
        return (f"job {record.job_id}'s file {missing[0]} is no longer on disk (moved or removed outside "
                "Continuo); render it again with a new job id (its seed is in the journal)")
    return None


def _requested(params: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in params.items() if key not in OWN_PARAMS}
