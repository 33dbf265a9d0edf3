"""Shared fixtures: the tiny random MusicGen checkpoints (built once per test session) and in-process daemons.

Subprocess daemons for end-to-end tests are in tests/e2e/conftest.py; the helpers both build on
(flags, settings, the event log, JOB_TIMEOUT_S) are in tests/daemons.py.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import torch

from inference.musicgen.tiny import build_tiny_musicgen

if TYPE_CHECKING:
    from bridge.daemon import Daemon

# The tiny model is no faster on two threads, and two OpenMP threads per process
# slow down several-fold when other test processes share the two cores.
torch.set_num_threads(1)
# Decisions measured at load (inference/runtime/plans.py) are saved in a folder of this run, never the user's cache:
# each run measures afresh, and daemons the tests start inherit it.
os.environ.setdefault("CONTINUO_PLANS_DIR", tempfile.mkdtemp(prefix="continuo-test-plans-"))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A mono tiny random MusicGen checkpoint (noise, not music) with its processor."""
    return build_tiny_musicgen(tmp_path_factory.mktemp("tiny-musicgen") / "mono", seed=0)


@pytest.fixture(scope="session")
def chord_recordings(tmp_path_factory) -> Path:
    """A musician's folder for style training: four 16 s files of chords at 32 kHz (64 s in all) and one that is
    not audio, in a folder named with a space ("my band"), outside every test daemon's input roots."""
    import numpy as np
    import soundfile

    folder = tmp_path_factory.mktemp("recordings") / "my band"
    folder.mkdir()
    rng = np.random.default_rng(0)
    t = np.arange(32_000 * 16) / 32_000
    for index in range(4):
        audio = 0.1 * sum(np.sin(2 * np.pi * f * t) for f in rng.uniform(150, 600, 3))
        soundfile.write(str(folder / f"take {index}.wav"), audio.astype(np.float32), 32_000)
    (folder / "lyrics.txt").write_text("la la la")
    return folder


@pytest.fixture(scope="session")
def tiny_stereo_model_dir(tmp_path_factory) -> Path:
    """The stereo variant: 8 codebooks, left/right interleaved."""
    return build_tiny_musicgen(tmp_path_factory.mktemp("tiny-musicgen") / "stereo", seed=0, channels=2)


@pytest.fixture(scope="session")
def tiny_melody_model_dir(tmp_path_factory) -> Path:
    """A tiny random MusicGen-melody checkpoint: chroma + text prefix, no cross-attention."""
    return build_tiny_musicgen(tmp_path_factory.mktemp("tiny-musicgen") / "melody", seed=0, melody=True)


@pytest.fixture(scope="session")
def tiny_acestep_dir(tmp_path_factory) -> Path:
    """A tiny random ACE-Step 1.5 pipeline in diffusers' format (noise, not music), every component included."""
    from inference.acestep.tiny import build_tiny_acestep

    return build_tiny_acestep(tmp_path_factory.mktemp("tiny-acestep") / "pipeline", seed=0)


@pytest.fixture(scope="session")
def tiny_lora_dir(tiny_acestep_dir, tmp_path_factory) -> Path:
    """A LoRA directory for the tiny ACE-Step pipeline: "grain" (a random adapter in diffusers' format, a
    directory), "grain-file" (the same weights as one .safetensors file), "corrupt" (not safetensors at all) and
    "misfit" (an adapter whose shapes fit another model)."""
    import shutil

    from inference.acestep.tiny import build_tiny_lora

    root = tmp_path_factory.mktemp("loras")
    build_tiny_lora(tiny_acestep_dir, root / "grain", seed=1)
    shutil.copy(root / "grain" / "pytorch_lora_weights.safetensors", root / "grain-file.safetensors")
    (root / "corrupt.safetensors").write_bytes(b"not a safetensors file" * 8)
    build_tiny_lora(tiny_acestep_dir, root / "misfit", seed=2, shape_offset=1)
    return root


@pytest.fixture(scope="session", autouse=True)
def cpu_kernels_built():
    """Build our C++ CPU kernels before any test (cold: about 25 s), so daemons that tests start load them at once."""
    from inference.runtime.kernels import kernels_status

    return kernels_status()


@pytest.fixture
def make_daemon_in_process(tiny_model_dir, tmp_path) -> Iterator[Callable[..., Daemon]]:
    """A factory: ``make_daemon_in_process(engine_loader=None, worker_thread=True, **settings)`` starts an
    in-process Daemon on the tiny model with files under tmp_path, its events recorded in ``daemon.sent`` (a
    tests.daemons.EventLog); every daemon it started is shut down after the test. Settings are overrides by
    name, e.g. max_queue=2."""
    from tests.daemons import daemon_settings, running_daemon  # the bridge only where a test asks for a daemon

    with ExitStack() as stack:
        def make(*, engine_loader: Callable[..., Any] | None = None, worker_thread: bool = True,
                 **settings: Any) -> Daemon:
            return stack.enter_context(running_daemon(daemon_settings(tiny_model_dir, tmp_path, **settings),
                                                      engine_loader=engine_loader, worker_thread=worker_thread))

        yield make
