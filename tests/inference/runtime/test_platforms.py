"""A Mac (Apple Silicon, MPS), a machine without /proc or glibc, one without a compiler: each branch chosen by
what the platform reports, shown here by pretending to be it, and run with this CPU standing in."""

from __future__ import annotations

import builtins
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

import inference.runtime.kernels as cpu_kernels
import inference.runtime.memory as memory
from inference.api import GenerationRequest
from inference.loading import load_engine, resolve_model
from inference.runtime import device as devices
from inference.runtime import quantize
from inference.runtime.quantize import WeightMode, resolve_weight_mode


@pytest.fixture
def on_a_mac(monkeypatch):
    """torch reports Apple's GPU (and no CUDA), as on an Apple Silicon Mac with macOS 14."""
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    monkeypatch.setattr(torch.backends.mps, "is_built", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(devices, "mps_bf16_supported", lambda: True)


def test_auto_picks_mps_where_torch_reports_it(on_a_mac):
    assert devices.pick_device("auto") == torch.device("mps")
    assert devices.pick_device("mps") == torch.device("mps")
    rows = {row.name: row for row in devices.describe_accelerations()}
    assert rows["mps"].usable and rows["fp16"].usable and rows["bf16"].usable


def test_without_mps_auto_stays_on_the_cpu():
    """The control: this machine reports no MPS, so the same call picks the CPU and doctor says why not."""
    assert not torch.backends.mps.is_available()
    assert devices.pick_device("auto") == torch.device("cpu")
    assert not devices.check_mps().usable
    assert "Apple Silicon Macs only" in devices.check_mps(system="linux").reason
    with pytest.raises(Exception, match="not available"):
        devices.pick_device("mps")


def test_mps_dtype_rules(on_a_mac, monkeypatch):
    mps = torch.device("mps")
    assert resolve_weight_mode(WeightMode.AUTO, mps) is WeightMode.FP16
    assert resolve_weight_mode(WeightMode.FP16, mps) is WeightMode.FP16
    assert resolve_weight_mode(WeightMode.BF16, mps) is WeightMode.BF16
    for refused, advice in ((WeightMode.INT8, "use fp16"), (WeightMode.BNB_INT8, "use fp16"),
                            (WeightMode.BNB_NF4, "use fp16")):
        with pytest.raises(ValueError, match=advice):
            resolve_weight_mode(refused, mps)
    monkeypatch.setattr(devices, "mps_bf16_supported", lambda: False)  # macOS 13
    with pytest.raises(ValueError, match="macOS 14"):
        resolve_weight_mode(WeightMode.BF16, mps)
    # the control: the CPU keeps its own rules
    assert resolve_weight_mode(WeightMode.AUTO, torch.device("cpu")) is WeightMode.INT8
    with pytest.raises(ValueError, match="needs a GPU"):
        resolve_weight_mode(WeightMode.FP16, torch.device("cpu"))


def test_mps_modes_name_no_cuda_or_cpu_only_path(on_a_mac):
    from inference.musicgen.engine import EngineOptions, check_compile, compile_step, resolve_attention

    mps = torch.device("mps")
    assert resolve_attention("auto", mps) == "sdpa"
    for name in ("flash", "fused-cpu"):
        with pytest.raises(ValueError):
            resolve_attention(name, mps)
    with pytest.raises(ValueError, match="CUDA"):
        compile_step(EngineOptions(compile=True), mps)
    check_compile(EngineOptions(), WeightMode.FP16, "sdpa")
    rows = {row.name: row for row in devices.describe_modes(mps)}
    assert "fp16" in rows["weights=auto"].reason and "sdpa" in rows["attention=auto"].reason
    assert not any(rows[name].usable for name in ("weights=int8", "weights=bnb-int8", "attention=fused-cpu",
                                                  "attention=flash", "compile_decode"))


def test_the_mps_plan_runs_with_the_cpu_standing_in(on_a_mac, monkeypatch, tiny_model_dir, tmp_path):
    """The engine takes every decision for mps (weights, attention, cache, no calibration, no prepacking, no
    kernels), and the tiny model generates in those dtypes on the CPU. Control: the same resolvers for the CPU take
    the CPU's own decisions."""
    import inference.musicgen.engine as engine_module

    mps = torch.device("mps")
    as_mps = {"resolve_weight_mode": lambda mode, device, real=engine_module.resolve_weight_mode: real(mode, mps),
              "resolve_attention": lambda name, device, compile=False, real=engine_module.resolve_attention:
              real(name, mps, compile)}
    source = resolve_model(str(tiny_model_dir), tiny_dir=tmp_path)
    cpu = torch.device("cpu")
    assert (engine_module.resolve_weight_mode(WeightMode.AUTO, cpu), engine_module.resolve_attention("auto", cpu)) \
        == (WeightMode.INT8, "fused-cpu" if cpu_kernels.kernels_status().usable else "sdpa")
    for name, function in as_mps.items():
        monkeypatch.setattr(engine_module, name, function)
    monkeypatch.setattr(quantize, "onednn_linear_available", lambda: False)  # mps never prepacks for oneDNN
    monkeypatch.setattr(cpu_kernels, "kernels_status", lambda: pytest.fail("the mps path asked for CPU kernels"))
    engine = load_engine(source, device="cpu", backend="engine", weights="auto")
    assert (engine.info.modes["weights"], engine.info.modes["attention"]) == ("fp16", "sdpa")
    assert engine.info.modes["calibration"] is None
    assert {p.dtype for p in engine.decoder.parameters()} == {torch.float16}
    out = engine.generate(GenerationRequest(prompt="warm piano", duration_s=0.3, seed=3))
    assert out.audio.shape[-1] >= 0.3 * out.sample_rate and np.isfinite(out.audio).all()
    assert engine.kv_cache.value == "auto" and engine.cache_factory(1, 8)(0).k_cache.dtype == torch.float16


def test_free_memory_on_mps_is_capped_by_metal(on_a_mac, monkeypatch):
    monkeypatch.setattr(torch.mps, "recommended_max_memory", lambda: 8 * 2**30)
    monkeypatch.setattr(torch.mps, "driver_allocated_memory", lambda: 2 * 2**30)
    monkeypatch.setattr(memory, "available_memory_bytes", lambda: 20 * 2**30)
    assert memory.free_memory_bytes("mps") == 6 * 2**30
    assert memory.free_memory_bytes("cpu") == 20 * 2**30


# ---- no /proc, no glibc ------------------------------------------------------------------------------------------

@pytest.fixture
def no_proc(monkeypatch):
    """open() of anything under /proc fails, as on macOS and Windows; psutil's own reads pass (on Linux psutil reads
    /proc itself: here it stands in for its macOS and Windows implementations)."""
    real_open = builtins.open

    def fake_open(path, *args, **kwargs):
        caller = sys._getframe(1).f_globals.get("__name__", "")
        if str(path).startswith("/proc") and not caller.startswith("psutil"):
            raise FileNotFoundError(2, "No such file or directory", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)


def test_memory_figures_without_proc_come_from_psutil(no_proc):
    import psutil

    assert memory.proc_status_bytes("VmRSS") is None
    rss = memory.resident_bytes()
    assert rss is not None and abs(rss - psutil.Process().memory_info().rss) < 200 * 2**20
    assert memory.available_memory_bytes() == pytest.approx(psutil.virtual_memory().available, rel=0.2)
    assert memory.peak_resident_bytes() >= rss * 0.5
    assert memory.free_memory_bytes("cpu") > 0


def test_memory_figures_without_proc_or_psutil_are_none(no_proc, monkeypatch):
    monkeypatch.setattr(memory, "_psutil", lambda: None)
    monkeypatch.delattr(os, "sysconf")  # Windows
    assert memory.resident_bytes() is None and memory.available_memory_bytes() is None
    assert memory.total_memory_bytes() is None and memory.free_memory_bytes("cpu") == 0
    from bridge.jobs.status import memory_gb

    assert memory_gb() == (0.0, 0.0)


def test_proc_is_read_where_it_is():
    """The control: on Linux the /proc figures are there and agree with psutil."""
    import psutil

    assert memory.proc_status_bytes("VmRSS") == pytest.approx(psutil.Process().memory_info().rss, rel=0.2)
    assert memory.proc_status_bytes("MemAvailable", table="meminfo") is not None


@pytest.mark.parametrize("platform", ["darwin", "win32", "linux-musl"])
def test_heap_trim_off_glibc_never_fails(platform, monkeypatch):
    """No libc.so.6 (macOS has libSystem, Windows neither): the trimmer is what the platform has, or nothing."""
    real_cdll = memory.ctypes.CDLL

    def cdll(name, *args, **kwargs):
        if name == "libc.so.6" and platform == "linux-musl":
            class Musl:  # a C library without malloc_trim
                pass
            return Musl()
        if name == "libc.so.6" or name.endswith(".dylib"):
            raise OSError(f"{name}: cannot open shared object file")
        return real_cdll(name, *args, **kwargs)

    monkeypatch.setattr(memory.ctypes, "CDLL", cdll)
    assert memory.heap_trimmer.__wrapped__("linux" if platform == "linux-musl" else platform) is None
    memory.heap_trimmer.cache_clear()
    monkeypatch.setattr(memory, "heap_trimmer", lambda: None)
    memory.trim_heap()  # nothing to call: no error


def test_heap_trim_on_glibc_calls_malloc_trim():
    trim = memory.heap_trimmer.__wrapped__("linux")
    assert trim is not None and trim() in (0, 1)


# ---- the kernels on other platforms -------------------------------------------------------------------------------

def test_arm64_and_portable_builds_ask_for_no_x86_instruction():
    native_x86 = cpu_kernels.build_flags(machine="x86_64", system="linux", portable=False)
    assert "-march=native" in native_x86  # the control: x86's own build asks for this CPU's AVX-512
    for machine, system in (("arm64", "darwin"), ("aarch64", "linux")):
        flags = cpu_kernels.build_flags(machine=machine, system=system, portable=False)
        assert not any(flag.startswith(("-march", "-mavx", "-mno-avx")) for flag in flags)
        assert ("-mcpu=apple-m1" if system == "darwin" else "-mcpu=native") in flags
    portable = cpu_kernels.build_flags(machine="x86_64", system="linux", portable=True)
    assert "-march=native" not in portable and "-mno-avx512f" in portable


def test_flags_the_compiler_refuses_are_left_out_with_a_note():
    if cpu_kernels.missing_tools() is not None:
        pytest.skip(cpu_kernels.missing_tools())
    flags, link, notes = cpu_kernels.usable_flags(("-O3", "-mcpu=apple-m1", "-march=native", "-fopenmp"))
    assert flags == ["-O3", "-march=native", "-fopenmp"] and link == ["-fopenmp"]  # g++ on x86 refuses apple-m1
    assert notes == [f"{cpu_kernels.compiler()} refuses -mcpu=apple-m1: built without it"]


def test_a_compiler_without_openmp_builds_one_thread(monkeypatch):
    """Apple's clang: no -fopenmp; the vector loops stay (-fopenmp-simd) and the note says one thread."""
    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.setattr(cpu_kernels, "compiles", lambda flags, program, link=False: flags != ["-fopenmp"])
    flags, link, notes = cpu_kernels.usable_flags(("-O3", "-mcpu=apple-m1", "-fopenmp"))
    assert flags == ["-O3", "-mcpu=apple-m1", "-fopenmp-simd"] and link == []
    assert notes and notes[0].startswith("one thread")


def test_no_compiler_names_the_command_per_platform(monkeypatch, tmp_path):
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    debian = tmp_path / "debian"
    debian.write_text('ID=debian\n')
    fedora = tmp_path / "fedora"
    fedora.write_text('ID="fedora"\nID_LIKE=""\n')
    ubuntu = tmp_path / "ubuntu"
    ubuntu.write_text('ID=pop\nID_LIKE="ubuntu debian"\n')
    assert cpu_kernels.compiler_install_hint("linux", debian) == "run `sudo apt install g++`"
    assert cpu_kernels.compiler_install_hint("linux", ubuntu) == "run `sudo apt install g++`"
    assert cpu_kernels.compiler_install_hint("linux", fedora) == "run `sudo dnf install gcc-c++`"
    assert "package manager" in cpu_kernels.compiler_install_hint("linux", tmp_path / "missing")
    assert cpu_kernels.compiler_install_hint("darwin") == "run `xcode-select --install`"
    assert "no C++ compiler" in cpu_kernels.missing_tools()


def test_macos_without_the_command_line_tools_says_xcode_select(monkeypatch):
    """/usr/bin/c++ exists on every Mac, as a stub: the tools' absence is asked of xcode-select."""
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.setattr(cpu_kernels.shutil, "which", lambda name, path=None: f"/usr/bin/{name}")
    monkeypatch.setattr(cpu_kernels, "xcode_tools_installed", lambda: False)
    assert "xcode-select --install" in cpu_kernels.missing_tools()
    monkeypatch.setattr(cpu_kernels, "xcode_tools_installed", lambda: True)
    assert cpu_kernels.missing_tools() is None  # the control


def test_without_a_compiler_torchs_kernels_stand_in_and_doctor_says_why(monkeypatch, tmp_path):
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    monkeypatch.setenv("CONTINUO_KERNELS_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(cpu_kernels, "fallback_dir", lambda: tmp_path / "fallback")
    monkeypatch.setattr(cpu_kernels, "_status", None)
    monkeypatch.setattr(cpu_kernels, "library_name", lambda: "continuo_cpu_never_built")
    row = devices.check_cpu_kernels()
    assert not row.usable and "no C++ compiler" in row.reason and "sudo apt install g++" in row.reason
    modes = {row.name: row for row in devices.describe_modes(torch.device("cpu"))}
    assert "picks sdpa" in modes["attention=auto"].reason and not modes["attention=fused-cpu"].usable
    assert modes["weights=int8"].usable and "torch dynamic int8" in modes["weights=int8"].reason
    from inference.musicgen.engine import resolve_attention

    assert resolve_attention("auto", torch.device("cpu")) == "sdpa"
    linear = torch.nn.Sequential(torch.nn.Linear(64, 32))
    quantize.quantize_int8_cpu_(linear)
    assert type(linear[0]).__module__.startswith("torch.ao")  # torch's dynamic int8 Linear runs
    assert linear(torch.randn(2, 64)).shape == (2, 32)


def test_windows_builds_no_kernels_and_says_so(monkeypatch):
    monkeypatch.setattr(sys, "platform", "win32")
    status = cpu_kernels.build()
    assert not status.usable and "Linux and macOS only" in status.reason and "torch's own kernels" in status.reason


def test_cpu_features_without_proc_come_from_sysctl_on_macos(no_proc, monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    listing = "hw.optional.arm.FEAT_BF16: 1\nhw.optional.arm.FEAT_DotProd: 1\nhw.optional.arm.FEAT_SME: 0\n"
    monkeypatch.setattr(cpu_kernels.subprocess, "run",
                        lambda *a, **k: subprocess.CompletedProcess(a, 0, stdout=listing, stderr=""))
    assert cpu_kernels.cpu_features().split() == ["bf16", "dotprod"]
    assert devices.cpu_bf16() is None
    listing = "hw.optional.arm.FEAT_BF16: 0\n"  # an M1: no bf16
    assert devices.cpu_bf16() is not None
    monkeypatch.setattr(sys, "platform", "win32")
    assert cpu_kernels.cpu_features() == __import__("platform").machine()


def test_the_fallback_folder_needs_no_uid(monkeypatch):
    monkeypatch.delattr(os, "getuid")  # Windows
    monkeypatch.setenv("USERNAME", "musician")
    monkeypatch.delenv("LOGNAME", raising=False)
    monkeypatch.delenv("USER", raising=False)
    monkeypatch.delenv("LNAME", raising=False)
    assert cpu_kernels.fallback_dir().name == "continuo-kernels-musician"


def test_an_environment_without_setuptools_says_so(monkeypatch):
    """torch's extension builder imports setuptools, which environments made by uv (and pipx on Python 3.12+)
    lack: found by hand in a `uv tool install` (now a dependency); the control is this environment, which has it."""
    assert cpu_kernels.missing_tools() is None or "setuptools" not in cpu_kernels.missing_tools()
    real = cpu_kernels.importlib.util.find_spec
    monkeypatch.setattr(cpu_kernels.importlib.util, "find_spec",
                        lambda name, *args: None if name == "setuptools" else real(name, *args))
    if shutil.which(cpu_kernels.compiler()) is not None:
        assert "pip install setuptools" in cpu_kernels.missing_tools()
