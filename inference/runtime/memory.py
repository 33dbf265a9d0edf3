"""Memory: recognising an out-of-memory failure, giving the memory back after one, what is free, and the heap.

CUDA reports running out of memory as torch.OutOfMemoryError from the caching allocator, but also as a
plain RuntimeError from libraries that allocate on their own (cuBLAS workspaces, cuDNN, flash-attn,
bitsandbytes), and the CPU allocator says "can't allocate memory". All of them are one thing to a
caller: out_of_memory, with a hint. Before the cached blocks go back to the driver, the locals of the
frames that failed are cleared: the exception's traceback otherwise keeps their tensors alive, and
empty_cache() could free nothing.

Reading memory is portable: /proc first (Linux: exact, and the fields psutil does not have), else psutil (macOS,
Windows; a dependency of ours); a figure no source can give is None, never a crash. Giving freed heap back is per
C library (heap_trimmer): glibc's malloc_trim, macOS's malloc_zone_pressure_relief, else nothing.
"""

from __future__ import annotations

import ctypes
import functools
import gc
import os
import sys
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
    if torch.backends.mps.is_available():
        torch.mps.empty_cache()


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
    if collect:
        gc.collect()
    trim = heap_trimmer()
    if trim is not None:
        trim()


@functools.cache
def heap_trimmer(platform: str = sys.platform):
    """The C library's call that hands freed heap back to the system, or None where there is none to call:
    glibc's malloc_trim(0) on Linux (musl has none), malloc_zone_pressure_relief(NULL, 0) on macOS; Windows' heap
    gives back on its own."""
    try:
        if platform.startswith("linux"):
            trim = ctypes.CDLL("libc.so.6").malloc_trim
            trim.argtypes = [ctypes.c_size_t]
            return lambda: trim(0)
        if platform == "darwin":
            relief = ctypes.CDLL("/usr/lib/libSystem.B.dylib").malloc_zone_pressure_relief
            relief.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
            return lambda: relief(None, 0)
    except (OSError, AttributeError):  # no such library or call here (musl, a sandbox): nothing to give back
        return None
    return None


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
    """Memory free for a new model on device: the GPU's free memory for CUDA, the machine's available memory for
    the CPU and for MPS (Apple's GPU shares it), capped there by what Metal recommends this process use (0 when it
    cannot be read: the caller then takes the careful way)."""
    if device.startswith("cuda") and torch.cuda.is_available():
        free, _total = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    available = available_memory_bytes() or 0
    if device.startswith("mps") and torch.backends.mps.is_available():
        metal = torch.mps.recommended_max_memory() - torch.mps.driver_allocated_memory()
        available = min(available, metal) if available else metal
    return max(0, int(available))


def proc_status_bytes(field: str, pid: int | str = "self", table: str = "status") -> int | None:
    """A "<field>: <n> kB" line of /proc/<pid>/status (or /proc/meminfo with table="meminfo"), in bytes; None
    where there is no /proc (macOS, Windows) or no such field."""
    path = "/proc/meminfo" if table == "meminfo" else f"/proc/{pid}/{table}"
    try:
        with open(path) as lines:
            for line in lines:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _psutil():
    try:
        import psutil
    except ImportError:
        return None
    return psutil


def resident_bytes(pid: int | None = None) -> int | None:
    """Resident memory of a process (this one by default): VmRSS, else psutil's rss; None when neither can tell."""
    found = proc_status_bytes("VmRSS", "self" if pid is None else pid)
    if found is not None:
        return found
    psutil = _psutil()
    try:
        return None if psutil is None else int(psutil.Process(pid).memory_info().rss)
    except Exception:  # no such process, no permission
        return None


def peak_resident_bytes() -> int | None:
    """This process's peak resident memory: VmHWM, else getrusage's ru_maxrss (kilobytes on Linux, bytes on
    macOS), else psutil's peak working set (Windows)."""
    found = proc_status_bytes("VmHWM")
    if found is not None:
        return found
    try:
        import resource
    except ImportError:  # Windows
        psutil = _psutil()
        info = None if psutil is None else psutil.Process().memory_info()
        return getattr(info, "peak_wset", None)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def total_memory_bytes() -> int | None:
    """The machine's physical memory: sysconf (Linux, macOS), else psutil (Windows); None when neither can tell."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # Windows has no os.sysconf
        psutil = _psutil()
        return None if psutil is None else int(psutil.virtual_memory().total)


def available_memory_bytes() -> int | None:
    """Memory a new allocation can have without swapping: MemAvailable, else psutil's available; None when
    neither can tell."""
    found = proc_status_bytes("MemAvailable", table="meminfo")
    if found is not None:
        return found
    psutil = _psutil()
    return None if psutil is None else int(psutil.virtual_memory().available)
