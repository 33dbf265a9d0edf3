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
