"""CPU twins of the GPU paths (issue 15): what a CUDA run would hit, reproduced and guarded without a GPU.

Compiled decode is traced by Dynamo with the eager backend (the graph inductor would turn into CUDA graphs);
host syncs are caught by refusing device tensors built from host data inside the step; bitsandbytes, the
out-of-memory paths and device choice run against fakes of the CUDA calls they make. The parity twins
(fp16 on the CPU, bf16 + mulaw8 under SDPA, the stand-in flash-attn) are in test_quantize.py.
"""

from __future__ import annotations

import gc
import importlib.util
import json
import weakref

import numpy as np
import pytest
import torch

import inference.musicgen.batching
import inference.musicgen.decode
import inference.musicgen.engine
from inference.api import GenerationRequest
from inference.errors import OutOfMemory
from inference.loading import load_engine, resolve_model
from inference.musicgen.engine import EngineOptions, engine_from_hf_model


@pytest.fixture(scope="module")
def source(tiny_model_dir, tmp_path_factory):
    return resolve_model(str(tiny_model_dir), tiny_dir=tmp_path_factory.mktemp("unused"))


@pytest.fixture(scope="module")
def engine(source):
    return load_engine(source, device="cpu", warm_up=False, weights="fp32", kv_cache="fp32")


def build(tiny_model_dir, **options):
    from transformers import AutoProcessor, MusicgenForConditionalGeneration

    model = MusicgenForConditionalGeneration.from_pretrained(tiny_model_dir, local_files_only=True).eval()
    tokenizer = AutoProcessor.from_pretrained(tiny_model_dir, local_files_only=True).tokenizer
    return engine_from_hf_model(model, tokenizer, options=EngineOptions(**options), device="cpu")


SHORT, LONG = "warm piano", "warm lofi piano chords with soft drums and vinyl crackle in a slow groove"
PRESETS = [dict(temperature=0.0, guidance_scale=3.0), dict(temperature=1.0, top_k=250, guidance_scale=3.0)]


