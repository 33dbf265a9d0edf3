"""Device memory: recognising an out-of-memory failure, and giving the memory back after one.

CUDA reports running out of memory as torch.OutOfMemoryError from the caching allocator, but also as a
plain RuntimeError from libraries that allocate on their own (cuBLAS workspaces, cuDNN, flash-attn,
bitsandbytes), and the CPU allocator says "can't allocate memory". All of them are one thing to a
caller: out_of_memory, with a hint. Before the cached blocks go back to the driver, the locals of the
frames that failed are cleared: the exception's traceback otherwise keeps their tensors alive, and
empty_cache() could free nothing.
"""

from __future__ import annotations

import gc
import traceback
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from inference.errors import InferenceError, OutOfMemory

OOM_MARKERS = (
    "out of memory",  # the caching allocator, "CUDA error: out of memory" from kernels and flash-attn
    "can't allocate memory",  # the CPU allocator
    "CUBLAS_STATUS_ALLOC_FAILED",
    "CUDNN_STATUS_ALLOC_FAILED",
    "cudaErrorMemoryAllocation",
)


def is_out_of_memory(error: BaseException) -> bool:
    if isinstance(error, torch.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and any(marker in str(error) for marker in OOM_MARKERS)


def release_memory(error: BaseException | None = None) -> None:
    """Drop what error's finished frames hold, collect, and hand CUDA's cached blocks back to the driver."""
    if error is not None:
        traceback.clear_frames(error.__traceback__)  # frames still running (the caller's) are skipped
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"


@contextmanager
def out_of_memory_errors(doing: str, hint: str) -> Iterator[None]:
    """Inside: running out of memory becomes OutOfMemory("out of memory while <doing> (...); <hint>"), once the
    memory is released; any other error passes unchanged. Also a decorator."""
    try:
        yield
    except InferenceError:
        raise
    except Exception as error:
        if not is_out_of_memory(error):
            raise
        release_memory(error)
        raise OutOfMemory(f"out of memory while {doing} ({first_line(error)}); {hint}") from error
