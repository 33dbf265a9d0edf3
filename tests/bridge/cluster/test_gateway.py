"""The gateway's side of the cluster, in process and without Ray: a job whose replica is lost mid-take is
re-queued once and written once; a cluster engine gets one worker per replica; --cluster without Ray says how
to install it."""

from __future__ import annotations

import threading

import pytest

from bridge.cluster.spec import ClusterSpec, parse_cluster, require_ray
from bridge.daemon import load_model
from bridge.errors import ConfigError, ReplicaLost
from bridge.jobs.queue import JobStatus
from tests.daemons import daemon_settings

SENDER = ("127.0.0.1", 41000)


class LosesReplicas:
    """The tiny engine; the first `losses` takes report progress, then their replica dies."""

    def __init__(self, engine, losses: int, concurrent_jobs: int = 1) -> None:
        self._engine = engine
        self.losses = losses
        self.concurrent_jobs = concurrent_jobs
        self.calls = 0

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def generate(self, request, **kwargs):
        self.calls += 1
        if self.calls <= self.losses:
            kwargs["on_progress"](0.5, "generating")
            raise ReplicaLost("the replica running this job (r1 on node-a) died mid-take")
        return self._engine.generate(request, **kwargs)


def submit(daemon, job_id: str) -> None:
    daemon.submit("generate", job_id, {"preset": "default", "prompt": "x", "bars": 1.0}, {}, SENDER)


def test_a_job_whose_replica_died_runs_once_more_and_writes_its_outputs_once(make_daemon_in_process):
    daemon = make_daemon_in_process(engine_loader=lambda s: LosesReplicas(load_model(s), losses=1))
    submit(daemon, "lost-once")
    address, _ = daemon.sent.wait_terminal("lost-once")
    events = [a for a, _ in daemon.sent.of("lost-once")]
    assert address == "/continuo/done" and daemon.engine.calls == 2
    assert events.count("/continuo/queued") == 2  # accepted, then queued again: the client sees it restart
    progress = [args[1] for a, args in daemon.sent.of("lost-once") if a == "/continuo/progress"]
    assert progress.index(min(progress[1:])) > 0  # progress fell back after the loss
    assert events.count("/continuo/output") == 1 and len(daemon.journal.get("lost-once").outputs) == 1
    assert daemon.journal.get("lost-once").status is JobStatus.DONE


def test_a_second_loss_fails_the_job_with_model_error(make_daemon_in_process):
    daemon = make_daemon_in_process(engine_loader=lambda s: LosesReplicas(load_model(s), losses=2))
    submit(daemon, "lost-twice")
    address, args = daemon.sent.wait_terminal("lost-twice")
    assert address == "/continuo/error" and args[1] == "model_error" and "re-run 1 time" in args[2]
    assert daemon.engine.calls == 2 and daemon.journal.get("lost-twice").status is JobStatus.FAILED


class NeedsTwoAtOnce(LosesReplicas):
    """A take waits until a second take is running beside it (a one-job-at-a-time gateway would time out)."""

    def __init__(self, engine) -> None:
        super().__init__(engine, losses=0, concurrent_jobs=2)
        self.barrier = threading.Barrier(2, timeout=30)

    def generate(self, request, **kwargs):
        self.barrier.wait()
        return self._engine.generate(request, **kwargs)


def test_a_cluster_engine_gets_a_worker_per_replica(make_daemon_in_process):
    daemon = make_daemon_in_process(engine_loader=lambda s: NeedsTwoAtOnce(load_model(s)))
    assert len([worker for worker in daemon.pool.workers if not worker.live_only and not worker.trains]) == 2
    submit(daemon, "side-a")
    submit(daemon, "side-b")
    assert daemon.sent.wait_terminal("side-a")[0] == "/continuo/done"
    assert daemon.sent.wait_terminal("side-b")[0] == "/continuo/done"


@pytest.mark.parametrize("text, spec", [
    ("", None), ("local:2", ClusterSpec(True, 2, "")), ("ray://head:10001", ClusterSpec(False, 0, "ray://head:10001")),
    ("10.0.0.5:6379", ClusterSpec(False, 0, "10.0.0.5:6379")), ("auto", ClusterSpec(False, 0, "auto")),
])
def test_cluster_setting_forms(text, spec):
    assert parse_cluster(text) == spec


@pytest.mark.parametrize("text", ["local:0", "local:x", "ray://", "somewhere"])
def test_a_wrong_cluster_setting_names_the_forms(text):
    with pytest.raises(ConfigError, match="local:N"):
        parse_cluster(text)


def test_cluster_without_ray_says_how_to_install_it(monkeypatch, tiny_model_dir, tmp_path):
    import bridge.cluster.spec as spec

    def no_ray(name: str):
        raise ImportError(f"No module named {name!r}")

    monkeypatch.setattr(spec.importlib, "import_module", no_ray)
    with pytest.raises(ConfigError, match=r"pip install 'continuo\[cluster\]'"):
        require_ray()
    with pytest.raises(ConfigError, match=r"pip install 'continuo\[cluster\]'"):
        load_model(daemon_settings(tiny_model_dir, tmp_path, cluster="local:2"))


def test_the_core_package_imports_without_ray():
    """Nothing outside bridge/cluster/ imports Ray at module level, so `continuo` runs where Ray is absent."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['ray'] = None; import bridge.cli, bridge.daemon, bridge.tools.doctor, "
            "bridge.cluster.spec, bridge.cluster.proxy, bridge.tools.bench_cluster")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_a_requeued_job_goes_first_of_its_priority_but_after_live_jobs():
    from bridge.jobs.queue import Job, JobQueue, Priority

    def job(job_id: str, priority: Priority) -> Job:
        return Job(job_id=job_id, op="generate", params={}, reply_to=SENDER, client_key=SENDER, priority=priority)

    queue = JobQueue(8)
    for job_id, priority in [("batch", Priority.BATCH), ("i1", Priority.INTERACTIVE), ("live", Priority.LIVE),
                             ("i2", Priority.INTERACTIVE)]:
        queue.put(job(job_id, priority))
    assert queue.put(job("lost", Priority.INTERACTIVE), front=True) == 2
    assert [j.job_id for j in queue.waiting()] == ["live", "lost", "i1", "i2", "batch"]
