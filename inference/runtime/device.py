"""Which device runs the model, and which speed-ups this machine can use.

Every check here is defensive: an optional package that is missing, broken or
built for another CUDA must never stop the daemon, only show up as a reason.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from dataclasses import dataclass

import torch

from inference.errors import ModelLoadError

log = logging.getLogger("continuo.inference")

MIN_FREE_GPU_BYTES = 2 * 2**30  # 'auto' skips a GPU with less free (musicgen-small fp16 + caches: ~1.5 GiB)


@dataclass(frozen=True)
class DeviceCheck:
    """One row of `continuo doctor`: can this machine use a speed-up or mode, and if not, why not.

    (What a loaded model can do is inference.api.Capability, another thing.)
    """

    name: str
    usable: bool
    reason: str


def pick_device(requested: str = "auto") -> torch.device:
    """auto: the first CUDA GPU this torch has kernels for and with MIN_FREE_GPU_BYTES free, else Apple's GPU
    (mps) where torch reports it, else the CPU (the log says why each GPU was passed over); anything else must be
    available."""
    wanted = requested.strip().lower()
    if wanted == "auto":
        for index in range(torch.cuda.device_count() if torch.cuda.is_available() else 0):
            why_not = gpu_unusable_reason(index)
            if why_not is None:
                return torch.device(f"cuda:{index}")
            log.warning("device auto: skipping cuda:%d: %s", index, why_not)
        return torch.device("mps") if torch.backends.mps.is_available() else torch.device("cpu")
    try:
        device = torch.device(wanted)
    except (RuntimeError, ValueError):
        raise ModelLoadError(f"unknown device {requested!r}; {describe_available_devices()}") from None
    if not is_device_available(device):
        raise ModelLoadError(f"device {requested!r} is not available on this machine; {describe_available_devices()}")
    return device


def gpu_unusable_reason(index: int) -> str | None:
    """Why 'auto' should not pick GPU index: no kernels in this torch for its architecture, or too little free."""
    major, minor = torch.cuda.get_device_capability(index)
    if not arch_supported(major, minor, torch.cuda.get_arch_list()):
        return (f"compute capability {major}.{minor} is not in this torch's kernels "
                f"({' '.join(torch.cuda.get_arch_list())}); install a torch build for it")
    free, _total = torch.cuda.mem_get_info(index)
    if free < MIN_FREE_GPU_BYTES:
        return f"only {free / 2**30:.1f} GiB free (needs {MIN_FREE_GPU_BYTES / 2**30:.0f}); free the GPU or pick one"
    return None


def arch_supported(major: int, minor: int, arch_list: list[str]) -> bool:
    """sm_XY kernels run on X.Y exactly (and X.Z for Z > Y of the same major); compute_XY PTX JIT-compiles
    for any X.Y at or above it."""
    capability = major * 10 + minor
    for arch in arch_list:
        kind, _, number = arch.partition("_")
        digits = "".join(ch for ch in number if ch.isdigit())
        if not digits:
            continue
        built = int(digits)
        if kind == "sm" and built // 10 == major and built <= capability:
            return True
        if kind == "compute" and built <= capability:
            return True
    return False


def is_device_available(device: torch.device) -> bool:
    if device.type == "cpu":
        return True
    if device.type == "cuda":
        return torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count()
    if device.type == "mps":
        return torch.backends.mps.is_available()
    return False


def describe_available_devices() -> str:
    names = ["cpu"]
    if torch.cuda.is_available():
        names += [f"cuda:{i} ({torch.cuda.get_device_name(i)})" for i in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        names.append("mps")
    return "available: " + ", ".join(names) + " (or 'auto')"


def describe_accelerations() -> list[DeviceCheck]:
    """One line per speed-up: can this machine use it, and if not, why not."""
    checks = (
        check_cuda,
        check_mps,
        check_bf16,
        check_fp16,
        check_cpu_int8,
        check_bitsandbytes,
        check_flash_attn,
        check_cuda_graphs,
        check_sdpa,
        check_cpu_kernels,
    )
    return [run_check(check) for check in checks]


def run_check(check) -> DeviceCheck:
    name = check.__name__.removeprefix("check_")
    try:
        return check()
    except Exception as error:  # a probe must never take the daemon down
        return DeviceCheck(name, False, f"could not check ({type(error).__name__}: {error})")


def check_cuda() -> DeviceCheck:
    if not torch.cuda.is_available():
        built = torch.version.cuda
        if built is None:
            why = "this PyTorch build has no CUDA support; install a CUDA build of torch to use an NVIDIA GPU"
        else:
            why = f"no NVIDIA GPU or driver found (torch is built for CUDA {built}); running on the CPU"
        return DeviceCheck("cuda", False, why)
    props = torch.cuda.get_device_properties(torch.cuda.current_device())
    memory_gib = props.total_memory / 2**30
    details = f"{props.name}, {memory_gib:.1f} GiB, compute capability {props.major}.{props.minor}"
    return DeviceCheck("cuda", True, details)


def check_mps(system: str | None = None) -> DeviceCheck:
    """Apple's GPU (Metal Performance Shaders): Apple Silicon Macs, macOS 12.3 or newer, torch's macOS wheel."""
    system = system or sys.platform
    if torch.backends.mps.is_available():
        bf16 = "fp16 and bf16" if mps_bf16_supported() else "fp16 (bf16 needs macOS 14)"
        return DeviceCheck("mps", True, f"Apple GPU (Metal): {bf16} weights; 'auto' picks it when no CUDA GPU is there")
    if system != "darwin":
        return DeviceCheck("mps", False, "Apple's GPU, on Apple Silicon Macs only")
    if not torch.backends.mps.is_built():
        return DeviceCheck("mps", False, "this torch has no MPS support: `pip install --force-reinstall torch` "
                                         "(the macOS arm64 wheel has it); an Intel Mac runs on the CPU")
    return DeviceCheck("mps", False, "needs an Apple Silicon Mac with macOS 12.3 or newer; running on the CPU")


def mps_bf16_supported() -> bool:
    """Whether Apple's GPU takes bfloat16 here (macOS 14 and newer): asked of torch by making one such tensor."""
    if not torch.backends.mps.is_available():
        return False
    try:
        torch.ones(1, dtype=torch.bfloat16, device="mps")
    except (RuntimeError, TypeError):
        return False
    return True


