"""The inference package's error tree; each error carries the wire code the bridge sends."""

from __future__ import annotations


class InferenceError(Exception):
    code: str = "model_error"


class ModelLoadError(InferenceError):
    """A checkpoint could not be found, downloaded or loaded; the message says what to do."""

    code = "model_error"


class Cancelled(InferenceError):
    code = "cancelled"


class OutOfMemory(InferenceError):
    code = "out_of_memory"
