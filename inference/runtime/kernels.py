"""Our C++ CPU kernels (runtime/csrc/: one file per kernel, ops.cpp the op library), built on first use and cached;
torch's ops stand in where they cannot.

- decode_attention: one decode step's attention (one query per batch row and head) over the KV cache,
  read in place in its own dtype (fp32, bf16, or mu-law int8 codes dequantized in registers). It is the
  `fused-cpu` attention backend; prefill (many queries at once) stays on SDPA. Stand-in: SDPA. Each row's result
  depends on its own keys alone (its own count, masked keys exactly 0, fixed summation order): a row batched with
  others gives the bits it gives alone (inference/musicgen/batching.py).
- cache_write: one new token per row into a KV cache (fp32, bf16, or int8 with its scales), each row at its own
  position, in one pass. Stand-in: torch's indexing writes (inference/musicgen/kv_cache.py).
- int8_linear: int8 weights (one scale per output channel) against rows of activations, on AVX-512
  VNNI where the CPU has it (a portable loop elsewhere): the int8 weight mode's linear, decode and
  prefill. Stand-in: torch's dynamic int8 Linear (fbgemm), about 25 % slower per decode step here.
- guided_sample (sampling.cpp): one decode step's top-k sampling (CFG combine, temperature, top-k, softmax,
  / noise, argmax) in one call on the calling thread, bit for bit the Python path's tokens (its softmax is torch's
  CPU kernel compiled from ATen's vector headers, used only where torch dispatches to the same width:
  guided_sample_op). Stand-in: the Python path (inference/musicgen/decode.py: Sampler, which has the figures).

Building needs a C++ compiler (g++ or clang++) and ninja; torch's extension builder compiles the
sources once per machine (about 25 s on 2 cores) into kernels_dir() (CONTINUO_KERNELS_DIR, default
~/.cache/continuo/kernels) and later starts load the built library directly (a few ms). The library
name carries a hash of the source, the flags, torch's version and this CPU's instruction sets, so a
changed source or another CPU under the same home directory builds afresh instead of loading a stale
binary. A failed build is logged with its reason and torch's ops stand in: slower, never broken (`continuo doctor`
shows which). JIT rather than a compiled wheel: building at `pip install` time needs torch inside pip's isolated
build environment (another 7 GB) and ties the wheel to one torch ABI.

Platforms (build_flags): every kernel keeps its x86 intrinsics behind the compiler's own ISA macros (__AVX512F__,
__AVX512VNNI__, ...) beside a portable loop, so which path a build takes is decided by its flags alone, for every
source in SOURCES, including ones added later. x86-64 builds with -march=native; arm64 with -mcpu=native (Linux)
or -mcpu=apple-m1 (macOS: every Apple Silicon chip has at least its instructions), which leaves the x86 macros
undefined, so the portable loops compile, auto-vectorized to NEON. CONTINUO_KERNELS_PORTABLE=1 builds that same
portable path on x86 (-mno-avx512f, no -march=native; a library of its own name): the tests build it a second time
and run the kernel tests against it, and read the library's instructions to show no AVX-512 is in it
(tests/inference/runtime/test_portable_kernels.py). Flags a compiler refuses are probed before the build and left
out (Apple's clang has no -fopenmp: the kernels then run on one thread, and doctor says so); what the build used
is kept beside the library (build-notes.txt). Windows builds nothing: torch's ops stand in (MSVC is not verified).

Why our own, measured on the 2-core development machine (musicgen-small shapes, 72 weight matrices of
1024x4096; docs/benchmarks.md). A decode step is a batch of two rows (CFG) against every weight, so it is bound by
reading memory, and torch's stock ops read it badly at that shape:
- torch's dynamic int8 Linear (fbgemm) took 11 ms for the 302 MB, barely faster on two threads than one. Our
  int8_linear quantizes each row of x with its own abs-max scale and runs VNNI dot products with software
  prefetch: 7.9 ms, the speed this machine reads memory at all (38 GB/s), and more accurate (relative error
  0.011 against fp32, fbgemm's 0.017). Prefill runs the same kernel in 4 x 4 register tiles over cache-held
  blocks of 16 weight rows: 1000 rows against a 1024x4096 weight in 10 ms, as fast as fbgemm and 5x a
  dequantize-then-GEMM (48 ms). (fp32 / bf16 go through oneDNN instead: inference/runtime/quantize.py.)
- SDPA costs 40-60 us per call at one query; self- plus cross-attention is 48 calls a step, about 3 ms before any
  key is read. decode_attention reads the cache where it lies, in its own dtype (dequantizing the mu-law cache
  into a temporary made it 3x slower than fp32), straight into the layout the output projection takes.
- Batched jobs made attention the cost of each row added (8 rows at 300-400 positions: 36 of 99 ms, against 9.5
  for 2 rows), so the kernel prefetches 16 keys ahead (the hardware prefetch restarts at every 4 KiB page),
  scores 16 keys per block at head size 64 and accumulates values two keys at a time; with the int8 cache
  (a quarter of the bytes), 24 layers at 400 positions, 8 rows: fp32 35.0 -> 31.2 ms, bf16 26.2 -> 20.0,
  int8 37.2 -> 13.9. New keys and values go in by cache_write (one pass, every target line asked for first).
Together: an int8 step at 250 positions of context from 22.2 ms to 14.9 ms.

Threads: the kernels split their loops over ATen's OpenMP threads with csrc/parallel.cpp:parallel_claims, each
thread claiming runs of whole blocks as it finishes one (OpenMP's guided schedule), where at::parallel_for's fixed
halves held the first thread at every join while the slower one finished (perf, 2026-12-07, quiet: the calling
thread spent 20 % of a step spinning in libgomp). Measured in one process, blocks of 25 steps alternated, median
step (musicgen-small int4, 2 threads, load 1.1-1.7): 15.19 -> 14.78 and 16.32 -> 15.58 ms over 1000 steps, within
+-0.3 ms over 600; with a busy loop on one core no change (24.5 / 25.2). continuo limits libgomp's spin-wait
(bridge/cli.py:limit_openmp_spin). A split of our own (the caller and a helper claiming chunks from one counter, so
the caller never waits for a helper that has no core) was built and measured against it (2026-12-07, `continuo
bench step --quick --threads 2`, musicgen-small int4 weights with int8 heads, alternated, ms per step): quiet (load
1.2-1.7) 16.1-17.3 against OpenMP's 11.7-12.7; with two busy loops on both cores (a DAW playing) 19.0 against
36.2. It was not kept: the quiet machine is where the real-time targets are held, and the spin limit already took
the loaded step from 268 to about 40-50 ms. Getting both (a split that is as fast quiet) is open.

Also tried for the step and left out (2026-12-07, musicgen-small int4, 2 cores AMD EPYC, quiet):
- One thread through the layers and the other walking the step's bytes ahead of it (a prefetch of every line up
  to 6 MB past the current op, so the memory is busy during attention and norms too): 14.5-15.6 ms a step against
  13.4-14.9. One thread's int4 arithmetic reads no faster than about 23 GB/s, as two threads do now; what the
  linears lose is not the memory's idle time.
- The KV cache in transparent huge pages (madvise; THP is "madvise" here): the self-attention 1.62 -> 1.61 and
  1.55 -> 1.47 ms a step, within the spread of a process. The same process runs 13.4-18.2 ms a step from one
  start to the next (four starts in a row, load 1.0-1.5; the bandwidth probe 32-48 GB/s): single figures from this
  machine carry that spread.
- The linears' per-call vectors (activation codes, group sums, row scales) kept per thread instead of allocated
  and zeroed each call (perf had malloc, free and memset at 2-3 % of the calling thread): in one process, 25-step
  blocks alternated over 800 steps, 14.32 -> 14.30 and 14.57 -> 14.61 ms a step. No gain: not kept.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import importlib.util
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

log = logging.getLogger("continuo.inference")

# ops.cpp declares the op library (every schema); each kernel file registers its implementation. Built as one
# library: torch's extension builder compiles the sources together.
SOURCES = tuple(Path(__file__).with_name("csrc") / name
                for name in ("ops.cpp", "parallel.cpp", "decode_attention.cpp", "int8_linear.cpp", "cache_write.cpp",
                             "int4_linear.cpp", "decode_layers.cpp", "sampling.cpp"))
OPS = ("decode_attention", "cache_write", "int8_linear", "int8_linear_uses_vnni", "int4_linear", "decode_layers",
       "decode_layers_profile", "decode_plan", "decode_planned", "decode_plan_free", "embed_rows", "guided_sample",
       "guided_probs", "guided_sample_capability")
PORTABLE_VARIABLE = "CONTINUO_KERNELS_PORTABLE"  # "1": build the portable loops only (the tests' second build)
STALE_LOCK_S = 600.0  # a build takes about 25 s; a lock this old belongs to a build that died
NOTES_FILE = "build-notes.txt"  # beside the library: what its build left out (flags the compiler refused)
X86_MACHINES = ("x86_64", "amd64", "i386", "i686")
ARM_MACHINES = ("arm64", "aarch64")


@dataclass(frozen=True)
class KernelStatus:
    usable: bool
    reason: str


_lock = threading.Lock()
_status: KernelStatus | None = None


def cpu_features() -> str:
    """This CPU's instruction-set flags, lower case: /proc/cpuinfo (Linux), sysctl (macOS), else the machine name.
    Part of the build's identity, and what cpu_bf16 reads."""
    try:
        with open("/proc/cpuinfo") as info:
            line = next((line for line in info if line.startswith(("flags", "Features"))), None)
            if line is not None:
                return line
    except OSError:
        pass
    if sys.platform == "darwin":
        return sysctl_features() or platform.machine()
    return platform.machine()