def check_bf16() -> DeviceCheck:
    if torch.backends.mps.is_available() and not torch.cuda.is_available():
        if mps_bf16_supported():
            return DeviceCheck("bf16", True, "bfloat16 weights on Apple's GPU")
        return DeviceCheck("bf16", False, "Apple's GPU takes bfloat16 from macOS 14 on; use fp16")
    if not torch.cuda.is_available():
        return DeviceCheck("bf16", False, "needs an NVIDIA GPU or Apple's GPU; on the CPU the model runs in fp32")
    if not torch.cuda.is_bf16_supported():
        why = "this GPU has no bfloat16 support (needs an Ampere/RTX 30xx or newer); use fp16"
        return DeviceCheck("bf16", False, why)
    return DeviceCheck("bf16", True, "bfloat16 weights halve GPU memory")


def check_fp16() -> DeviceCheck:
    if not torch.cuda.is_available() and not torch.backends.mps.is_available():
        return DeviceCheck("fp16", False, "needs an NVIDIA GPU or Apple's GPU; on the CPU the model runs in fp32")
    return DeviceCheck("fp16", True, "float16 weights halve GPU memory")


def cpu_bf16() -> str | None:
    """None when this CPU computes bfloat16 in hardware (AVX-512 BF16 or AMX on x86, BF16 on Arm), else why not.

    Read from the CPU's flags like inference/runtime/kernels.py picks its kernels; without them, CPU autocast to
    bf16 is emulated and slower than fp32, so the stems' bf16 paths are not picked.
    """
    from inference.runtime.kernels import cpu_features

    flags = set(cpu_features().split())
    if flags & {"avx512_bf16", "amx_bf16", "bf16"}:
        return None
    return "this CPU has no bfloat16 instructions (AVX-512 BF16 / AMX / Arm BF16); bf16 would be emulated"


def check_cpu_int8() -> DeviceCheck:
    engines = torch.backends.quantized.supported_engines
    usable = [engine for engine in ("x86", "fbgemm") if engine in engines]
    if not usable:
        return DeviceCheck(
            "cpu_int8", False, f"this torch build has no x86/fbgemm quantized engine (has {', '.join(engines)})"
        )
    return DeviceCheck("cpu_int8", True,
                      f"torch dynamic int8 on the CPU via {usable[0]}: weights int8 when our kernel cannot be built")


