"""bench jam's figures from what the outputs received: the bar-boundary error, late chunks, control-to-heard; each
check fails on a broken stream (a bar a sample short, a chunk after its bar line)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from bridge.audio.clocks import ClockReading
from bridge.audio.playback import JamChunk
from bridge.jobs.jam import JamStatus, bar_samples
from bridge.tools.bench_jam import summarise

RATE = 32_000


class Clock:
    kind = "internal"

    def reading(self, at_s: float | None = None) -> ClockReading:
        at = 0.0 if at_s is None else at_s
        return ClockReading(at, at * 2.0, 120.0, 4, True)  # beat = 2 * seconds: 120 BPM from t = 0


def run(lengths: list[int], arrivals: list[float], prompt_ids: list[int], controls=()) -> dict:
    chunks = [(arrived, JamChunk("jam", bar, 4.0 * bar, 4.0, 120.0, np.zeros((1, length), np.float32), RATE,
                                 prompt_id=pid))
              for bar, (length, arrived, pid) in enumerate(zip(lengths, arrivals, prompt_ids))]
    engine = SimpleNamespace(info=SimpleNamespace(sample_rate=RATE, name="tiny", is_random=True),
                             measured_speed=None)
    session = SimpleNamespace(clock=Clock())
    sink = SimpleNamespace(chunks=chunks)
    status = JamStatus("jam", state="stopped", bar=len(chunks) - 1, rtf=0.3, underruns=0)
    return summarise("tiny", engine, "", session, status, sink, list(controls), 10.0, 1.0)


def test_exact_bars_on_time_have_no_error_and_no_underrun():
    bar = round(bar_samples(120.0, 4, RATE))
    result = run([bar] * 4, [-1.0, 1.0, 3.0, 5.0], [0, 0, 1, 1], controls=[(1.5, 0, 2)])
    assert result["bar_boundary_error_samples_max"] == 0 and result["late_chunks"] == 0
    assert result["lead_s_min"] == 1.0 and result["underruns_per_min"] == 0.0
    assert (result["control_to_heard_bars_median"], result["control_to_heard_s_median"]) == (2, 2.5)


def test_a_bar_a_sample_short_and_a_late_chunk_are_counted():
    bar = round(bar_samples(120.0, 4, RATE))
    result = run([bar - 1, bar, bar, bar], [-1.0, 1.0, 4.5, 5.0], [0, 0, 0, 1], controls=[(1.5, 0, 2)])
    assert result["bar_boundary_error_samples_max"] == 1  # every later bar line is a sample early
    assert result["late_chunks"] == 1 and result["lead_s_min"] == -0.5
    assert result["control_to_heard_bars_median"] == 3  # heard from bar 3, the first made with the new prompt


def test_bar_costs_measures_the_kept_stream_against_a_prefill_per_bar(tiny_model_dir, tmp_path):
    """The A/B's two ways are what they say: the kept side continues one stream (one prefill, then every bar from
    its state), the other makes each bar as a request of its own; both the same frames, both timed."""
    from bridge.tools.bench_jam import bar_costs
    from inference.loading import load_engine, resolve_model

    engine = load_engine(resolve_model(str(tiny_model_dir), tiny_dir=tmp_path), device="cpu", warm_up=False,
                         weights="fp32")
    result = bar_costs(engine, "tiny", bars=3)
    assert (result["stream_starts"], result["stream_continued"], result["stream_plain"]) == (1, 3, 0)
    assert result["stream_frames_at_end"] == 4 * result["frames_per_bar"]
    for way in ("kept", "prefilled"):
        assert len(result[f"wall_s_{way}"]) == 3 and result[f"rtf_{way}_median"] > 0
        assert result[f"cpu_s_per_bar_{way}_median"] > 0
