"""A kept stream (inference/musicgen/code_stream.py): the jam's bars continue the decoder's own state.

Exactness: a bar continued from the kept state is the same codes as one uninterrupted decode; after a start over it
is the same as a plain code-prompt request (today's per-bar path); a prompt change conditions the next frames with
new cross-attention keys and values over the same history (and a stream that kept the old ones is caught); a render
between two bars leaves the stream's next bar as it was. Greedy unless said (the tiny random model: noise)."""

from __future__ import annotations

import re
import threading
import time

import numpy as np
import pytest
import torch

from inference.api import Capability, GenerationRequest
from inference.errors import Cancelled, InferenceError
from inference.loading import load_engine, resolve_model
from inference.musicgen import code_stream
from inference.musicgen.code_stream import KeptStream
from inference.musicgen.decode import (
    Sampler,
    apply_pattern,
    build_delay_pattern,
    decode_one_token,
    prefill,
    undelay,
)

RATE, FRAME_RATE = 32_000, 50


@pytest.fixture(scope="module")
def engine(tiny_model_dir, tmp_path_factory):
    source = resolve_model(str(tiny_model_dir), tiny_dir=tmp_path_factory.mktemp("unused"))
    return load_engine(source, device="cpu", warm_up=False, weights="fp32")


@pytest.fixture
def prefills(monkeypatch) -> list[int]:
    """The prefill of every start, counted (a continued request has none: its cost is its own steps)."""
    counted: list[int] = []

    def counting(model, pattern, start, memory, sampler):
        counted.append(start)
        return prefill(model, pattern, start, memory, sampler)

    monkeypatch.setattr(code_stream, "prefill", counting)
    return counted


def greedy(frames: int, **overrides) -> GenerationRequest:
    return GenerationRequest(**({"prompt": "warm piano", "duration_s": frames / FRAME_RATE, "seed": 3,
                                 "temperature": 0.0} | overrides))


def delay(engine) -> int:
    return (engine.args.num_codebooks - 1) // engine.args.audio_channels


def test_a_continued_bar_is_one_uninterrupted_decode(engine, prefills, monkeypatch):
    stream = engine.open_stream()
    first = stream.generate(greedy(40))
    monkeypatch.setattr(engine.codec, "encode", lambda *a, **k: pytest.fail("a kept stream re-encoded audio"))
    second = stream.generate(greedy(30, prompt_codes=first.codes[:, -25:]))  # the jam's context: the last frames
    assert (stream.starts, stream.continued, len(prefills)) == (1, 1, 1)  # bar 2 prefilled nothing
    # one decode of the same 70 frames, with the first codebook predicted past them as a stream does (a plain
    # request puts the end's pad there, `delay` frames before its last: the module's docstring)
    whole = engine.generate(greedy(70 + delay(engine))).codes[:, :70]
    np.testing.assert_array_equal(np.concatenate([first.codes, second.codes], axis=1), whole)
    assert second.audio.shape == (1, 30 * 640) and second.lead_in.shape == (1, round(0.2 * RATE))
    assert first.lead_in is None  # no code prompt: nothing to crossfade from
    # the audio is the stream's, decoded with its last frames as context (the codec is not causal: not at its end)
    reference = engine.decode_audio(torch.from_numpy(whole)[None])[0]
    np.testing.assert_allclose(second.audio[:, : 20 * 640], reference[:, 40 * 640 : 60 * 640], atol=1e-4)
    stream.close()
    assert stream.cache_bytes() == 0 and stream.peak_bytes > 0


def test_a_sampled_stream_is_reproducible_from_its_seeds(engine):
    def bars() -> list[np.ndarray]:
        stream, made = engine.open_stream(), []
        for bar in range(3):
            out = stream.generate(greedy(20, temperature=1.0, seed=10 + bar,
                                         prompt_codes=made[-1] if made else None))
            made.append(out.codes)
        assert stream.continued == 2
        return made

    one, two = bars(), bars()
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(one[1], one[2])


@pytest.mark.parametrize("temperature", [0.0, 1.0], ids=["greedy", "sampled"])
def test_after_a_start_over_the_stream_is_the_plain_code_prompt_path(engine, prefills, temperature):
    stream = engine.open_stream(max_frames=80)
    first = stream.generate(greedy(50, temperature=temperature))
    context = first.codes[:, -20:]
    ask = greedy(40, temperature=temperature, seed=7, prompt_codes=context)
    again = stream.generate(ask)  # 50 + 40 frames pass the 80 kept: it starts over from the context
    assert (stream.starts, stream.continued, prefills) == (2, 0, [1, 21])
    plain = engine.generate(greedy(40 + delay(engine), temperature=temperature, seed=7, prompt_codes=context))
    np.testing.assert_array_equal(again.codes, plain.codes[:, :40])
    # and it keeps going from there (20 + 40 + 20 frames fit): the next bar continues the restarted state
    stream.generate(greedy(20, temperature=temperature, seed=8, prompt_codes=again.codes[:, -20:]))
    assert (stream.starts, stream.continued) == (2, 1)