# ---- compiled decode ---------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_compiled_decode_is_one_whole_graph_per_batch_size(tiny_model_dir):
    """fullgraph=True (a graph break raises), 25+ steps a request, two prompt lengths, two presets, three batch
    sizes: one graph each, and the codes of the uncompiled engine."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    compiled = build(tiny_model_dir, weights="fp32", kv_cache="fp32", attention="sdpa", compile=True,
                     compile_backend="eager")
    eager = build(tiny_model_dir, weights="fp32", kv_cache="fp32", attention="sdpa")
    before = counters["stats"]["unique_graphs"]
    decoder_batches = set()
    for prompt in (SHORT, LONG):
        for preset in PRESETS:
            request = GenerationRequest(prompt=prompt, duration_s=0.5, seed=3, **preset)
            for seeds in ([3], [3, 4]):
                codes = compiled.generate_codes(request, seeds)
                decoder_batches.add(2 * len(seeds))
                if preset["temperature"] == 0.0:
                    assert torch.equal(codes, eager.generate_codes(request, seeds))
    no_cfg = GenerationRequest(prompt=LONG, duration_s=0.5, seed=3, guidance_scale=1.0)
    compiled.generate_codes(no_cfg)
    decoder_batches.add(1)
    graphs = counters["stats"]["unique_graphs"] - before
    assert graphs <= len(decoder_batches), f"{graphs} graphs for decoder batches {sorted(decoder_batches)}"
    assert not counters["graph_break"], dict(counters["graph_break"])


@pytest.mark.slow
def test_compiled_decode_of_a_melody_model_folds_the_prefix_into_the_position(tiny_melody_model_dir,
                                                                               tmp_path_factory):
    from dataclasses import replace

    from inference.musicgen.engine import compile_step

    melody_source = resolve_model(str(tiny_melody_model_dir), tiny_dir=tmp_path_factory.mktemp("unused"))
    eager = load_engine(melody_source, device="cpu", warm_up=False, weights="fp32", kv_cache="fp32", attention="sdpa")
    compiled = load_engine(melody_source, device="cpu", warm_up=False, weights="fp32", kv_cache="fp32",
                           attention="sdpa")
    compiled.options = replace(compiled.options, compile=True, compile_backend="eager")
    compiled.static = compiled.step_fn = compile_step(compiled.options, compiled.device)
    for prompt in (SHORT, LONG):  # prefix lengths differ with the text
        request = GenerationRequest(prompt=prompt, duration_s=0.5, seed=3, temperature=0.0)
        assert torch.equal(compiled.generate_codes(request), eager.generate_codes(request))


def test_compile_refuses_what_it_cannot_capture(tiny_model_dir):
    with pytest.raises(ValueError, match="CUDA"):
        build(tiny_model_dir, weights="fp32", compile=True)  # inductor + CUDA graphs on the CPU
    with pytest.raises(ValueError, match="bitsandbytes"):
        build(tiny_model_dir, weights="bnb-int8", compile=True, compile_backend="eager")
    with pytest.raises(ValueError, match="compile_backend"):
        build(tiny_model_dir, weights="fp32", compile=True, compile_backend="cudagraphs-please")


# ---- host syncs --------------------------------------------------------------------------------------------------

def refuse_device_tensors(monkeypatch):
    """Inside the decode loop, torch.tensor / as_tensor with a device raise: on CUDA that is a blocking
    host-to-device copy every step. (Here the device is the CPU, so any explicit device counts.)"""
    for name in ("tensor", "as_tensor"):
        real = getattr(torch, name)

        def guarded(*args, _real=real, _name=name, **kwargs):
            if kwargs.get("device") is not None:
                raise AssertionError(f"torch.{_name}(..., device={kwargs['device']}) inside the decode step")
            return _real(*args, **kwargs)

        monkeypatch.setattr(torch, name, guarded)


@pytest.mark.parametrize("static", [False, True], ids=["eager-step", "static-step"])
def test_no_host_data_goes_to_the_device_per_step(engine, monkeypatch, static):
    """The compiled path's loop (decode_n_tokens) and the batch scheduler's step (the eager path, where the
    rows' positions go to the device once per change of rows, then move on the device)."""
    real_loop, real_step = inference.musicgen.decode.decode_n_tokens, inference.musicgen.batching.BatchScheduler.step
    guarded_steps = []

    def loop(*args, **kwargs):
        with pytest.MonkeyPatch.context() as inner:
            refuse_device_tensors(inner)
            return real_loop(*args, **kwargs)

    def step(scheduler):
        guarded_steps.append(scheduler.row_positions is not None)
        if scheduler.row_positions is None:  # the first step after the rows changed: the one copy
            return real_step(scheduler)
        with pytest.MonkeyPatch.context() as inner:
            refuse_device_tensors(inner)
            return real_step(scheduler)

    monkeypatch.setattr(inference.musicgen.decode, "decode_n_tokens", loop)
    monkeypatch.setattr(inference.musicgen.batching.BatchScheduler, "step", step)
    if static:
        static_step = inference.musicgen.decode.StaticStep(lambda function: function, engine.device)
        monkeypatch.setattr(engine, "static", static_step)
        monkeypatch.setattr(engine, "step_fn", engine.static)
    for preset in PRESETS:
        codes = engine.generate_codes(GenerationRequest(prompt=SHORT, duration_s=0.5, seed=1, **preset), [1, 2])
        assert codes.shape == (2, 4, 25)
    if not static:
        assert sum(guarded_steps) >= len(PRESETS) * 20, "the scheduler's steps ran unguarded"
    engine.release_caches()  # the compiled path's own caches: the module's engine goes on uncompiled


# ---- bitsandbytes ------------------------------------------------------------------------------------------------

needs_bnb = pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None,
                               reason="bitsandbytes is not installed (pip install bitsandbytes)")


