"""`continuo bench soak`: its figures from RSS samples, its job plan and hand-out, and one short real run."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest

from bridge.cli import main
from bridge.tools.bench_soak import CLIENTS, KINDS, Sample, Tally, growth_figures, plan_job, read_rss_mb


def samples(rss: list[float]) -> list[Sample]:
    """One sample a second, one job done per sample."""
    return [Sample(float(index), index, value, value / 2) for index, value in enumerate(rss)]


def quiet_at(series: list[Sample], *indices: int) -> dict[str, Sample]:
    return dict(zip(("start", "middle", "end"), (series[index] for index in indices)))


def test_a_flat_daemon_passes_though_running_jobs_spike_its_rss():
    flat = samples([1000.0 + (400.0 if index % 7 == 3 else 0.0) for index in range(200)])  # activations now and then
    figures = growth_figures(flat, quiet_at(flat, 21, 105, 198))
    assert figures["rss_start_mb"] == figures["rss_middle_mb"] == figures["rss_end_mb"] == 1000.0
    assert figures["rss_peak_mb"] == 1400.0 and figures["rss_busy_mean_mb"] > 1000.0
    assert figures["growth_pct"] == 0.0 and figures["passed"] and figures["jobs_at_start"] == 21


def test_a_daemon_that_keeps_growing_fails_with_its_growth():
    growing = samples([1000.0 + 2.0 * index for index in range(200)])  # 2 MB per job, for good
    figures = growth_figures(growing, quiet_at(growing, 20, 110, 199))
    assert figures["rss_start_mb"] < figures["rss_middle_mb"] < figures["rss_end_mb"]
    assert figures["growth_pct"] > 10 and not figures["passed"]
    assert figures["growth_mb_per_100_jobs"] == pytest.approx(200.0)


def test_warm_up_growth_does_not_count_and_a_missing_middle_is_none():
    warming = samples([800.0 + 10.0 * min(index, 30) for index in range(200)])  # loads in the first 30 jobs, then flat
    figures = growth_figures(warming, quiet_at(warming, 40) | {"end": warming[-1]})
    assert figures["rss_ready_mb"] == 800.0 and figures["growth_pct"] == 0.0 and figures["passed"]
    assert figures["rss_middle_mb"] is None
    with pytest.raises(RuntimeError, match="quiet"):
        growth_figures(warming, {"end": warming[-1]})


def test_the_tally_hands_out_jobs_until_the_count_or_the_deadline():
    ended = []
    tally = Tally(3, None, ended.append)
    assert [tally.take() for _ in range(4)] == [1, 2, 3, None]
    tally.finish("generate")
    tally.finish("stems", "model_error")
    assert ended == [1, 2] and tally.by_kind == {"generate": 1, "stems": 1} and tally.failed == {"stems:model_error": 1}
    assert Tally(10, time.monotonic() - 1, ended.append).take() is None  # past the deadline: nothing more


def test_the_tally_goes_quiet_after_warm_up_and_halfway_before_handing_out_more():
    quiet: list[tuple[str, int, int]] = []
    tally = Tally(10, None, lambda done: None, warmup_jobs=4, on_quiet=lambda label: quiet.append(
        (label, tally.handed, tally.done)))
    assert [tally.take() for _ in range(4)] == [1, 2, 3, 4]  # the 4th ends warm-up: the next take waits
    taken: list[int | None] = []
    waiting = threading.Thread(target=lambda: taken.append(tally.take()))
    waiting.start()
    for _ in range(3):
        tally.finish("generate")
    waiting.join(0.3)
    assert waiting.is_alive() and not taken and not quiet  # a job still runs: no new one goes out
    tally.finish("generate")  # the last one out ends: quiet, then handing goes on
    waiting.join(5)
    assert quiet == [("start", 4, 4)] and taken == [5]
    assert [tally.take() for _ in range(2)] == [6, 7]  # 7 = 4 + (10 - 4) // 2: the middle
    for _ in range(3):
        tally.finish("generate")
    assert quiet[-1] == ("middle", 7, 7) and tally.quiet == ["start", "middle"]
    assert [tally.take() for _ in range(4)] == [8, 9, 10, None]


def test_every_client_sends_every_kind_within_its_first_jobs():
    import random

    for client in CLIENTS:
        jobs = [plan_job(client, index, number, random.Random(0)) for index, number in enumerate(range(1, 5))]
        assert sorted(job.kind for job in jobs) == sorted(KINDS)
        assert len({job.job_id for job in jobs}) == 4


def test_rss_is_read_from_proc():
    if not os.path.exists(f"/proc/{os.getpid()}/status"):
        pytest.skip("no /proc here")
    rss = read_rss_mb(os.getpid())
    assert rss["rss_mb"] > 10 and 0 < rss["anon_mb"] <= rss["rss_mb"]


@pytest.mark.slow
@pytest.mark.serial  # a soak reads the daemon's memory and pace: alone, as the bench runs
def test_a_short_soak_runs_every_client_and_kind_against_a_real_daemon(capsys):
    main(["bench", "soak", "--jobs", "6", "--warmup-jobs", "5"])  # its exit status is the 10 % verdict: not asserted
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["suite"] == "soak" and result["jobs"] == 6 and result["clients"] == list(CLIENTS)
    assert result["client_errors"] == [] and result["failed"] == {}
    assert set(result["by_kind"]) == set(KINDS)
    assert 0 < result["rss_ready_mb"] <= result["rss_peak_mb"]
    assert result["rss_start_mb"] > 0 and result["rss_end_mb"] > 0 and isinstance(result["passed"], bool)
    assert "SMOKE" in result["model"]