def test_at_the_models_window_the_stream_starts_over_and_goes_on(engine, prefills):
    """The default limit is the model's window (1500 frames, 30 s; positions past it the model never saw): the bar
    that would pass it starts over from its context, exactly as the plain path makes it, and the stream goes on."""
    window = engine.window_frames()
    stream = engine.open_stream()
    out, made = stream.generate(greedy(200)), 200
    while made + 200 <= window:  # 7 bars of 200 frames fit in 1500
        out = stream.generate(greedy(200, seed=made, prompt_codes=out.codes[:, -100:]))
        made += 200
    assert (stream.starts, stream.continued) == (1, 6) and stream.caches[0].positions == 1536
    context = out.codes[:, -100:]
    again = stream.generate(greedy(200, seed=made, prompt_codes=context))  # 1400 + 200 > 1500: over again
    assert (stream.starts, stream.continued, prefills) == (2, 6, [1, 101])
    plain = engine.generate(greedy(200 + delay(engine), seed=made, prompt_codes=context)).codes[:, :200]
    np.testing.assert_array_equal(again.codes, plain)
    assert stream.caches[0].positions == 512  # the old cache went: 1 + 100 + 200 + the delay, in 256s
    stream.generate(greedy(200, seed=made + 1, prompt_codes=again.codes[:, -100:]))
    assert (stream.starts, stream.continued) == (2, 7)
    # control: a stream that never starts over runs out of its positions at the window
    endless = EndlessStream(engine)
    out = endless.generate(greedy(200))
    with pytest.raises(InferenceError):
        for bar in range(window // 200):
            out = endless.generate(greedy(200, seed=bar, prompt_codes=out.codes[:, -100:]))


class EndlessStream(KeptStream):
    """The bug the window test must catch: a stream that never starts over at its limit."""

    def __init__(self, engine) -> None:
        super().__init__(engine, context_frames=10)

    def start_reason(self, request, cfg, new) -> str:
        return super().start_reason(request, cfg, 0)


@pytest.mark.parametrize("how", ["error", "cancel"])
def test_a_request_that_fails_part_way_leaves_no_state_to_continue(engine, prefills, how):
    """A bar that fails or is cancelled after some of its steps: the next bar must not continue that half-made
    state (some steps in the cache, the pattern partly written); it starts over, as the plain path makes it."""
    def run(stream) -> tuple[np.ndarray, list]:
        first = stream.generate(greedy(30))
        context = first.codes[:, -20:]
        steps, step = [], stream.step

        def failing() -> None:
            steps.append(1)
            if how == "error" and len(steps) == 6:
                raise RuntimeError("a step failed")
            step()

        with pytest.MonkeyPatch.context() as patch, pytest.raises(Cancelled if how == "cancel" else InferenceError):
            patch.setattr(stream, "step", failing)
            stream.generate(greedy(30, seed=4, prompt_codes=context), should_cancel=lambda: len(steps) >= 5)
        return stream.generate(greedy(30, seed=5, prompt_codes=context)).codes, context

    stream = engine.open_stream()
    again, context = run(stream)
    assert (stream.starts, stream.continued, len(prefills)) == (2, 0, 2)  # the failed request: no continuation
    plain = engine.generate(greedy(30 + delay(engine), seed=5, prompt_codes=context)).codes[:, :30]
    np.testing.assert_array_equal(again, plain)
    # control: a stream that keeps the half-made state continues it, into other codes
    kept = HalfMadeStream(engine)
    assert not np.array_equal(run(kept)[0], plain) and kept.starts == 1


class HalfMadeStream(KeptStream):
    """The bug the failure test must catch: a failed request's state kept for the next one."""

    def __init__(self, engine) -> None:
        super().__init__(engine, context_frames=10)

    def forget(self) -> None:
        pass


def test_a_prompt_that_is_not_the_streams_end_starts_over(engine, prefills):
    """A bank recalled in the jam: its context is another moment's codes. Continuing the state would be another
    stream; the stream starts over from them instead, as a plain request (never a wrong continuation)."""
    stream = engine.open_stream()
    first = stream.generate(greedy(30))
    elsewhere = engine.generate(greedy(25, seed=1, temperature=1.0)).codes
    out = stream.generate(greedy(20, prompt_codes=elsewhere))
    assert (stream.starts, stream.continued) == (2, 0)
    np.testing.assert_array_equal(out.codes, engine.generate(greedy(20 + delay(engine),
                                                                    prompt_codes=elsewhere)).codes[:, :20])
    stream.generate(greedy(20, prompt_codes=first.codes))  # the old end is gone too: started over
    assert stream.starts == 3


def test_cfg_turned_off_starts_over_and_sampling_settings_do_not(engine):
    stream = engine.open_stream()
    out = stream.generate(greedy(20))
    out = stream.generate(greedy(20, prompt_codes=out.codes, temperature=0.7, top_k=5))
    assert (stream.starts, stream.continued) == (1, 1)
    stream.generate(greedy(20, prompt_codes=out.codes, guidance_scale=1.0))  # one row, not two: a new state
    assert (stream.starts, stream.continued) == (2, 1)


def reference_with_a_prompt_change(engine, frames: tuple[int, int], prompts: tuple[str, str]) -> np.ndarray:
    """Codes of one greedy decode whose conditioning changes from prompts[0] to prompts[1] at frame frames[0] (the
    first codebook `delay` frames later, as a stream's delay pattern has it), the history kept: written with the
    decoder's plain one-token steps and the engine's own caches, not the stream's code."""
    first, second = frames
    extra = delay(engine)
    sampler = Sampler(3.0, 0.0, 0, 0.0, None)

    def run() -> np.ndarray:
        with torch.inference_mode():
            memories = [engine.condition(prompt, 1, True) for prompt in prompts]
            empty = torch.zeros((1, engine.args.num_codebooks, 0), dtype=torch.long)
            pattern = build_delay_pattern(empty, first + second + 2 * extra + 1, engine.args.audio_channels,
                                          engine.args.pad_id)
            engine.ensure_caches(2, pattern.shape[2])
            sequence = pattern.clone()
            sequence[:, :, 1] = prefill(engine.decoder, pattern, 1, memories[0], sampler)
            for position in range(1, first + second + extra):
                memory = memories[0] if position < first + extra else memories[1]
                predicted = decode_one_token(engine.decoder, sequence[:, :, position], position, memory, sampler)
                sequence[:, :, position + 1] = apply_pattern(predicted, pattern[:, :, position + 1])
            return undelay(sequence, first + second, engine.args.audio_channels)[0].numpy()

    return engine.scheduler.call(run)


def test_a_new_prompt_conditions_the_next_bar_over_the_same_history(engine, prefills):
    reference = reference_with_a_prompt_change(engine, (30, 30), ("warm piano", "dark techno"))
    stream = engine.open_stream()
    first = stream.generate(greedy(30))
    second = stream.generate(greedy(30, prompt="dark techno", prompt_codes=first.codes))
    assert (stream.starts, stream.continued, len(prefills)) == (1, 1, 1)  # the history stayed
    np.testing.assert_array_equal(np.concatenate([first.codes, second.codes], axis=1), reference)
    # control: a stream that kept the old prompt's cross-attention keys and values is caught
    stale = StaleStream(engine)
    a = stale.generate(greedy(30))
    b = stale.generate(greedy(30, prompt="dark techno", prompt_codes=a.codes))
    np.testing.assert_array_equal(a.codes, first.codes)
    assert not np.array_equal(np.concatenate([a.codes, b.codes], axis=1), reference)


class StaleStream(KeptStream):
    """The bug the prompt test must catch: the cache reused after a prompt change, its cross keys/values kept."""

    def __init__(self, engine) -> None:
        super().__init__(engine, context_frames=10)

    def condition(self, request, cfg) -> None:
        if self.memory is None:
            super().condition(request, cfg)


RENDER = greedy(150, prompt="dark techno", seed=5, temperature=1.0)


def bars_beside_renders(engine, stream, *, renders: bool = True) -> dict:
    """Two bars of stream; with renders, a render between them and another running while it makes the second
    (started first, so the stream's steps and the render's interleave on the compute thread). The logits of every
    decode step by whose it was ('stream' for the second bar, 'between' and 'during' for the renders) and the
    order the steps ran in ('order': s, r). Logits, not codes: the tiny random model's argmax hardly depends on
    the history (a stream reading another's cache made the same greedy codes), its logits do."""
    seen: dict = {"first bar": [], "stream": [], "between": [], "during": [], "order": []}
    phase, role = ["first bar"], ["first bar"]
    batch_step, stream_step, decode_rows = engine.scheduler.step, stream.step, engine.decoder.decode_rows

    def recording(*args, **kwargs):
        logits = decode_rows(*args, **kwargs)
        seen[role[0]].append(logits.clone())
        return logits

    def render_step() -> None:
        role[0] = phase[0]
        seen["order"].append("r")
        batch_step()

    def kept_step() -> None:
        role[0] = "stream" if phase[0] == "during" else "first bar"
        seen["order"].append("s")
        stream_step()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine.decoder, "decode_rows", recording)
        patch.setattr(engine.scheduler, "step", render_step)
        patch.setattr(stream, "step", kept_step)
        return bars_and_renders(engine, stream, renders, seen, phase)