def check_bitsandbytes() -> DeviceCheck:
    if importlib.util.find_spec("bitsandbytes") is None:
        return DeviceCheck("bitsandbytes", False, "not installed; `pip install bitsandbytes` to save GPU memory")
    try:
        bnb = importlib.import_module("bitsandbytes")
    except Exception as error:
        return DeviceCheck("bitsandbytes", False, f"installed but fails to import ({type(error).__name__}: {error})")
    version = getattr(bnb, "__version__", "?")
    if not torch.cuda.is_available():
        return DeviceCheck(
            "bitsandbytes", False, f"version {version} installed, but it only saves memory on an NVIDIA GPU"
        )
    backend = getattr(importlib.import_module("bitsandbytes.cextension"), "BNB_BACKEND", "unknown")
    if backend != "CUDA":
        return DeviceCheck(
            "bitsandbytes", False, f"version {version} has no CUDA kernels for this setup (backend {backend})"
        )
    return DeviceCheck("bitsandbytes", True, f"version {version} with CUDA kernels: int8/4-bit weights")


def check_flash_attn(device: torch.device | None = None) -> DeviceCheck:
    """device: the GPU the model runs on (default: the current one)."""
    if importlib.util.find_spec("flash_attn") is None:
        return DeviceCheck("flash_attn", False, "not installed; `pip install flash-attn` on an NVIDIA GPU machine")
    if not torch.cuda.is_available():
        return DeviceCheck("flash_attn", False, "installed, but it needs an NVIDIA GPU")
    index = device.index if device is not None and device.index is not None else torch.cuda.current_device()
    major, _minor = torch.cuda.get_device_capability(index)
    if major < 8:
        return DeviceCheck("flash_attn", False, "this GPU is older than Ampere (RTX 30xx / A100); flash-attn needs one")
    try:
        module = importlib.import_module("flash_attn")
    except Exception as error:
        return DeviceCheck("flash_attn", False, f"installed but fails to import ({type(error).__name__}: {error})")
    return DeviceCheck("flash_attn", True, f"version {getattr(module, '__version__', '?')}")


def check_cuda_graphs() -> DeviceCheck:
    if not torch.cuda.is_available():
        return DeviceCheck("cuda_graphs", False, "needs an NVIDIA GPU")
    return DeviceCheck("cuda_graphs", True, "replays the decode step without Python overhead")


def check_sdpa() -> DeviceCheck:
    usable = hasattr(torch.nn.functional, "scaled_dot_product_attention")
    reason = "PyTorch fused attention" if usable else "this torch is too old; upgrade to torch 2.x"
    return DeviceCheck("sdpa", usable, reason)


def check_cpu_kernels() -> DeviceCheck:
    """Our C++ CPU kernels (inference/runtime/csrc): built here on first use, so this check may take about 25 s once."""
    from inference.runtime.kernels import kernels_status

    status = kernels_status()
    return DeviceCheck("cpu_kernels", status.usable, status.reason)


