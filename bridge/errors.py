"""The bridge's error tree. Every error carries the stable code the wire sends.

Codes (see osc_schema/continuo.json "error_codes"): bad_request, not_found, busy,
cancelled, out_of_memory, model_error, io_error, interrupted, audio_error, id_conflict, disk_full.
"""

from __future__ import annotations


class BridgeError(Exception):
    """Base of every error the bridge reports to a client."""

    code: str = "bad_request"

    def __init__(self, message: str, *, job_id: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.job_id = job_id


class BadRequest(BridgeError):
    code = "bad_request"


class NotFound(BridgeError):
    code = "not_found"


class Busy(BridgeError):
    code = "busy"


class IoError(BridgeError):
    code = "io_error"


class IdConflict(BridgeError):
    """A job id that belongs to another job (other request parameters, or files of that id on disk or in the trash):
    refused, never answered with the other job's files."""

    code = "id_conflict"


class DiskFull(BridgeError):
    """The output disk is full or over its quota (ENOSPC, EDQUOT), or too full for a render's estimated size."""

    code = "disk_full"


class AudioError(BridgeError):
    """Processing audio failed (a plugin threw mid-render, the model gave broken samples): not the client's fault."""

    code = "audio_error"


class ConfigError(BridgeError):
    """A settings file, preset or flag is wrong; raised at startup, never on the wire."""

    code = "bad_request"


class ReplicaLost(BridgeError):
    """The cluster replica running a job died mid-take; the worker re-queues the job once."""

    code = "model_error"