def bars_and_renders(engine, stream, renders: bool, seen: dict, phase: list[str]) -> dict:
    first = stream.generate(greedy(30))
    phase[0] = "between"
    if renders:
        engine.generate(RENDER)
    phase[0] = "during"
    thread = threading.Thread(target=lambda: engine.generate(RENDER)) if renders else None
    if thread is not None:
        thread.start()
        deadline = time.monotonic() + 30
        while not seen["during"] and time.monotonic() < deadline:  # until the render has stepped
            time.sleep(0.001)
    seen["order"].clear()
    stream.generate(greedy(60, prompt_codes=first.codes))
    if thread is not None:
        thread.join(60)
    return seen


def same_steps(one: list, two: list) -> bool:
    return len(one) == len(two) > 0 and all(torch.equal(a, b) for a, b in zip(one, two))


def render_logits(engine) -> list:
    """The logits of every decode step of RENDER made alone."""
    made, decode_rows = [], engine.decoder.decode_rows

    def recording(*args, **kwargs):
        made.append(decode_rows(*args, **kwargs))
        return made[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine.decoder, "decode_rows", recording)
        engine.generate(RENDER)
    return made


def test_a_render_between_and_during_bars_leaves_the_stream_and_the_render_as_they_were(engine):
    alone = bars_beside_renders(engine, engine.open_stream(), renders=False)["stream"]
    render_alone = render_logits(engine)

    seen = bars_beside_renders(engine, engine.open_stream())
    assert re.search("sr+s", "".join(seen["order"]))  # the render stepped between two of the bar's steps
    assert same_steps(seen["stream"], alone)  # every step of the bar, bit for bit, as without the renders
    assert same_steps(seen["between"], render_alone) and same_steps(seen["during"], render_alone)
    # control: a stream that sets its cache into the layers only when it starts (not every step) reads and writes
    # the render's cache there: caught
    seen = bars_beside_renders(engine, BoundOnceStream(engine))
    assert not same_steps(seen["stream"], alone)
    assert not same_steps(seen["during"], render_alone)