def sysctl_features() -> str:
    """macOS: the instruction sets sysctl reports (hw.optional.arm.FEAT_BF16: 1 -> bf16, hw.optional.avx512f: 1
    -> avx512f, Intel's machdep.cpu.features words), space-separated; "" when sysctl cannot be run."""
    try:
        listing = subprocess.run(["sysctl", "hw.optional", "machdep.cpu.features", "machdep.cpu.leaf7_features"],
                                 capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    found = []
    for line in listing.splitlines():
        key, _, value = line.partition(":")
        if key.startswith("hw.optional.") and value.strip() == "1":
            found.append(key.removeprefix("hw.optional.").removeprefix("arm.").removeprefix("FEAT_").lower())
        elif key.startswith("machdep.cpu."):
            found += value.lower().replace(".", "_").split()
    return " ".join(found)


def portable_build() -> bool:
    """CONTINUO_KERNELS_PORTABLE=1: build the portable loops even where the CPU has AVX-512."""
    return os.environ.get(PORTABLE_VARIABLE, "").strip() not in ("", "0")


def build_flags(machine: str | None = None, system: str | None = None, portable: bool | None = None
                ) -> tuple[str, ...]:
    """The flags a build asks for on this machine (the build leaves out any the compiler refuses: usable_flags).

    x86-64: -march=native (the AVX-512 VNNI paths where the CPU has them); portable: -mno-avx512f, so the x86
    macros stay undefined even where a compiler's default target has AVX-512. arm64: -mcpu=native on Linux,
    -mcpu=apple-m1 on macOS; no x86 macro is defined there, so every kernel builds its portable loop."""
    machine = (machine or platform.machine()).lower()
    system = system or sys.platform
    portable = portable_build() if portable is None else portable
    flags = ["-O3"]
    if machine in X86_MACHINES:
        flags.append("-mno-avx512f" if portable else "-march=native")
    elif machine in ARM_MACHINES and not portable:
        flags.append("-mcpu=apple-m1" if system == "darwin" else "-mcpu=native")
    flags.append("-fopenmp")
    return tuple(flags)


def library_name() -> str:
    """The library's name: a hash of the sources, the flags asked for, torch's version and this CPU (no compiler
    is run, so a built library is found without one)."""
    identity = "\n".join([*(source.read_text() for source in SOURCES), " ".join(build_flags()), torch.__version__,
                          cpu_features()])
    return "continuo_cpu_" + hashlib.sha1(identity.encode()).hexdigest()[:12]


def kernels_dir() -> Path:
    """Where built libraries live: CONTINUO_KERNELS_DIR, else $XDG_CACHE_HOME/continuo/kernels (~/.cache)."""
    return cache_dir("CONTINUO_KERNELS_DIR", "kernels")


def cache_dir(variable: str, folder: str) -> Path:
    """The folder an environment variable names, else $XDG_CACHE_HOME/continuo/<folder> (~/.cache by default)."""
    explicit = os.environ.get(variable)
    if explicit:
        return Path(explicit).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()
    return cache / "continuo" / folder


def fallback_dir() -> Path:
    """Where kernels are built when kernels_dir() cannot be written: a per-user folder in the temp dir."""
    return Path(tempfile.gettempdir()) / f"continuo-kernels-{user_tag()}"


def user_tag() -> str:
    """This user, for a per-user folder name: the uid where there is one (POSIX), else the login name (Windows)."""
    getuid = getattr(os, "getuid", None)
    if getuid is not None:
        return str(getuid())
    try:
        return getpass.getuser()
    except Exception:  # no login name in the environment either
        return "user"


def writable(directory: Path) -> Path:
    """directory, created; or a per-user folder under the temp dir when the cache cannot be written."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / ".write-test"
        probe.touch()
        probe.unlink()
        return directory
    except OSError as error:
        fallback = fallback_dir() / directory.name
        log.warning("CPU kernels: cannot write %s (%s); building in %s instead", directory, error, fallback)
        fallback.mkdir(parents=True, exist_ok=True)
        return fallback


def compiler() -> str:
    """The C++ compiler torch's extension builder runs: $CXX, else c++."""
    return os.environ.get("CXX", "c++")


def missing_tools() -> str | None:
    """Why a build cannot even start here, in the words of this platform, with the one command that fixes it; or
    None."""
    fallback = "until then torch's own (slower) kernels run"
    if sys.platform not in ("linux", "darwin"):
        return (f"our CPU kernels are built on Linux and macOS only (this is {sys.platform}): torch's own kernels "
                "run instead (slower, same results); nothing to install")
    if shutil.which(compiler()) is None:
        return f"no C++ compiler ({compiler()!r} is not on PATH): {compiler_install_hint()}; {fallback}"
    if sys.platform == "darwin" and "CXX" not in os.environ and not xcode_tools_installed():
        # /usr/bin/c++ is always there on macOS: a stub that asks to install the tools and fails
        return (f"no C++ compiler (the Xcode Command Line Tools are not installed): {compiler_install_hint()}; "
                f"{fallback}")
    venv_bin = str(Path(sys.executable).parent)
    if shutil.which("ninja") is None and shutil.which("ninja", path=venv_bin) is None:
        return f"ninja is not installed: run `{sys.executable} -m pip install ninja`; {fallback}"
    if importlib.util.find_spec("setuptools") is None:  # torch.utils.cpp_extension imports it
        return f"setuptools is not installed: run `{sys.executable} -m pip install setuptools`; {fallback}"
    return None


def xcode_tools_installed() -> bool:
    """macOS: whether the Command Line Tools (or Xcode) are installed, as `xcode-select -p` answers."""
    try:
        return subprocess.run(["xcode-select", "-p"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def compiler_install_hint(system: str | None = None, os_release: Path = Path("/etc/os-release")) -> str:
    """The one command that installs a C++ compiler here."""
    system = system or sys.platform
    if system == "darwin":
        return "run `xcode-select --install`"
    try:
        fields = dict(line.split("=", 1) for line in os_release.read_text().splitlines() if "=" in line)
    except OSError:
        fields = {}
    family = " ".join(fields.get(key, "").strip('"').lower() for key in ("ID", "ID_LIKE")).split()
    for names, command in ((("debian", "ubuntu"), "sudo apt install g++"),
                           (("fedora", "rhel", "centos"), "sudo dnf install gcc-c++"),
                           (("arch",), "sudo pacman -S gcc"), (("opensuse", "suse"), "sudo zypper install gcc-c++"),
                           (("alpine",), "sudo apk add g++")):
        if any(name in family for name in names):
            return f"run `{command}`"
    return "install g++ or clang++ with your system's package manager"


def usable_flags(flags: tuple[str, ...]) -> tuple[list[str], list[str], list[str]]:
    """(compile flags, link flags, notes): flags minus those this compiler refuses, each asked of it on a tiny
    program. -fopenmp needs the compiler's OpenMP (Apple's clang has none): without it, -fopenmp-simd keeps the
    vector loops and the kernels run on one thread."""
    kept, link, notes = [], [], []
    for flag in flags:
        if flag == "-fopenmp":
            if compiles(["-fopenmp"], "#include <omp.h>\nint main() { return omp_get_max_threads() > 0 ? 0 : 1; }\n",
                        link=True):
                kept.append(flag)
                link.append(flag)
                continue
            notes.append(f"one thread: {compiler()} has no OpenMP"
                         + (" (`brew install libomp` does not help Apple's clang; the kernels still vectorize)"
                            if sys.platform == "darwin" else ""))
            if compiles(["-fopenmp-simd"], "int main() { return 0; }\n"):
                kept.append("-fopenmp-simd")
        elif flag == "-O3" or compiles([flag], "int main() { return 0; }\n"):
            kept.append(flag)
        else:
            notes.append(f"{compiler()} refuses {flag}: built without it")
    return kept, link, notes


def compiles(flags: list[str], program: str, *, link: bool = False) -> bool:
    """Whether the compiler builds program with flags (linked into an executable when link)."""
    with tempfile.TemporaryDirectory(prefix="continuo-probe-") as folder:
        source = Path(folder) / "probe.cpp"
        source.write_text(program)
        command = [compiler(), *flags, str(source), "-o", str(Path(folder) / "probe")]
        if not link:
            command.insert(1, "-c")
        try:
            return subprocess.run(command, capture_output=True, timeout=60).returncode == 0
        except (OSError, subprocess.SubprocessError):
            return False


def build() -> KernelStatus:
    if sys.platform not in ("linux", "darwin"):
        return KernelStatus(False, missing_tools() or f"not built on {sys.platform}")
    started = time.monotonic()
    name = library_name()
    directory = kernels_dir() / name
    for place in (directory, fallback_dir() / name):
        built = place / f"{name}.so"
        if built.is_file() and not (place / "lock").exists():  # lock: torch's marker of a build in progress
            try:
                torch.ops.load_library(str(built))
                return registered(started, place)
            except OSError as error:  # unreadable or truncated: build it again
                log.warning("CPU kernels: cannot load %s (%s); rebuilding", built, error)
    lock = directory / "lock"
    if lock.exists() and time.time() - lock.stat().st_mtime > STALE_LOCK_S:
        log.warning("CPU kernels: removing %s, left by a build that stopped %.0f s ago", lock,
                    time.time() - lock.stat().st_mtime)
        lock.unlink(missing_ok=True)  # torch would wait on it forever
    problem = missing_tools()
    if problem is not None:
        return KernelStatus(False, problem)
    venv_bin = str(Path(sys.executable).parent)
    if venv_bin not in os.environ.get("PATH", "").split(os.pathsep):  # ninja from `pip install ninja` lives here
        os.environ["PATH"] = venv_bin + os.pathsep + os.environ.get("PATH", "")
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)  # "No CUDA runtime" is not our news
    from torch.utils.cpp_extension import load_inline

    directory = writable(directory)
    flags, link, notes = usable_flags(build_flags())
    log.info("compiling CPU kernels (once per machine, about 25-50 s): %s into %s with %s%s", name, directory,
             " ".join(flags), "".join(f"; {note}" for note in notes))
    (directory / NOTES_FILE).write_text("".join(f"{note}\n" for note in notes))
    with progress_lines("compiling CPU kernels (once per machine)"):
        load_inline(name, cpp_sources=[source.read_text() for source in SOURCES], extra_cflags=flags,
                    extra_ldflags=link, is_python_module=False, verbose=False, build_directory=str(directory))
    return registered(started, directory)


PROGRESS_EVERY_S = 10.0  # a long silent step says it is still going this often


@contextlib.contextmanager
def progress_lines(what: str, every_s: float = PROGRESS_EVERY_S) -> Iterator[None]:
    """One log line every ``every_s`` while the block runs ("compiling CPU kernels (once per machine): 20 s so far"),
    then one when it is done, so a first start that compiles does not look hung."""
    started, done = time.monotonic(), threading.Event()

    def tick() -> None:
        while not done.wait(every_s):
            log.info("%s: %.0f s so far", what, time.monotonic() - started)

    ticker = threading.Thread(target=tick, name="continuo-progress", daemon=True)
    ticker.start()
    try:
        yield
    finally:
        done.set()
        ticker.join()
        log.info("%s: done in %.1f s", what, time.monotonic() - started)


def registered(started: float, directory: Path) -> KernelStatus:
    ops = torch.ops.continuo_cpu
    for name in OPS:
        if not hasattr(ops, name):
            return KernelStatus(False, f"built, but torch.ops.continuo_cpu.{name} is not registered")
    isa = "AVX-512 VNNI" if ops.int8_linear_uses_vnni() else "portable loops (no AVX-512 VNNI in this build)"
    try:
        notes = (directory / NOTES_FILE).read_text().split("\n")
    except OSError:
        notes = []
    if portable_build():
        notes.insert(0, f"portable build ({PORTABLE_VARIABLE})")
    extra = "".join(f"; {note}" for note in notes if note)
    return KernelStatus(True, f"decode attention + int8 linear ({isa}{extra}), ready in "
                              f"{time.monotonic() - started:.1f} s")


def kernels_status() -> KernelStatus:
    """Build or load the kernel once per process; never raises (a failure is a reason, and SDPA is used)."""
    global _status
    with _lock:
        if _status is None:
            try:
                _status = build()
            except Exception as error:  # a compiler error must cost speed, never the daemon
                detail = str(error).strip().splitlines()
                _status = KernelStatus(False, f"build failed ({type(error).__name__}: {detail[-1] if detail else ''})")
            if not _status.usable:
                log.warning("CPU kernels unavailable (torch's own ops stand in, slower): %s", _status.reason)
        return _status


def decode_attention_op():
    """torch.ops.continuo_cpu.decode_attention, building it if needed; raises with the reason when it cannot."""
    status = kernels_status()
    if not status.usable:
        raise RuntimeError(f"attention 'fused-cpu' is not available here: {status.reason}")
    return torch.ops.continuo_cpu.decode_attention


def cache_write_op():
    """torch.ops.continuo_cpu.cache_write, or None where the kernels cannot be built (torch's indexing writes)."""
    return torch.ops.continuo_cpu.cache_write if kernels_status().usable else None


def int4_linear_op():
    """torch.ops.continuo_cpu.int4_linear, or None when the kernels cannot be built here (the reason is logged)."""
    return torch.ops.continuo_cpu.int4_linear if kernels_status().usable else None


def guided_sample_op():
    """torch.ops.continuo_cpu.guided_sample where it gives torch's own bits, else None: the kernels are built and
    sampling.cpp was compiled for the vector width torch's CPU kernels dispatch to in this process (its softmax is
    torch's, at that width: AVX512 or AVX2; a portable build, another CPU, or ATEN_CPU_CAPABILITY set otherwise
    keeps the Python path)."""
    if not kernels_status().usable:
        return None
    ops = torch.ops.continuo_cpu
    if ops.guided_sample_capability() != torch.backends.cpu.get_cpu_capability():
        return None
    return ops.guided_sample


def int8_linear_op():
    """torch.ops.continuo_cpu.int8_linear, or None when the kernels cannot be built here (the reason is logged)."""
    return torch.ops.continuo_cpu.int8_linear if kernels_status().usable else None
