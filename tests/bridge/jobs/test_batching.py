"""Jobs decoded together (continuous batching) through an in-process daemon: each job's files are the ones it
writes alone; a live job joins a full batch at once; a cancelled job leaves and the others finish."""

from __future__ import annotations

import time

import numpy as np
import pytest
import soundfile as sf

SENDER = ("127.0.0.1", 40999)
JOBS = [("kick", 11), ("warm pad with a long, long description", 12), ("hats", 13)]


def generate(daemon, job_id: str, prompt: str, seed: int, bars: float = 2.0, **settings) -> None:
    args = [job_id, "default", prompt, bars, "seed", seed]
    for name, value in settings.items():
        args += [name, value]
    daemon.on_message("/continuo/generate", args, SENDER)


def mix(daemon, job_id: str) -> np.ndarray:
    address, args = daemon.sent.wait_terminal(job_id)
    assert address == "/continuo/done", args
    path = next(a[2] for name, a in daemon.sent.of(job_id) if name == "/continuo/output" and a[1] == "mix")
    return sf.read(path, dtype="float32")[0]


@pytest.mark.slow
def test_jobs_sent_together_write_what_each_writes_alone(make_daemon_in_process):
    daemon = make_daemon_in_process(max_batch=4)
    alone = []
    for index, (prompt, seed) in enumerate(JOBS):
        generate(daemon, f"alone-{index}", prompt, seed)
        alone.append(mix(daemon, f"alone-{index}"))
    rows_alone = daemon.engine.scheduler.max_rows
    for index, (prompt, seed) in enumerate(JOBS):
        generate(daemon, f"together-{index}", prompt, seed)
    together = [mix(daemon, f"together-{index}") for index in range(len(JOBS))]
    for index, (got, expected) in enumerate(zip(together, alone)):
        np.testing.assert_array_equal(got, expected, err_msg=f"job {index} wrote other samples in the batch")
    assert daemon.engine.scheduler.max_rows > rows_alone, "the jobs never shared a step"


@pytest.mark.slow
def test_a_live_job_joins_a_full_batch_at_once(make_daemon_in_process):
    """max_batch 2, two long batch jobs running: the live job runs beside them, and ends first."""
    daemon = make_daemon_in_process(max_batch=2)
    for index in range(2):
        generate(daemon, f"long-{index}", "drone", 20 + index, bars=8.0, priority="batch")
    deadline = time.monotonic() + 60
    while len(daemon.pool.running_jobs()) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(daemon.pool.running_jobs()) == 2
    generate(daemon, "live-1", "stab", 5, bars=0.5, priority="live")
    assert daemon.sent.wait_terminal("live-1")[0] == "/continuo/done"
    still_running = {job.job_id for job in daemon.pool.running_jobs()}
    assert {"long-0", "long-1"} <= still_running, "the live job waited for the batch"
    for index in range(2):
        assert daemon.sent.wait_terminal(f"long-{index}")[0] == "/continuo/done"


def test_cancel_one_job_of_a_batch_and_the_others_finish(make_daemon_in_process):
    daemon = make_daemon_in_process(max_batch=3)
    for index in range(3):
        generate(daemon, f"job-{index}", "loop", 30 + index, bars=4.0)
    deadline = time.monotonic() + 60
    while len(daemon.pool.running_jobs()) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    daemon.on_message("/continuo/cancel", ["job-1"], SENDER)
    assert daemon.sent.wait_terminal("job-1")[1][1] == "cancelled"
    for index in (0, 2):
        assert daemon.sent.wait_terminal(f"job-{index}")[0] == "/continuo/done"
    assert daemon.journal.get("job-1").status.value == "cancelled"
    assert not daemon.engine.scheduler.active