def describe_modes(device: torch.device | None = None) -> list[DeviceCheck]:
    """One line per engine mode chosen by name (settings weights / kv_cache / attention / compile_decode)."""
    device = device or pick_device("auto")
    if device.type == "mps":
        return describe_mps_modes()
    cuda = device.type == "cuda"
    caps = {cap.name: cap for cap in describe_accelerations()}
    auto = "fp16" if cuda else "int8"
    kernels = caps["cpu_kernels"]
    int8_how = ("our int8 kernel: " + kernels.reason if kernels.usable
                else caps["cpu_int8"].reason + f" (our kernel: {kernels.reason})")
    bnb = caps["bitsandbytes"]
    bnb_installed = "installed" in bnb.reason or bnb.usable
    rows = [
        DeviceCheck("weights=auto", True, f"picks {auto} on this {device.type}" + (
            "" if cuda else " (int4 first where our kernels run), if calibration at load measures it within budget "
                            "(else int8, else fp32; inference/musicgen/calibration.py)")),
        DeviceCheck("weights=fp32", True, "full precision: the reference (4 bytes per weight)"),
        DeviceCheck("weights=int8", not cuda and (kernels.usable or caps["cpu_int8"].usable),
                   int8_how if not cuda else "CPU path; on CUDA use fp16, bnb-int8 or bnb-nf4"),
        DeviceCheck("weights=int4", kernels.usable or (cuda and bnb.usable),
                    ("our 4-bit kernel (groups of 32, about 5 bits a weight, 0.62x int8's bytes): " + kernels.reason
                     if kernels.usable else kernels.reason) if not cuda else
                    "bitsandbytes nf4 on CUDA: " + bnb.reason),
        DeviceCheck("weights=bf16", caps["bf16"].usable or not cuda,
                   caps["bf16"].reason if cuda else "runs on the CPU, but slower than fp32 at long context"),
        DeviceCheck("weights=fp16", caps["fp16"].usable, caps["fp16"].reason),
    ]
    for name in ("bnb-int8", "bnb-nf4"):
        if bnb.usable:
            rows.append(DeviceCheck(f"weights={name}", True, "saves GPU memory (decodes slower than fp16)"))
        elif bnb_installed and not cuda:
            rows.append(DeviceCheck(f"weights={name}", True, "runs on the CPU only slowly: a parity reference"))
        else:
            rows.append(DeviceCheck(f"weights={name}", False, bnb.reason))
    rows += [
        DeviceCheck("kv_cache=auto", True, "the weights' activation dtype" if cuda else
                    "int8 under int8 weights and fused-cpu attention, if calibration at load measures it within "
                    "budget (else fp32); else the weights' activation dtype"),
        DeviceCheck("kv_cache=fp32/fp16/bf16", True, "static preallocated cache"),
        DeviceCheck("kv_cache=mulaw8", True, "int8 mu-law, ~0.27x fp32 bytes; read inside fused-cpu attention; under "
                                            "sdpa/flash/eager (every CUDA path) the used cache is dequantized each "
                                            "step: saves memory, costs time"),
        DeviceCheck("attention=auto", True, "picks " + ("flash if usable, else sdpa" if cuda else
                                                       "fused-cpu" if kernels.usable else "sdpa")),
        DeviceCheck("attention=fused-cpu", not cuda and kernels.usable,
                   "our C++ decode attention: " + kernels.reason if not cuda
                   else "CPU only; on CUDA use flash or sdpa"),
        DeviceCheck("attention=sdpa", caps["sdpa"].usable, caps["sdpa"].reason),
        DeviceCheck("attention=eager", True, "plain matmul + softmax: the reference"),
        DeviceCheck("attention=flash", caps["flash_attn"].usable, caps["flash_attn"].reason),
        DeviceCheck("compile_decode", caps["cuda_graphs"].usable,
                    caps["cuda_graphs"].reason + ("; one graph per batch size, not with bnb weights" if cuda else "")),
    ]
    return rows


def describe_mps_modes() -> list[DeviceCheck]:
    """describe_modes on Apple's GPU: fp16 (or bf16) weights and cache, SDPA; the CPU's and CUDA's own paths are
    named as such."""
    bf16 = mps_bf16_supported()
    on_cpu, on_cuda = "a CPU path (--device cpu)", "CUDA only"
    return [
        DeviceCheck("weights=auto", True, "picks fp16 on Apple's GPU"),
        DeviceCheck("weights=fp32", True, "full precision: the reference (4 bytes per weight)"),
        DeviceCheck("weights=fp16", True, "float16 weights: half the memory of fp32"),
        DeviceCheck("weights=bf16", bf16, "bfloat16 weights" if bf16 else "bfloat16 on Apple's GPU needs macOS 14"),
        DeviceCheck("weights=int8", False, f"{on_cpu}: our int8 kernels; on Apple's GPU use fp16"),
        DeviceCheck("weights=bnb-int8", False, f"bitsandbytes is {on_cuda}; on Apple's GPU use fp16"),
        DeviceCheck("weights=bnb-nf4", False, f"bitsandbytes is {on_cuda}; on Apple's GPU use fp16"),
        DeviceCheck("kv_cache=auto", True, "the weights' activation dtype"),
        DeviceCheck("kv_cache=fp32/fp16/bf16", True, "static preallocated cache"),
        DeviceCheck("kv_cache=mulaw8", True, "int8 mu-law: saves memory, dequantized each step (costs time)"),
        DeviceCheck("attention=auto", True, "picks sdpa"),
        DeviceCheck("attention=sdpa", True, "PyTorch fused attention on Metal"),
        DeviceCheck("attention=eager", True, "plain matmul + softmax: the reference"),
        DeviceCheck("attention=fused-cpu", False, f"{on_cpu}: our C++ decode attention"),
        DeviceCheck("attention=flash", False, f"flash-attn is {on_cuda}"),
        DeviceCheck("compile_decode", False, f"CUDA graphs are {on_cuda}"),
    ]
