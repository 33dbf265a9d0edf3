"""bridge/jobs/pool.py: the workers the engine gets, what each may take, a switch's turn and its install.

The workers are stand-ins that record the hooks the pool hands them (the real Worker is tests/bridge/jobs/
test_worker.py's); the engines are stand-ins with the contract's concurrent_jobs, compute, info and
measured_speed.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from bridge.jobs.pool import RealTime, ServingStop, WorkerPool
from bridge.jobs.queue import Job, JobQueue
from inference.api import MeasuredSpeed
from inference.runtime.compute import ComputeThread


@dataclass
class Info:
    name: str = "stand-in"


@dataclass
class Engine:
    concurrent_jobs: int
    compute: ComputeThread | None = field(default_factory=ComputeThread)
    measured_speed: MeasuredSpeed | None = None
    info: Info = field(default_factory=Info)


class StubWorker:
    def __init__(self, *, engine, compute, live_only=False, may_take=None, between_jobs=None, take_lock=None,
                 finished=None, trains=None):
        self.engine, self.compute, self.live_only, self.finished = engine, compute, live_only, finished
        self.trains = trains
        self.may_take, self.between_jobs, self.take_lock = may_take, between_jobs, take_lock
        self.job: Job | None = None

    def running_job(self) -> Job | None:
        return self.job


class Switch:
    active = False

    def __init__(self) -> None:
        self.turns: list[object] = []

    def run_pending(self, serving) -> None:
        self.turns.append(serving)


def pool_for(engine: Engine, switch: Switch | None = None) -> WorkerPool:
    return WorkerPool(engine, "spec", loader=lambda settings: engine, queue=JobQueue(8), switch=switch or Switch(),
                      worker=StubWorker)


def job(job_id: str) -> Job:
    return Job(job_id=job_id, op="generate", params={}, reply_to=("h", 1), client_key=("h", 1))


def test_one_counted_worker_per_job_the_engine_takes_and_a_live_one_beside_an_engine_that_batches():
    batching = pool_for(Engine(3))
    assert [w.live_only for w in batching.workers] == [False, False, False, True, False]
    assert [w.trains for w in batching.workers] == [False, False, False, False, True]  # and one that trains
    counted = {id(w.take_lock) for w in batching.workers if not w.live_only and not w.trains}
    assert len(counted) == 1 and batching.workers[-2].take_lock is None  # the live worker keeps a lock of its own
    assert batching.workers[-1].take_lock is None and batching.workers[-1].may_take is None  # counts against no one
    cluster = pool_for(Engine(3, compute=None)).workers  # a cluster: one per replica
    assert [(w.live_only, w.trains) for w in cluster] == [(False, False)] * 3 + [(False, True)]
    assert [(w.live_only, w.trains) for w in pool_for(Engine(1)).workers] == [(False, False), (False, True)]


def test_a_counted_worker_may_take_a_job_while_fewer_run_than_the_engine_takes():
    pool = pool_for(Engine(2))
    first, second, live, training = pool.workers
    assert first.may_take() and live.may_take()
    first.job, training.job = job("a"), job("train")
    assert second.may_take()  # a training job counts against no render
    second.job, live.job = job("b"), job("live")
    assert not first.may_take() and not second.may_take()  # two run: the engine's count
    assert live.may_take()  # the live worker counts against no one
    assert [j.job_id for j in pool.running_jobs()] == ["a", "b", "live", "train"]


def test_a_switch_to_a_one_at_a_time_engine_is_respected_at_once():
    pool = pool_for(Engine(2))
    first, second, live, _ = pool.workers
    first.job = job("a")
    pool.install(Engine(1, compute=None), "other")
    assert not second.may_take() and not live.may_take()
    assert all(w.engine is pool.engine and w.compute is None for w in pool.workers) and pool.spec == "other"


def test_a_waiting_switch_gets_its_turn_only_when_no_job_runs():
    switch = Switch()
    pool = pool_for(Engine(2), switch)
    pool.workers[0].between_jobs()
    assert switch.turns == []  # none waits
    switch.active = True
    pool.workers[1].job = job("a")
    pool.workers[0].between_jobs()
    assert switch.turns == []  # a job runs
    pool.workers[1].job = None
    pool.workers[0].between_jobs()
    assert switch.turns == [pool]


def test_a_switch_ends_the_loop_serving_the_old_compute_thread():
    engine = Engine(2)
    pool, stop = pool_for(engine), threading.Event()
    serving = ServingStop(stop, pool, engine.compute)
    assert not serving.is_set()
    pool.install(Engine(2), "new")
    assert serving.is_set()
    assert ServingStop(stop, pool, pool.compute).is_set() is False
    stop.set()
    assert ServingStop(stop, pool, pool.compute).is_set()


def test_the_eta_counts_the_waiting_jobs_and_half_of_each_running_one_shared_by_the_engines_jobs():
    pool = pool_for(Engine(2))
    context = {"bpm": 120.0, "beats_per_bar": 4, "beat_unit": 4, "key": "", "sample_rate": 48000}
    waiting = Job(job_id="w", op="generate", params={"context": context, "bars": 2.0}, reply_to=("h", 1),
                  client_key=("h", 1))
    pool.queue.put(waiting)
    pool.workers[0].job = Job(job_id="r", op="generate", params={"context": context, "bars": 4.0},
                              reply_to=("h", 1), client_key=("h", 1))
    pool.real_time.seconds_per_audio_s = 0.5
    assert pool.eta_s(1) == (4.0 + 8.0 / 2) * 0.5 / 2  # 2 bars = 4 s waiting, half of 8 s running, 2 at once


def test_the_speed_starts_from_the_warm_up_measurement_then_follows_finished_jobs_of_any_worker():
    """ETAs use the engine's measured RTF before any job (not an assumed 1.0), then what jobs took, whichever
    worker ran them; a switch starts again from the new engine's measurement."""
    pool = pool_for(Engine(2, measured_speed=MeasuredSpeed(rtf=0.4, audio_s=1.0, source="warm-up")))
    assert (pool.seconds_per_audio_s, pool.real_time.source) == (0.4, "warm-up")
    context = {"bpm": 120.0, "beats_per_bar": 4, "beat_unit": 4, "key": "", "sample_rate": 48000}
    pool.queue.put(Job(job_id="w", op="generate", params={"context": context, "bars": 2.0}, reply_to=("h", 1),
                       client_key=("h", 1)))
    assert pool.eta_s(1) == 4.0 * 0.4 / 2  # 2 bars at 120 bpm, at the measured speed, 2 at once (1.0 assumed: 2.0)
    assert all(w.finished == pool.real_time.finished for w in pool.workers if not w.trains)
    pool.workers[2].finished(8.0, 4.0)  # the live worker's job: 2 s of work per second of audio
    assert pool.seconds_per_audio_s == 0.4 + RealTime.WEIGHT * (2.0 - 0.4)
    assert (pool.real_time.source, pool.real_time.jobs) == ("finished jobs", 1)
    pool.install(Engine(2), "unmeasured")
    assert (pool.seconds_per_audio_s, pool.real_time.source, pool.real_time.jobs) == (1.0, "assumed", 0)


def test_a_measured_speed_tells_a_musician_whether_it_keeps_up():
    fast, slow = MeasuredSpeed(0.5, 1.0, "warm-up", 1.2), MeasuredSpeed(1.25, 1.0, "finished jobs")
    assert fast.keeps_up() and not slow.keeps_up()
    assert fast.describe() == ("RTF 0.50 measured at warm-up (1 s of audio, load 1.2): faster than real time "
                               "(2.0x), keeps up with playback")
    assert "SLOWER than real time: a 4 s bar takes 5.0 s" in slow.describe()
