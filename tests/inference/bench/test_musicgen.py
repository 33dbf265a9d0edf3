"""The MusicGen benchmark's pieces (inference.bench.musicgen): its step clock waits for the GPU it times."""

from __future__ import annotations

import torch


def test_step_clock_waits_for_cuda(monkeypatch):
    from inference.bench.musicgen import StepClock

    synced: list = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: synced.append(device))
    clock = StepClock(2, torch.device("cuda:1"))
    for step in range(3):
        clock(step)
    assert len(synced) == 4 and all(device == torch.device("cuda:1") for device in synced)
    StepClock(2, torch.device("cpu"))(0)
    assert len(synced) == 4
