"""`continuo train-style --plan` on a CPU with a real-size model: where else it can run, from the settings
(bridge/tools/train_style.py:where_to_train), and that the plan prints it only for a GPU job."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from bridge.jobs.style_training import StylePlan, StyleRequest
from bridge.settings import Settings
from bridge.tools.train_style import where_to_train

REQUEST = StyleRequest(folder=Path("/music/band"), name="my-band")


def places(**settings) -> str:
    return "\n".join(where_to_train(dataclasses.replace(Settings(), **settings), REQUEST))


def test_nothing_configured_says_how_to_configure_each_place():
    text = places()
    assert "none found" in text and "train-style /music/band --name my-band --local" in text
    assert "daemon on this machine (127.0.0.1:" in text and "--host GPU-HOST --port PORT" in text
    assert "none configured (the cluster setting" in text and "training on a replica is not built" in text


def test_a_remote_daemon_and_a_ray_cluster_are_offered_as_configured():
    text = places(osc_host="10.0.0.7", osc_allowed_hosts="10.0.0.1", cluster="ray://gpu-box:10001")
    assert "the daemon the settings name (10.0.0.7:" in text and "queues it there" in text
    assert "GPU-HOST" not in text  # control: a configured daemon is offered, not explained
    assert "Ray cluster the settings name (ray://gpu-box:10001)" in text
    assert "sending a training job to a replica is not built" in text and "copy its lora_dir/my-band" in text
    assert "none configured" not in text


def test_a_local_cluster_is_this_cpu_and_a_bad_one_is_named():
    assert "on this CPU" in places(cluster="local:2")
    assert "not valid" in places(cluster="nonsense")


def test_the_plan_lists_the_places_only_for_a_gpu_job():
    plan = StylePlan(minutes=10.0, clips=20, steps=40, steps_per_s=0.01, peak_memory_gb=9.0, device="cpu",
                     parameters=2_000_000_000, gpu_job=True, report="20 clips", elsewhere=("a GPU box",))
    assert "This is a GPU job: a 2000M-weight model" in plan.describe()
    assert "Where it can run instead:\n- a GPU box" in plan.describe()
    small = dataclasses.replace(plan, gpu_job=False)
    assert "GPU" not in small.describe()
