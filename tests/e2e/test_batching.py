"""Continuous batching in a real `continuo serve` (every torch call on its main thread): a short job sent after
a long one finishes first, and writes the samples it writes alone."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from tests.daemons import JOB_TIMEOUT_S

pytestmark = pytest.mark.slow


def mix_of(events) -> np.ndarray:
    assert events[-1][0] == "/continuo/done", events[-1]
    path = next(args[2] for address, args in events if address == "/continuo/output" and args[1] == "mix")
    return sf.read(path, dtype="float32")[0]


def test_a_short_job_overtakes_a_long_one_and_renders_as_alone(osc_client):
    osc_client.send("/continuo/generate", "long-1", "default", "slow drone", 16.0, "seed", 3)
    osc_client.wait_for(lambda a, args: a == "/continuo/progress" and args[:1] == ["long-1"]
                        and args[2] == "generating", JOB_TIMEOUT_S)
    osc_client.send("/continuo/generate", "short-1", "default", "snare fill", 0.5, "seed", 9)
    short = mix_of(osc_client.wait_job("short-1", JOB_TIMEOUT_S, ack=True))
    with pytest.raises(TimeoutError):  # the long job, sent first, is still decoding
        osc_client.wait_for(lambda a, args: a in ("/continuo/done", "/continuo/error") and args[:1] == ["long-1"],
                            0.0)
    long_events = osc_client.wait_job("long-1", JOB_TIMEOUT_S, ack=True)
    assert long_events[-1][0] == "/continuo/done"
    osc_client.send("/continuo/generate", "short-2", "default", "snare fill", 0.5, "seed", 9)
    np.testing.assert_array_equal(mix_of(osc_client.wait_job("short-2", JOB_TIMEOUT_S, ack=True)), short)


def test_the_main_threads_compute_loop_follows_a_model_switch(osc_client, tiny_acestep_dir, tiny_model_dir):
    """MusicGen (served by the main thread's loop) -> ACE-Step (run on a worker's thread) -> MusicGen again
    (the main thread serves the new engine): a job renders after each switch."""
    for step, model in enumerate((tiny_acestep_dir, tiny_model_dir)):
        osc_client.send("/continuo/model/load", str(model), f"switch-{step}")
        assert osc_client.wait_job(f"switch-{step}", JOB_TIMEOUT_S, ack=True)[-1][0] == "/continuo/done"
        osc_client.send("/continuo/generate", f"after-{step}", "default", "pad", 0.5, "seed", 1)
        events = osc_client.wait_job(f"after-{step}", JOB_TIMEOUT_S, ack=True)
        assert events[-1][0] == "/continuo/done", events[-1]
    osc_client.send("/continuo/generate", "long-2", "default", "drone", 8.0, "seed", 2)  # batching is back
    osc_client.send("/continuo/generate", "short-3", "default", "hit", 0.5, "seed", 3)
    osc_client.wait_job("short-3", JOB_TIMEOUT_S, ack=True)
    with pytest.raises(TimeoutError):
        osc_client.wait_for(lambda a, args: a in ("/continuo/done", "/continuo/error") and args[:1] == ["long-2"],
                            0.0)
    assert osc_client.wait_job("long-2", JOB_TIMEOUT_S, ack=True)[-1][0] == "/continuo/done"
