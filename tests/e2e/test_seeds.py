"""Seeds as patching environments hold them: Pd and Max keep every number as a float32, exact only below 2**24.

A seed the daemon picks stays below 2**24 (variations' seed + N too), and that seed, sent back as an OSC float32
(as Pd's oscformat sends every number), renders the same samples.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from tests.daemons import JOB_TIMEOUT_S

pytestmark = pytest.mark.slow


def render(osc, job_id: str, *settings) -> tuple[int, np.ndarray]:
    osc.send("/continuo/generate", job_id, "default", "warm pad", 0.5, *settings)
    events = osc.wait_job(job_id, JOB_TIMEOUT_S, ack=True)
    assert events[-1][0] == "/continuo/done", events[-1]
    path = next(args[2] for address, args in events if address == "/continuo/output")
    return events[-1][1][2], sf.read(path, dtype="float32")[0]


def test_a_picked_seed_sent_back_as_a_float32_renders_the_same(osc_client):
    seed, first = render(osc_client, "seed-1")
    assert 0 <= seed < 2**24
    assert float(np.float32(seed)) == seed  # exact in a float32
    again_seed, again = render(osc_client, "seed-2", "seed", float(np.float32(seed)))  # an OSC 'f', as Pd sends it
    assert again_seed == seed
    np.testing.assert_array_equal(again, first)
    _, other = render(osc_client, "seed-3", "seed", float(seed + 1))
    assert not np.array_equal(other, first)  # the seed is what decides: another one renders other samples
