"""The MusicGen benchmark's pieces (inference.bench.musicgen): its step clock waits for the GPU it times."""

from __future__ import annotations

import pytest
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


def test_the_roofline_pieces_count_what_a_step_reads(tiny_model_dir, tmp_path_factory):
    """step_bytes: int4 weights read fewer bytes than int8, and a longer context more cache; the probe reads at a
    plausible speed; check_targets compares within one run."""
    from inference.bench.musicgen import StepClock, check_targets, memory_bandwidth_gbs, step_bytes
    from inference.loading import load_engine, resolve_model

    source = resolve_model(str(tiny_model_dir), tiny_dir=tmp_path_factory.mktemp("unused"))
    engines = {weights: load_engine(source, device="cpu", weights=weights, kv_cache="int8")
               for weights in ("int8", "int4")}
    assert step_bytes(engines["int4"], 100) < step_bytes(engines["int8"], 100) < step_bytes(engines["int8"], 400)
    assert 0.1 < memory_bandwidth_gbs(megabytes=64, repeats=2) < 10_000
    def nbytes(module) -> int:
        return sum(t.numel() * t.element_size() for t in [*module.parameters(), *module.buffers()])

    decoder = engines["int4"].decoder
    caches = sum(layer.attention.kv_cache.nbytes() for layer in decoder.layers)
    weights = sum(map(nbytes, decoder.layers)) + sum(map(nbytes, decoder.heads)) - caches
    cross = sum(nbytes(layer.cross_attention.wkv) for layer in decoder.layers)
    assert step_bytes(engines["int4"], 0) == weights - cross  # the text's keys and values: once per request
    clock = StepClock(1)
    clock.times = [0.0, 0.01, 0.02, 0.03, 0.5]  # a streamed codec chunk between the last two steps
    assert clock.median_step_s() == pytest.approx(0.01)
    row = {"backend": "engine", "device": "cpu", "shape": "musicgen-small", "wall_s": 4.0, "steps_per_s": 100.0,
           "rtf": 0.4, "decoder_rtf": 0.45, "first_audio_s": 0.2, "roofline_fraction": 0.8}
    checked = check_targets(row, {"wall_s": 80.0, "steps_per_s": 6.0})
    assert checked["vs_transformers"] == 20.0 and checked["targets"] == {
        "rtf": True, "decoder_rtf": False, "first_audio_s": True, "vs_transformers": True, "roofline_fraction": True}


