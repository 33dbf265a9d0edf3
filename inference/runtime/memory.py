"""Memory: recognising an out-of-memory failure, giving the memory back after one, what is free, and the heap.

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
from pathlib import Path

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


def freeze_heap() -> None:
    """Collect, then take every object alive now (the loaded model, the imports: about 200,000 objects) out of
    the cyclic collector's sight for good (gc.freeze). A full collection over them costs 0.3-0.5 s with every
    thread stopped: in a serving process that is a step of audio late, and a burst of control messages dropped
    by the kernel while the receive thread waits (8,267 of 20,000 in one measured burst). Frozen objects are
    still freed by their reference counts; a model switch thaws them to collect the old engine's cycles
    (thaw_heap) and freezes again. For a process that serves: a test process would freeze its earlier tests."""
    gc.collect()
    gc.freeze()


def trim_heap(*, collect: bool = True) -> None:
    """Collect (unless ``collect`` is False), and hand freed heap back to the system (glibc), so the daemon's
    resident size is what it uses, not its peak: after loading, and after each job (its transient peak: a stems
    separation's activations). A worker's trim after a job does not collect: a full collection of an unfrozen heap
    stops every thread for 0.1-0.5 s, and the collector frees per-job garbage on its own."""
    import ctypes

    if collect:
        gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, musl): the allocator keeps its own counsel
        pass


def thaw_heap() -> bool:
    """Give frozen objects back to the collector (the next collection sees them); whether any were frozen."""
    frozen = gc.get_freeze_count() > 0
    gc.unfreeze()
    return frozen


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


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def weight_bytes(directory: Path) -> int:
    """Bytes of the weight files under directory (a checkpoint, or a pipeline's component folders); links are
    followed, as in a Hugging Face cache snapshot."""
    return sum(path.stat().st_size for path in Path(directory).rglob("*")
               if path.suffix in WEIGHT_SUFFIXES and path.is_file())


def free_memory_bytes(device: str) -> int:
    """Memory free for a new model on device: the GPU's free memory for CUDA, MemAvailable of the machine for the
    CPU (0 when it cannot be read: the caller then takes the careful way)."""
    if device.startswith("cuda") and torch.cuda.is_available():
        free, _total = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