@needs_bnb
def test_bnb_kv_cache_auto_is_fp16_on_cuda(source, monkeypatch):
    """kv_cache auto under bnb on CUDA is the fp16 cache its fp16 activations need, not fp32 cast every step."""
    from inference.runtime.quantize import WeightMode, activation_dtype

    assert activation_dtype(WeightMode.BNB_INT8, torch.device("cuda")) == torch.float16
    assert activation_dtype(WeightMode.BNB_NF4, torch.device("cuda:1")) == torch.float16
    bnb_engine = load_engine(source, device="cpu", warm_up=False, weights="bnb-int8", kv_cache="auto")
    real = inference.musicgen.engine.build_cache_factory

    def on_the_cpu(mode, **kwargs):
        return real(mode, **(kwargs | {"device": "cpu"}))

    monkeypatch.setattr(inference.musicgen.engine, "build_cache_factory", on_the_cpu)
    monkeypatch.setattr(bnb_engine, "device", torch.device("cuda"))  # the engine as it would be on a GPU
    bnb_engine.ensure_caches(2, 256)
    args = bnb_engine.args
    fp16_bytes = args.n_layer * 2 * (2 * args.n_head * 256 * args.head_dim) * 2
    assert bnb_engine.cache_bytes() == fp16_bytes


@needs_bnb
def test_bnb_is_quantized_layer_by_layer_and_keeps_the_heads(source, monkeypatch):
    """No module holding an unquantized linear (but the heads) moves to the device, no bnb layer
    random-initialises weights first, LLM.int8 has no outlier pass, and the heads stay plain linears."""
    vocab = json.loads((source.path / "config.json").read_text())["decoder"]["vocab_size"]
    moved: list[str] = []
    initialised: list[torch.device] = []
    real_to, real_init = torch.nn.Module.to, torch.nn.init.kaiming_uniform_

    def to(self, *args, **kwargs):
        device = torch._C._nn._parse_to(*args, **kwargs)[0]
        if device is not None and type(self).__module__ == "inference.musicgen.model":  # the decoder and its parts
            moved.extend(type(self).__name__ for m in self.modules()
                         if type(m) is torch.nn.Linear and m.out_features != vocab)
        return real_to(self, *args, **kwargs)

    def kaiming(tensor, *args, **kwargs):
        initialised.append(tensor.device)
        return real_init(tensor, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "to", to)
    monkeypatch.setattr(torch.nn.init, "kaiming_uniform_", kaiming)
    bnb_engine = load_engine(source, device="cpu", warm_up=False, weights="bnb-int8")
    monkeypatch.undo()
    assert not moved, f"moved to the device with unquantized linears inside: {moved[:4]}"
    assert all(device.type == "meta" for device in initialised), initialised[:4]
    kinds = {type(module).__name__ for module in bnb_engine.decoder.layers.modules()}
    assert "Linear8bitLt" in kinds and "Linear" not in kinds
    assert all(type(head) is torch.nn.Linear for head in bnb_engine.decoder.heads)
    assert all(m.state.threshold == 0.0 for m in bnb_engine.decoder.modules() if type(m).__name__ == "Linear8bitLt")


# ---- out of memory -----------------------------------------------------------------------------------------------

def oom(*_args, **_kwargs):
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected)")


def assert_out_of_memory(info) -> None:
    assert info.value.code == "out_of_memory"
    assert "fewer bars" in str(info.value) and "int8" in str(info.value)


def short(seed=1):
    return GenerationRequest(prompt=SHORT, duration_s=0.3, seed=seed)


def test_oom_in_cache_setup_leaves_the_engine_usable(engine, monkeypatch):
    engine.generate(short())  # caches for batch 2 (CFG)
    real = inference.musicgen.engine.build_cache_factory

    def failing(mode, **kwargs):
        factory = real(mode, **kwargs)
        return lambda index: oom() if index == 1 else factory(index)  # layer 0 gets its new cache first

    monkeypatch.setattr(inference.musicgen.engine, "build_cache_factory", failing)
    with pytest.raises(OutOfMemory) as info:
        engine.generate_batch(short(), [1, 2])  # batch 4: new caches
    assert_out_of_memory(info)
    monkeypatch.undo()
    out = engine.generate(short())  # batch 2 again: must not find layer 0 sized for batch 4
    assert np.isfinite(out.audio).all()


