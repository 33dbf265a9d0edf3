"""The wheel a musician installs (pipx or uv tool install): it carries every file the code reads at run time, the
clients, and its `continuo` command runs from a fresh environment, away from this checkout.

One build per session (about 10-20 s, pip's isolated build fetches setuptools from the package index). The fresh
environment gets the wheel without its dependencies and finds them in this test environment's site-packages (a
.pth line): reinstalling torch would take minutes. docs/install.md says what was verified by hand with the full
dependency install.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bridge", "inference", "presets", "osc_schema")
CLIENT_FILES = ("clients/max/Continuo.amxd", "clients/max/continuo.maxpat", "clients/pd/continuo.pd",
                "clients/reaper/continuo_lib.lua", "clients/reaper/continuo_actions.lua",
                "clients/reaper/Continuo - continue selected item.lua")
DATA = "continuo-0.1.0.data/data/share/continuo/"


def tracked_files() -> list[str]:
    listing = subprocess.run(["git", "ls-files", *PACKAGES], cwd=ROOT, capture_output=True, text=True, check=True)
    return listing.stdout.splitlines()


def missing_from(names: set[str], tracked: list[str]) -> list[str]:
    """Files the code needs that the wheel lacks: every tracked file under the packages (sources, kernels, presets,
    schema, page assets) and the clients."""
    wanted = list(tracked) + [DATA + name for name in CLIENT_FILES]
    return [name for name in wanted if name not in names]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: the tracked files cannot be listed")
    out = tmp_path_factory.mktemp("dist")
    build = tmp_path_factory.mktemp("build")
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(ROOT)],
                            capture_output=True, text=True, timeout=600,
                            env={**os.environ, "TMPDIR": str(build)})
    assert result.returncode == 0, result.stderr[-3000:]
    (found,) = out.glob("continuo-*.whl")
    return found


def test_the_wheel_carries_every_file_the_code_reads(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    tracked = tracked_files()
    assert any(name.endswith(".cpp") for name in tracked) and "presets/midi/default.toml" in tracked
    assert missing_from(names, tracked) == []
    assert missing_from(names - {"presets/midi/default.toml"}, tracked) == ["presets/midi/default.toml"]  # control
    assert not any(name.startswith(("tests/", "docs/", ".ci/")) for name in names)
    entry_points = zipfile.ZipFile(wheel).read("continuo-0.1.0.dist-info/entry_points.txt").decode()
    assert "continuo = bridge.cli:main" in entry_points


def test_the_installed_command_runs_from_a_fresh_environment(wheel, tmp_path):
    """`continuo doctor` of the wheel installed alone into a new environment, run outside the checkout: it imports
    the installed package (not this checkout), finds its kernel sources and the clients where the wheel put them."""
    env_dir = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True, timeout=120)
    python = env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    clean = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}  # nothing of this checkout
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                              "--force-reinstall", str(wheel)], env=clean, capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-3000:]
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (Path(site) / "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")  # torch & co., not continuo
    where = subprocess.run([str(python), "-c", "import bridge, inference.runtime.kernels as k; "
                            "print(bridge.__file__); print(k.SOURCES[0])"],
                           cwd=tmp_path, env=clean, capture_output=True, text=True, timeout=120)
    assert where.returncode == 0, where.stderr[-2000:]
    assert all(Path(line).is_relative_to(env_dir) for line in where.stdout.split()), where.stdout
    command = env_dir / ("Scripts/continuo.exe" if os.name == "nt" else "bin/continuo")
    doctor = subprocess.run([str(command), "doctor", "--model", str(tmp_path / "no-model")], cwd=tmp_path, env=clean,
                            capture_output=True, text=True, timeout=600)
    assert doctor.returncode == 0, doctor.stdout[-2000:] + doctor.stderr[-2000:]
    assert f"clients (Max device, Pd patch, Reaper scripts): {env_dir / 'share/continuo/clients'}" in doctor.stdout
    assert "[yes] cpu_kernels" in doctor.stdout or "[no ] cpu_kernels" in doctor.stdout
