"""The step profile's plumbing on the tiny shape (issue 24): the C++ call's split per op class is counted when
CONTINUO_STEP_PROFILE is set before the first call, and nothing is counted without it (the control). In a
subprocess each: the kernels read the variable once per process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

SCRIPT = """
import json, os
from inference.bench.step_profile import LAYER_PARTS, random_decoder, time_decoder_steps
from inference.runtime.kernels import kernels_status
if not kernels_status().usable:
    print(json.dumps({"skip": kernels_status().reason}))
else:
    decoder = random_decoder("tiny", "int4", positions=16)
    print(json.dumps(time_decoder_steps(decoder, steps=6, digits=6)))  # unrounded: a tiny call is about 40 us
"""


def profile(flag: str) -> dict:
    env = {**os.environ, "CONTINUO_STEP_PROFILE": flag}
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if "skip" in result:
        pytest.skip(result["skip"])
    return result


def test_the_layer_split_is_counted_with_the_variable_and_not_without():
    on = profile("1")
    assert on["fast_step"] and on["finite"]
    split = on["layers_cpu"]
    assert split["total"] > 0 and split["qkv"] > 0 and split["ffn_out"] > 0
    parts = sum(value for name, value in split.items() if name != "total")
    assert parts == pytest.approx(split["total"], rel=0.02)  # the laps tile the call
    assert "layers" not in profile("0")  # control: not set, nothing counted


def test_a_rows_profile_times_two_rows_and_the_batch_s_rows_over_a_job_s_positions(monkeypatch):
    """run_step_profile(rows=4): the decoder alone at 2 rows and at 4, every position of the job; the batch's read
    counts each row's own cache (the weights once), so its floor is above 2 rows' and below twice it here."""
    from inference.bench import musicgen
    from inference.bench.step_profile import run_step_profile

    monkeypatch.setattr(musicgen, "memory_bandwidth_gbs", lambda: 1e-3)  # 1 MB/s: a tiny model's bytes in ms
    rows = run_step_profile(shape="tiny", weights=("int4",), duration_s=0.4, rounds=1, rows=4, emit=lambda _: None)
    assert [row["rows"] for row in rows] == [2, 4]
    assert all(row["steps"] == 20 and row["decoder_only"] and row["finite"] for row in rows)
    two, four = rows
    assert two["read_floor_ms"] < four["read_floor_ms"] < 2 * two["read_floor_ms"]