def test_oom_in_the_codec_decode_is_out_of_memory(engine, monkeypatch):
    monkeypatch.setattr(engine, "codec_decode", oom)
    with pytest.raises(OutOfMemory) as info:
        engine.generate(short())
    assert_out_of_memory(info)
    monkeypatch.undo()
    assert np.isfinite(engine.generate(short()).audio).all()


@pytest.mark.parametrize("message", [
    "CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`",
    "CUDA error: out of memory",  # flash-attn, raw kernels
    "cuDNN error: CUDNN_STATUS_ALLOC_FAILED",
])
def test_library_oom_runtime_errors_are_out_of_memory(engine, monkeypatch, message):
    def failing(*_args, **_kwargs):
        raise RuntimeError(message)

    monkeypatch.setattr(engine, "decode", failing)
    with pytest.raises(OutOfMemory) as info:
        engine.generate(short())
    assert_out_of_memory(info)


def test_memory_is_released_after_the_failed_frames_let_go(engine, monkeypatch):
    """empty_cache must run once the tensors of the frames that ran out are gone, not while the traceback
    still holds them."""
    held: list[weakref.ref] = []
    alive_at_empty_cache: list[bool] = []

    def failing(*_args, **_kwargs):
        activations = torch.ones(1024)
        held.append(weakref.ref(activations))
        raise torch.OutOfMemoryError("CUDA out of memory (injected)")

    monkeypatch.setattr(engine, "decode", failing)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: alive_at_empty_cache.append(held[0]() is not None))
    with pytest.raises(OutOfMemory):
        engine.generate(short())
    assert alive_at_empty_cache == [False]


@pytest.mark.slow
def test_oom_in_stems_is_out_of_memory_and_the_next_separation_works(monkeypatch):
    from inference.stems.separator import SeparatorConfig, load_separator

    separator = load_separator(SeparatorConfig(weights="random", size="low", segment_s=1.0, overlap_s=0.1))
    mix = np.random.default_rng(0).standard_normal((2, 22050)).astype(np.float32) * 0.1
    monkeypatch.setattr(separator.model, "forward", oom)
    with pytest.raises(OutOfMemory) as info:
        separator.separate(mix, 44100)
    assert info.value.code == "out_of_memory" and "stems_model_size" in str(info.value)
    monkeypatch.undo()
    stems = separator.separate(mix, 44100)
    assert set(stems) == {"drums", "bass", "other", "vocals"}


# ---- caches follow the request ------------------------------------------------------------------------------------

def test_caches_shrink_back_and_go_before_new_ones_come(engine, monkeypatch):
    engine.generate_batch(GenerationRequest(prompt=SHORT, duration_s=6.0, seed=1), [1, 2, 3])
    big = engine.cache_bytes()
    still_held: list[int] = []
    real = inference.musicgen.engine.build_cache_factory

    def spy(mode, **kwargs):
        factory = real(mode, **kwargs)

        def make(index):
            still_held.append(sum(layer.attention.kv_cache is not None for layer in engine.decoder.layers))
            return factory(index)

        return make

    monkeypatch.setattr(inference.musicgen.engine, "build_cache_factory", spy)
    engine.generate(short())
    args = engine.args
    assert engine.scheduler.cache_shape == (2, 256)
    assert engine.cache_bytes() == args.n_layer * 2 * (2 * args.n_head * 256 * args.head_dim) * 4 < big / 3
    assert still_held and still_held[0] == 0, "the old caches were still held while new ones were allocated"
    monkeypatch.undo()
    engine.generate(GenerationRequest(prompt=SHORT, duration_s=6.0, seed=1))  # same batch, 512 positions
    assert engine.scheduler.cache_shape == (2, 512)
    engine.generate(short())
    assert engine.scheduler.cache_shape == (2, 256), "a short request after a long one shrinks the caches again"


# ---- device choice ---------------------------------------------------------------------------------------------------