def test_the_batching_floor_counts_each_row_s_cache_and_each_job_s_codec(tiny_model_dir, tmp_path_factory):
    """batching_floor: the weights are read once for the batch, every row's cache and every job's codec are not.
    The expected figures are built here from the cache's own size, not from the function's parts."""
    from inference.bench.throughput import batching_floor, codec_decode_s
    from inference.loading import load_engine, resolve_model

    source = resolve_model(str(tiny_model_dir), tiny_dir=tmp_path_factory.mktemp("unused"))
    engine = load_engine(source, device="cpu", weights="int8", kv_cache="int8")
    decoder = engine.decoder
    caches = [layer.attention.kv_cache for layer in decoder.layers]
    per_position_row = sum(cache.nbytes() / cache.positions / cache.rows for cache in caches)
    audio_s, bandwidth = 2.0, 10.0
    floor = batching_floor(engine, audio_s=audio_s, jobs=4, bandwidth_gbs=bandwidth, codec_s=0.0)
    steps = floor["floor_steps"]
    assert steps == round(audio_s * engine.info.frame_rate) + decoder.args.num_codebooks - 1
    six_more_rows = steps * per_position_row * (steps // 2) * 6 / (bandwidth * 1e9)  # 8 rows against 2
    assert floor["floor_read_4_s"] - floor["floor_read_one_s"] == pytest.approx(six_more_rows, rel=1e-6)
    assert 1.0 < floor["floor_decode_4_vs_one"] == floor["floor_4_vs_one"] < 4.0  # no codec: the read alone
    longer = batching_floor(engine, audio_s=8.0, jobs=4, bandwidth_gbs=bandwidth, codec_s=0.0)
    assert longer["floor_decode_4_vs_one"] > floor["floor_decode_4_vs_one"]  # more cache against the same weights
    codec_s = codec_decode_s(engine, audio_s, repeats=1)
    assert codec_s > 0
    with_codec = batching_floor(engine, audio_s=audio_s, jobs=4, bandwidth_gbs=bandwidth, codec_s=100.0)
    assert floor["floor_4_vs_one"] < with_codec["floor_4_vs_one"] < 4.0  # four codecs against one pull it to 4
    assert with_codec["floor_4_vs_one"] > 3.9


def test_a_single_job_s_walls_come_from_every_job_run_alone():
    """single_job_walls: the one-job runs' walls and each one-at-a-time job's own (latencies are from t0, so each
    less the one before); a batch's latencies overlap and are left out (2026-12-08's run, where the same job took
    7.92 to 12.23 s)."""
    from inference.bench.throughput import single_job_walls

    results = [
        {"jobs": 1, "mode": "one-at-a-time", "wall_s": 9.08, "latency_s": [9.08]},
        {"jobs": 1, "mode": "batched", "wall_s": 10.12, "latency_s": [9.87]},
        {"jobs": 4, "mode": "one-at-a-time", "wall_s": 38.37, "latency_s": [21.79, 12.23, 38.37, 30.45]},
        {"jobs": 4, "mode": "batched", "wall_s": 16.79, "latency_s": [14.23, 15.0, 15.76, 16.54]},
    ]
    assert single_job_walls(results) == pytest.approx([9.08, 10.12, 12.23, 9.56, 8.66, 7.92])


def simulated_run(step_s, *, steps: int = 503, pre_s: float = 0.09, pushes: dict[int, float], final_s: float = 0.03,
                  tail_s: float = 0.01) -> dict:
    """A run laid out as the engine runs it: T5, the prefill and the first step, then a tick after every step; the
    codec's pushes after the ticks named in `pushes` (the first returns first audio) and after the last; then the
    render's assembly. step_s(position) is a step's time at its position."""
    now, ticks, done, first_audio = pre_s, [pre_s], [], None
    for index in range(1, steps):
        if index - 1 in pushes:
            done.append((now, pushes[index - 1]))
            now += pushes[index - 1]
            first_audio = now if first_audio is None else first_audio
        now += step_s(index)
        ticks.append(now)
    done.append((now, final_s))
    return {"started": 0.0, "ticks": ticks, "pushes": done, "wall_s": now + final_s + tail_s,
            "first_audio_s": first_audio}


def test_the_walls_are_the_run_with_its_steps_at_the_roofline():
    """run_walls against the same run laid out again with every step after the first at its roofline (a read that
    grows with the position, as the cache does): the floors are that run's figures. The control: the same run with
    its codec pushes not subtracted from the steps reads a different wall (and so would a roofline taken at one
    position for every step)."""
    from inference.bench.musicgen import check_targets, run_walls

    def roofline(at: int) -> float:
        return 0.005 + at * 4e-6

    pushes = {31: 0.045, **{31 + 50 * n: 0.06 for n in range(1, 10)}}
    slow = simulated_run(lambda at: 0.009 + at * 5e-6, pushes=pushes)
    fast = simulated_run(roofline, pushes=pushes)
    walls = run_walls(**slow, read_s=roofline, audio_s=10.0)
    last = fast["ticks"][-1]
    assert walls["first_audio_steps"] == 32
    assert walls["rtf"] == pytest.approx(fast["wall_s"] / 10, abs=2e-3)
    assert walls["decoder_rtf"] == pytest.approx(last / 10, abs=2e-3)
    assert walls["first_audio_s"] == pytest.approx(fast["first_audio_s"], abs=2e-3)
    assert walls["pushes_s"] == pytest.approx(sum(pushes.values()) + 0.03)
    assert walls["rtf"] < slow["wall_s"] / 10 - 0.1
    unpushed = run_walls(**(slow | {"pushes": []}), read_s=roofline, audio_s=10.0)
    assert unpushed["rtf"] < walls["rtf"] - 0.04  # the pushes counted as steps, and so replaced by the roofline
    flat = run_walls(**slow, read_s=lambda at: roofline(0), audio_s=10.0)
    assert flat["rtf"] < walls["rtf"] - 0.04

    row = {"backend": "engine", "device": "cpu", "shape": "musicgen-small", "wall_s": slow["wall_s"],
           "steps_per_s": 100.0, "rtf": 0.6, "decoder_rtf": 0.55, "first_audio_s": 0.35, "roofline_fraction": 0.65,
           "walls": walls | {"first_audio_s": 0.26}}
    checked = check_targets(row, {"wall_s": 80.0, "steps_per_s": 6.0})
    assert checked["reachable"] == {"rtf": walls["rtf"] <= 0.5, "decoder_rtf": walls["decoder_rtf"] <= 0.4,
                                    "first_audio_s": False, "vs_transformers": 80.0 / walls["wall_s"] >= 16}
    assert checked["reachable"]["rtf"] and not checked["targets"]["rtf"]
    medium = check_targets(row | {"shape": "musicgen-medium", "rtf": 1.6, "walls": {"rtf": 1.45, "wall_s": 14.5}},
                           None)
    assert medium["targets"] == {"rtf": False} and medium["reachable"] == {"rtf": True}


def test_an_engine_row_carries_its_walls_from_the_run_it_timed(tiny_model_dir, tmp_path_factory):
    """bench_config on the tiny checkpoint, streaming as a user's request does: the codec's pushes are timed (the
    first after the steps first audio waits for: the first chunk, the codebooks' delay and the codec's lookahead),
    both probe readings are in the row, and every wall is below what the run measured."""
    from inference.bench.musicgen import BenchConfig, bench_config
    from inference.loading import load_engine, resolve_model
    from inference.musicgen.codec import LAG
    from inference.musicgen.engine import EngineOptions

    source = resolve_model(str(tiny_model_dir), tiny_dir=tmp_path_factory.mktemp("unused"))
    reference = load_engine(source, device="cpu", warm_up=False, backend="transformers")
    row = bench_config(reference.model, reference.processor.tokenizer, "tiny", BenchConfig("engine", "int8", "int8"),
                       1.0, torch.device("cpu"), probe_bandwidth=True)
    walls = row["walls"]
    frame_rate = reference.model.config.audio_encoder.frame_rate
    first_frames = EngineOptions().stream_frames(frame_rate)[0]
    delay = reference.model.config.decoder.num_codebooks - 1
    assert walls["first_audio_steps"] == first_frames + delay + LAG
    assert walls["pushes_s"] > 0 and walls["steps_s"] > 0
    assert len(row["probes_gbs"]) == 2 and row["bandwidth_gbs"] == max(row["probes_gbs"])
    assert 0 < walls["rtf"] < row["rtf"] and 0 < walls["decoder_rtf"] < row["decoder_rtf"]
    assert 0 < walls["first_audio_s"] < row["first_audio_s"]
