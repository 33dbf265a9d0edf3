"""Continuous batching (inference/musicgen/batching.py): concurrent requests decoded in one forward per step give the
same codes as each alone, greedy and seeded; requests join mid-decode and leave without stopping the others;
a cancelled one leaves alone."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import numpy as np
import pytest
import torch

from inference.api import GenerationRequest
from inference.errors import Cancelled
from inference.loading import load_engine, resolve_model
from inference.musicgen.batching import combine_memory
from inference.musicgen.decode import Sampler

RATE = 32_000


def engine_for(model_dir, tmp_path_factory, **modes):
    source = resolve_model(str(model_dir), tiny_dir=tmp_path_factory.mktemp("unused"))
    return load_engine(source, device="cpu", warm_up=False, **modes)


@pytest.fixture(scope="module")
def engine(tiny_model_dir, tmp_path_factory):
    return engine_for(tiny_model_dir, tmp_path_factory)  # the daemon's defaults: int8 weights, fused attention


def prompt_audio(seconds: float, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * (110 + 40 * seed) * t))[None].astype(np.float32)


# Requests that differ in everything a batch must keep apart: text length, length, seed, guidance (CFG rows
# or none), sampling, variations, and an audio prompt (a longer prefill).
GREEDY = [
    (GenerationRequest(prompt="dark techno kick", duration_s=1.0, seed=1, temperature=0.0), [1]),
    (GenerationRequest(prompt="a much longer prompt: warm analog piano chords, slow, with tape hiss and room",
                       duration_s=0.6, seed=2, temperature=0.0, guidance_scale=1.0), [2]),
    (GenerationRequest(prompt="bass", duration_s=0.8, seed=3, temperature=0.0,
                       audio_prompt=prompt_audio(0.5)), [3]),
]
SEEDED = [
    (GenerationRequest(prompt="dark techno kick", duration_s=1.0, seed=11, temperature=1.0, top_k=50), [11, 12]),
    (GenerationRequest(prompt="lofi drums with vinyl crackle", duration_s=0.7, seed=5, temperature=0.9,
                       top_p=0.9, guidance_scale=1.0), [5]),
    (GenerationRequest(prompt="pad", duration_s=0.9, seed=8, temperature=1.2, guidance_scale=5.0,
                       audio_prompt=prompt_audio(0.3, seed=1)), [8]),
]


def solo(engine, cases):
    return [engine.generate_codes(request, seeds) for request, seeds in cases]


def together(engine, cases, *, join_after_steps: int = 3, cancel: int | None = None):
    """The first request starts alone; the others join once it has run join_after_steps steps. cancel: the
    index of a request whose caller cancels it after a few steps. Returns codes (or the error) per request."""
    results: list = [None] * len(cases)
    started = threading.Event()

    def run(index: int) -> None:
        request, seeds = cases[index]
        steps = [0]

        def on_step(done, sequence):
            steps[0] += 1
            if index == 0 and steps[0] >= join_after_steps:
                started.set()
                time.sleep(0.005)  # the one-call step decodes the tiny model in 1 ms: the others need time to join
            if index == cancel and steps[0] >= 4:
                raise Cancelled("cancelled by the test")

        try:
            results[index] = engine.generate_codes(request, seeds, on_step=on_step)
        except Exception as error:  # collected and asserted by the test
            results[index] = error

    first = threading.Thread(target=run, args=(0,))
    first.start()
    assert started.wait(60), "the first request never ran"
    others = [threading.Thread(target=run, args=(index,)) for index in range(1, len(cases))]
    for thread in others:
        thread.start()
    for thread in [first, *others]:
        thread.join(120)
    return results


@pytest.mark.parametrize("cases", [GREEDY, SEEDED], ids=["greedy", "seeded"])
def test_a_request_gives_the_same_codes_alone_or_in_a_batch(engine, cases):
    alone = solo(engine, cases)
    steps_before, most_rows = engine.scheduler.steps, engine.scheduler.max_rows
    batched = together(engine, cases)
    for index, (codes, expected) in enumerate(zip(batched, alone)):
        assert isinstance(codes, torch.Tensor), f"request {index} failed in the batch: {codes!r}"
        assert torch.equal(codes, expected), f"request {index} decoded other codes in the batch"
    rows = sum(len(seeds) * (2 if request.guidance_scale > 1 else 1) for request, seeds in cases)
    assert engine.scheduler.max_rows == max(most_rows, rows), "the requests never ran in one step together"
    solo_steps = sum(codes.shape[2] for codes in alone)  # about one step per frame each
    assert engine.scheduler.steps - steps_before < solo_steps, "the batch took as many steps as one at a time"


def test_the_batch_is_really_different_per_request(engine):
    """The check above must be able to fail: two seeds of one seeded request give different codes."""
    request, _ = SEEDED[0]
    first, second = engine.generate_codes(request, [11]), engine.generate_codes(request, [12])
    assert not torch.equal(first, second)


def test_cancel_one_request_and_the_others_finish_as_alone(engine):
    alone = solo(engine, GREEDY)
    results = together(engine, GREEDY, cancel=1)
    assert isinstance(results[1], Cancelled)
    assert torch.equal(results[0], alone[0]) and torch.equal(results[2], alone[2])
    assert not engine.scheduler.active and not engine.scheduler.pending


@pytest.mark.parametrize("modes", [{"kv_cache": "mulaw8"}, {"weights": "fp32", "attention": "sdpa"}],
                         ids=["mulaw8-cache", "fp32-sdpa"])
def test_other_cache_and_attention_modes_batch_the_same(tiny_model_dir, tmp_path_factory, modes):
    engine = engine_for(tiny_model_dir, tmp_path_factory, **modes)
    cases = GREEDY[:2]
    alone = solo(engine, cases)
    batched = together(engine, cases)
    if modes.get("attention") == "sdpa":  # SDPA with a mask is another kernel: equal to rounding, not bit for bit
        for codes, expected in zip(batched, alone):
            assert (codes == expected).float().mean() >= 0.98
    else:
        assert all(torch.equal(codes, expected) for codes, expected in zip(batched, alone))


def test_windows_past_the_model_window_batch_as_alone(tiny_model_dir, tmp_path_factory):
    """Requests longer than the decode window re-prompt window by window, each on its own schedule."""
    engine = engine_for(tiny_model_dir, tmp_path_factory)
    engine.options = replace(engine.options, window_s=0.5, keep_s=0.2)
    cases = [(GenerationRequest(prompt="dark techno kick", duration_s=1.3, seed=1, temperature=0.0), [1]),
             (GenerationRequest(prompt="bass", duration_s=0.9, seed=2, temperature=1.0), [2])]
    alone = solo(engine, cases)
    assert all(torch.equal(codes, expected) for codes, expected in zip(together(engine, cases), alone))


def test_melody_requests_batch_as_alone(tiny_melody_model_dir, tmp_path_factory):
    engine = engine_for(tiny_melody_model_dir, tmp_path_factory, weights="fp32")
    cases = [(GenerationRequest(prompt="violin", duration_s=0.6, seed=1, temperature=0.0,
                                melody=prompt_audio(1.0)), [1]),
             (GenerationRequest(prompt="a longer prompt for the second one", duration_s=0.5, seed=2,
                                temperature=1.0), [2])]
    alone = solo(engine, cases)
    assert all(torch.equal(codes, expected) for codes, expected in zip(together(engine, cases), alone))


def test_generate_gives_the_same_audio_alone_or_in_a_batch(engine):
    """Through generate (conditioning, steps and the codec all on the compute thread)."""
    requests = [GenerationRequest(prompt="kick", duration_s=0.5, seed=4, temperature=1.0),
                GenerationRequest(prompt="hats and claps", duration_s=0.4, seed=9, temperature=1.0)]
    alone = [engine.generate(request).audio for request in requests]
    results: list = [None, None]
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, engine.generate(requests[i]).audio))
               for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert all(np.array_equal(got, expected) for got, expected in zip(results, alone))


def test_a_serving_thread_runs_every_torch_call(engine):
    """With serve() on a thread, callers only wait: the steps and the codec run on the serving thread."""
    stop = threading.Event()
    server = threading.Thread(target=engine.compute.serve, args=(stop,))
    server.start()
    try:
        seen: set[int] = set()
        real = engine.codec_decode

        def decode(*args, **kwargs):
            seen.add(threading.get_ident())
            return real(*args, **kwargs)

        engine.codec_decode = decode
        try:
            audio = engine.generate(GenerationRequest(prompt="kick", duration_s=0.3, seed=1)).audio
        finally:
            del engine.codec_decode
        assert seen == {server.ident} and np.isfinite(audio).all()
    finally:
        stop.set()
        server.join(10)
    assert not server.is_alive() and not engine.scheduler.serving


def test_combine_memory_pads_and_masks_shorter_texts():
    keys = [torch.ones(2, 1, 3, 4), torch.ones(1, 1, 5, 4)]
    memories = [[(k, k * 2, None)] for k in keys]
    (k, v, mask), = combine_memory(memories, 1)
    assert k.shape == (3, 1, 5, 4) and torch.all(k[:2, :, 3:] == 0) and torch.all(v[2] == 2)
    assert mask.shape == (3, 1, 1, 5)
    assert mask[:2, 0, 0].tolist() == [[True] * 3 + [False] * 2] * 2 and bool(mask[2].all())
    same = combine_memory([[(keys[0], keys[0], None)], [(keys[0], keys[0], None)]], 1)
    assert same[0][2] is None, "equal texts need no mask"


def test_a_streamed_request_in_a_batch_streams_what_it_renders(engine):
    """Previews of one request while another decodes beside it: its chunks add up to its own render, which is
    the render it gives alone; the other request is untouched."""
    streamed_request = GenerationRequest(prompt="warm piano chords", duration_s=2.3, seed=2)
    other = GenerationRequest(prompt="dark techno kick", duration_s=1.5, seed=3)
    alone = engine.generate(streamed_request, on_chunk=lambda audio: None).audio  # streamed alone
    assert 10 * np.log10(1 / max(((engine.generate(streamed_request).audio - alone) ** 2).sum()
                                 / (alone**2).sum(), 1e-30)) > 100  # = the one-shot render, to rounding
    alone_other = engine.generate(other).audio
    chunks, results = [], {}

    def stream() -> None:
        results["streamed"] = engine.generate(streamed_request, on_chunk=chunks.append).audio

    threads = [threading.Thread(target=stream),
               threading.Thread(target=lambda: results.__setitem__("other", engine.generate(other).audio))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert np.array_equal(results["streamed"], alone) and np.array_equal(results["other"], alone_other)
    streamed = np.concatenate(chunks, axis=-1)
    assert streamed.shape == alone.shape and len(chunks) >= 2
    error = ((streamed - alone) ** 2).sum() / (alone**2).sum()
    assert 10 * np.log10(1 / max(error, 1e-20)) > 60  # the render is the chunks (codec stream, exact seams)



class RecordingSampler(Sampler):
    """The request's own sampler, keeping every step's guided-input logits (the decoder's (rows, K, 1, V))."""

    def __init__(self, base: Sampler, steps: list):
        super().__init__(base.guidance_scale, base.temperature, base.top_k, base.top_p, base.generators)
        self.steps = steps

    def __call__(self, logits):
        self.steps.append(logits.clone())
        return super().__call__(logits)


def recorded(engine, cases, *, batched: bool) -> list[list]:
    """Per request, the logits of every step, alone (one after another) or together (the second joining)."""
    logs = {case[0].prompt: [] for case in cases}
    original = engine.sampler
    engine.sampler = lambda request, cfg, seeds: RecordingSampler(original(request, cfg, seeds), logs[request.prompt])
    try:
        together(engine, cases, join_after_steps=40) if batched else solo(engine, cases)
    finally:
        engine.sampler = original
    return [logs[case[0].prompt] for case in cases]


@pytest.fixture(scope="module")
def copy_dir(tmp_path_factory):
    from inference.bench.quality import build_copy_musicgen

    return build_copy_musicgen(tmp_path_factory.mktemp("copy") / "copy")


LONG = [(GenerationRequest(prompt="dark techno kick", duration_s=6.0, seed=4, temperature=1.0), [4]),
        (GenerationRequest(prompt="warm piano chords", duration_s=3.0, seed=9, temperature=1.0), [9, 10])]


def same_bits(batched: list[list], alone: list[list]) -> bool:
    return all(len(steps) == len(expected) and all(torch.equal(got, want) for got, want in zip(steps, expected))
               for steps, expected in zip(batched, alone, strict=True))


def test_per_step_logits_alone_and_batched_are_the_same_bits_at_head_size_64(copy_dir, tmp_path_factory):
    """The claim, stated where a near-tie would show it: at head size 64 (the quality harness model, whose attention
    matters), over a 300-step job with another joining after 40 steps, every step's logits of each request are
    bitwise those it gets alone, with the CPU defaults (int4 or int8 weights as calibration allows, LM heads bf16,
    int8 cache, fused attention).
    The control: the same comparison fails when one logit of one late step of the joined request is one ulp off.
    (An earlier control ran fp32 weights through SDPA and expected different bits; on some CPUs oneDNN's GEMM
    blocking does not follow the row count and they match, so it proved nothing about the comparison.)"""
    engine = engine_for(copy_dir, tmp_path_factory)
    assert engine.weights.value in ("int4", "int8") and engine.kv_cache.value == "int8"  # int4: within budget here
    alone, batched = recorded(engine, LONG, batched=False), recorded(engine, LONG, batched=True)
    assert len(alone[0]) >= 300
    assert same_bits(batched, alone)
    late = batched[1][-1].clone()
    flat = late.view(-1)
    flat[7] = torch.nextafter(flat[7], torch.tensor(float("inf"), dtype=flat.dtype))
    assert not same_bits([batched[0], [*batched[1][:-1], late]], alone)