class FakeGpus:
    """torch.cuda as two GPUs: index 0 too old for the installed kernels, index 1 an H100 with `free` bytes."""

    def __init__(self, monkeypatch, free=60 * 2**30, capabilities=((3, 5), (9, 0))):
        self.queried: list[int] = []
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: len(capabilities))
        monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
        monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: ["sm_75", "sm_80", "sm_86", "sm_90", "compute_90"])
        monkeypatch.setattr(torch.cuda, "mem_get_info", lambda index=None: (free, 80 * 2**30))

        def capability(index=None):
            self.queried.append(index)
            return capabilities[index or 0]

        monkeypatch.setattr(torch.cuda, "get_device_capability", capability)


def test_auto_device_skips_unsupported_and_full_gpus(monkeypatch, caplog):
    from inference.runtime.device import arch_supported, pick_device

    FakeGpus(monkeypatch)
    assert pick_device("auto") == torch.device("cuda:1")  # cuda:0 is sm_35: no kernels in this torch
    assert "compute capability 3.5" in caplog.text
    FakeGpus(monkeypatch, free=512 * 2**20)
    assert pick_device("auto") == torch.device("cpu")
    assert "GiB free" in caplog.text
    assert arch_supported(8, 9, ["sm_80"]) and not arch_supported(8, 0, ["sm_86"])
    assert arch_supported(10, 0, ["sm_90", "compute_90"]) and not arch_supported(10, 0, ["sm_90"])


def test_flash_attn_check_reads_the_gpu_the_model_runs_on(monkeypatch):
    import importlib.util
    import sys
    import types

    from inference.runtime.device import check_flash_attn

    gpus = FakeGpus(monkeypatch, capabilities=((7, 5), (9, 0)))
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "flash_attn"
                        else real_find_spec(name, *a))
    monkeypatch.setitem(sys.modules, "flash_attn", types.SimpleNamespace(__version__="2.8.0"))
    assert check_flash_attn(torch.device("cuda:1")).usable
    assert gpus.queried[-1] == 1
    assert not check_flash_attn(torch.device("cuda:0")).usable  # Turing: no flash-attn 2


def test_bf16_needs_a_gpu_that_has_it(monkeypatch):
    from inference.runtime.quantize import WeightMode, resolve_weight_mode

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    with pytest.raises(ValueError, match="fp16"):
        resolve_weight_mode(WeightMode.BF16, torch.device("cuda"))
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_weight_mode(WeightMode.BF16, torch.device("cuda")) == WeightMode.BF16


def teardown_module():
    gc.collect()


# ---- the same on a real GPU (run by `continuo bench gpu`'s tests step) ----------------------------------------------

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("compile", [False, True], ids=["eager", "cuda-graphs"])
def test_cuda_decode_loop_never_syncs(source, monkeypatch, compile):
    """torch's sync debug mode raises on any host sync inside the decode loop (CUDA graphs: after capture)."""
    cuda = load_engine(source, device="cuda", warm_up=False, weights="fp16", attention="sdpa", compile=compile)
    request = GenerationRequest(prompt=SHORT, duration_s=0.5, seed=1)
    cuda.generate_codes(request)  # compile and capture first
    real_loop = inference.musicgen.decode.decode_n_tokens

    def loop(*args, **kwargs):
        torch.cuda.set_sync_debug_mode("error")
        try:
            return real_loop(*args, **kwargs)
        finally:
            torch.cuda.set_sync_debug_mode("default")

    monkeypatch.setattr(inference.musicgen.decode, "decode_n_tokens", loop)
    assert cuda.generate_codes(request).shape == (1, 4, 25)


@pytest.mark.gpu
@needs_cuda
def test_cuda_graphs_are_one_per_batch_size(source):
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    cuda = load_engine(source, device="cuda", warm_up=False, weights="fp16", attention="sdpa", compile=True)
    before = counters["stats"]["unique_graphs"]
    for prompt in (SHORT, LONG):
        for preset in PRESETS:
            cuda.generate_codes(GenerationRequest(prompt=prompt, duration_s=0.5, seed=3, **preset))
    assert counters["stats"]["unique_graphs"] - before == 1
    assert not counters["inductor"].get("cudagraph_skips"), dict(counters["inductor"])
