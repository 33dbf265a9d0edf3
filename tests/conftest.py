"""Shared fixtures: the tiny random MusicGen checkpoints, built once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from inference.tiny import build_tiny_musicgen

# The tiny model is no faster on two threads, and two OpenMP threads per process
# slow down several-fold when other test processes share the two cores.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A mono tiny random MusicGen checkpoint (noise, not music) with its processor."""
    return build_tiny_musicgen(tmp_path_factory.mktemp("tiny-musicgen") / "mono", seed=0)


@pytest.fixture(scope="session")
def tiny_stereo_model_dir(tmp_path_factory) -> Path:
    """The stereo variant: 8 codebooks, left/right interleaved."""
    return build_tiny_musicgen(tmp_path_factory.mktemp("tiny-musicgen") / "stereo", seed=0, channels=2)


@pytest.fixture(scope="session")
def tiny_melody_model_dir(tmp_path_factory) -> Path:
    """A tiny random MusicGen-melody checkpoint: chroma + text prefix, no cross-attention."""
    return build_tiny_musicgen(tmp_path_factory.mktemp("tiny-musicgen") / "melody", seed=0, melody=True)


@pytest.fixture(scope="session", autouse=True)
def cpu_kernels_built():
    """Build our C++ CPU kernels before any test (cold: about 25 s), so daemons that tests start load them at once."""
    from inference.cpu_kernels import kernels_status

    return kernels_status()
