"""The kernels' portable path, as an arm64 Mac or an x86 CPU without AVX-512 builds it, proven on this machine.

A second build with CONTINUO_KERNELS_PORTABLE=1 (once per session, in its own folder) must hold no AVX-512
instruction at all, and the whole kernel test file must pass against it. Where an aarch64 cross compiler is
installed (`apt install g++-aarch64-linux-gnu`), every source is also compiled for arm64 as one unit, as the
extension builder joins them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import inference.runtime.kernels as cpu_kernels

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]
AVX512_REGISTER = re.compile(r"%zmm\d+|%k[1-7]\b")  # 512-bit registers and the mask registers only AVX-512 has


def run_python(script: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT)


@pytest.fixture(scope="module")
def portable(tmp_path_factory) -> dict[str, str]:
    """The environment of a portable build, built once in a folder of its own (about 30-60 s)."""
    problem = cpu_kernels.missing_tools()
    if problem is not None:
        pytest.skip(f"no build tools here: {problem}")
    folder = tmp_path_factory.mktemp("portable-kernels")
    env = {**os.environ, "CONTINUO_KERNELS_DIR": str(folder), cpu_kernels.PORTABLE_VARIABLE: "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    script = ("from inference.runtime.kernels import kernels_status, kernels_dir, library_name\n"
              "status = kernels_status()\n"
              "print(status.usable, kernels_dir() / library_name() / (library_name() + '.so'), sep='\\n')\n"
              "print(status.reason)\n")
    result = run_python(script, env)
    lines = result.stdout.splitlines()
    assert result.returncode == 0 and lines and lines[0] == "True", result.stdout + result.stderr[-3000:]
    env["LIBRARY"], env["REASON"] = lines[1], lines[2]
    return env


def avx512_instructions(library: Path) -> int:
    listing = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(library)], capture_output=True, text=True,
                             timeout=300, check=True).stdout
    return len(AVX512_REGISTER.findall(listing))


def test_the_portable_build_names_itself_and_takes_the_portable_loops(portable):
    assert Path(portable["LIBRARY"]).is_file()
    assert "portable build" in portable["REASON"] and "portable loops" in portable["REASON"], portable["REASON"]
    script = "from inference.runtime.kernels import kernels_status; import torch\n" \
             "assert kernels_status().usable\nprint(torch.ops.continuo_cpu.int8_linear_uses_vnni())"
    result = run_python(script, portable)
    assert result.stdout.strip() == "False", result.stderr[-2000:]


@pytest.mark.skipif(shutil.which("objdump") is None, reason="objdump (binutils) is not installed")
def test_the_portable_build_holds_no_avx512_instruction(portable):
    """Read from the library's machine code, so a kernel that picked AVX-512 at run time would be caught too. The
    control: this machine's native build, whose VNNI paths use the 512-bit registers."""
    assert avx512_instructions(Path(portable["LIBRARY"])) == 0
    if not cpu_kernels.kernels_status().usable or "VNNI" not in cpu_kernels.kernels_status().reason.split("(")[1]:
        pytest.skip("this CPU has no AVX-512 VNNI: the native build is the portable one, no control")
    native = cpu_kernels.kernels_dir() / cpu_kernels.library_name() / f"{cpu_kernels.library_name()}.so"
    if not native.is_file():
        native = cpu_kernels.fallback_dir() / cpu_kernels.library_name() / native.name
    assert avx512_instructions(native) > 100


def test_the_kernel_tests_pass_against_the_portable_build(portable):
    """tests/inference/runtime/test_kernels.py, whole, in a process that loads the portable library."""
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", "-rs",
                             str(ROOT / "tests/inference/runtime/test_kernels.py")],
                            env=portable, capture_output=True, text=True, timeout=900, cwd=ROOT)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    passed = int(re.search(r"(\d+) passed", summary).group(1))
    assert passed >= 40 and "skipped" not in summary, summary  # every kernel test ran against it, none skipped


CROSS = shutil.which("aarch64-linux-gnu-g++")


def cross_compile(source: Path) -> subprocess.CompletedProcess:
    from torch.utils.cpp_extension import include_paths

    flags = list(cpu_kernels.build_flags(machine="aarch64", system="linux", portable=True))
    command = [CROSS, "-fsyntax-only", "-std=c++17", "-fPIC", "-D_GLIBCXX_USE_CXX11_ABI=1", *flags,
               *(f"-I{path}" for path in include_paths()), str(source)]
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


@pytest.mark.skipif(CROSS is None, reason="no aarch64 cross compiler (apt install g++-aarch64-linux-gnu)")
def test_every_source_compiles_for_arm64(tmp_path):
    """Every source in SOURCES, joined as torch's load_inline joins them, parsed and instantiated for aarch64
    (templates included; no code generated: about 20 s). The control: an AVX-512 intrinsic outside its guard."""
    joined = tmp_path / "main.cpp"
    joined.write_text("\n".join(source.read_text() for source in cpu_kernels.SOURCES))
    result = cross_compile(joined)
    assert result.returncode == 0, result.stderr[-3000:]
    unguarded = tmp_path / "unguarded.cpp"
    unguarded.write_text("#include <immintrin.h>\nfloat f() { return _mm512_reduce_add_ps(_mm512_setzero_ps()); }\n")
    assert cross_compile(unguarded).returncode != 0