class BoundOnceStream(KeptStream):
    """The bug the render test must catch: the stream's cache set into the decoder's layers once per start."""

    def __init__(self, engine) -> None:
        super().__init__(engine, context_frames=10)
        self.bound = False

    def start(self, *args) -> None:
        self.bound = False
        super().start(*args)

    def bind(self) -> None:
        if not self.bound:
            super().bind()
            self.bound = True


def test_the_cache_grows_with_the_stream_up_to_its_limit(engine):
    stream = engine.open_stream(max_frames=300)
    out = stream.generate(greedy(100))
    small = stream.cache_bytes()
    for _ in range(3):
        out = stream.generate(greedy(100, prompt_codes=out.codes))  # 300, then past it: started over
    assert stream.peak_bytes > small and stream.starts == 2
    args = engine.args
    most = 2 * args.n_layer * 2 * args.n_head * 512 * args.head_dim * 4  # fp32 K and V, CFG rows, 512 positions
    assert stream.peak_bytes <= most


def test_limits_and_refusals_say_what_to_do(engine):
    with pytest.raises(InferenceError, match="at most the model's window, 1500 frames"):
        engine.open_stream(max_frames=1501)
    stream = engine.open_stream(max_frames=50)
    stream.close()
    with pytest.raises(InferenceError, match="closed"):
        stream.generate(greedy(10))


def test_a_request_too_long_to_keep_is_a_plain_request_never_a_refusal(engine, prefills):
    """A long context at a slow tempo (or a short max_frames): its prompt and new frames pass what the stream may
    hold even from a fresh start. The jam's per-bar path made it; the stream must too (it refused it once)."""
    stream = engine.open_stream(max_frames=50)
    out = stream.generate(greedy(60))
    np.testing.assert_array_equal(out.codes, engine.generate(greedy(60)).codes)
    context = out.codes[:, -30:]
    out = stream.generate(greedy(30, seed=4, prompt_codes=context))  # 30 + 30 > 50: plain again
    np.testing.assert_array_equal(out.codes, engine.generate(greedy(30, seed=4, prompt_codes=context)).codes)
    assert (stream.plain, stream.starts, stream.continued, prefills) == (2, 0, 0, [])
    stream.generate(greedy(20, prompt_codes=out.codes[:, -20:]))  # 20 + 20 fits: kept from here
    assert (stream.plain, stream.starts) == (2, 1)


def test_an_engine_without_kept_streams_refuses_by_capability(engine, tiny_model_dir, tmp_path):
    reference = load_engine(resolve_model(str(tiny_model_dir), tiny_dir=tmp_path), device="cpu", warm_up=False,
                            backend="transformers")
    assert not reference.info.supports(Capability.CODE_STREAM)
    with pytest.raises(InferenceError, match="cannot keep a stream's decoder state"):
        reference.open_stream()
