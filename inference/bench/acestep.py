"""The ACE-Step engine benchmark: diffusers' own AceStepPipeline call against our AceStepEngine, in one run.

Random weights of the real 1.5 turbo shapes (inference.acestep.tiny.SHAPES), built once and shared: the direct
pipeline call runs first on the fp32 pipeline; then the DiT's linears are converted in place
(inference.acestep.dit_linears, mode auto: each fp32 weight freed as its replacement lands) and our engine runs on
the same pipeline object, so the process never holds two DiTs. Each path renders the same request twice (a warm-up of
WARM_UP_S, then the measured one); per phase (text + lyric encoding, DiT sampling, VAE decode) it reports the
seconds and the peak memory: CUDA max_memory_allocated, or on the CPU the kernel's resident high-water mark
(VmHWM, reset at each phase boundary through /proc/self/clear_refs).

Memory: fp32 weights of the whole pipeline are 11 GiB, more than a shared machine should lend a benchmark. The
phase-1 encoders (Qwen3 text encoder, lyric and timbre encoders) run once per call, at tokens x weights that are
compute-bound, so in the full-shape build their layers share one layer's weights (`share_layer_weights_`; same
arithmetic, same shapes). The text encoder's 151669-row embedding table is filled only in the rows the byte-level
tokenizer can emit (the rest is never touched, so never resident). The report adds what both leave out
(`absent_gib`) to each measured peak for the estimate of a whole model (`peak_gib_whole_model`). The DiT and
the VAE are whole. The byte-level tokenizer makes about one token
per byte of the prompt template (Qwen3's BPE makes about a quarter of that), so text encoding and the
cross-attention read more text tokens than the real model would: the same for both paths.
"""

from __future__ import annotations

import gc
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from inference.api import GenerationRequest

log = logging.getLogger("continuo.inference")

PROMPT = "warm lo-fi piano with soft drums"
PHASES = ("encoding", "sampling", "decoding")
WARM_UP_S = 1.0
STEPS = 8
GIB = 2**30


@dataclass(frozen=True)
class AceStepBenchPlan:
    shape: str = "acestep-v15-turbo"
    duration_s: float = 10.0
    share_encoder_layers: bool = True  # phase-1 encoders share one layer's weights (see the module docstring)
    share_dit_layers: bool = False  # the DiT's layers too (`continuo bench train`: its fp32 DiT would not fit)
    dit_mode: str = "auto"  # our path's DiT linears (inference.acestep.dit_linears)
    seed: int = 0

    @classmethod
    def for_run(cls, quick: bool, duration_s: float | None = None) -> AceStepBenchPlan:
        """The real run (1.5 turbo shapes, 10 s); quick: the tiny shape, 2 s, int8 forced (auto would keep its
        small linears fp32), to smoke-test the plumbing, not to measure anything."""
        if quick:
            return cls(shape="tiny", duration_s=duration_s or 2.0, share_encoder_layers=False, dit_mode="int8")
        return cls(duration_s=duration_s or 10.0)


# ---- random weights, fast ---------------------------------------------------------------------------------------

def share_layer_weights_(layers: nn.ModuleList) -> None:
    """Every layer's linear weights become layer 0's (same shapes, same arithmetic; memory of one layer)."""
    first = [module for module in layers[0].modules() if isinstance(module, nn.Linear)]
    for layer in layers[1:]:
        for source, target in zip(first, [m for m in layer.modules() if isinstance(m, nn.Linear)], strict=True):
            target.weight = source.weight
            if target.bias is not None:
                target.bias = source.bias


def build_random_pipeline(plan: AceStepBenchPlan):
    """An fp32 AceStepPipeline of random weights at plan.shape (no audio tokenizers: text2music needs none)."""
    from diffusers import AceStepPipeline

    from inference.acestep.tiny import AceStepShape, build_components, build_tokenizer
    from inference.bench.random_weights import fill_layers_, uninitialised_layers

    shape = AceStepShape.from_name(plan.shape)
    tokenizer = build_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(plan.seed)
        with uninitialised_layers():
            components = build_components(shape, vocab_size=shape.text_vocab or len(tokenizer))
        if plan.share_encoder_layers:
            encoder = components["condition_encoder"]
            for layers in (components["text_encoder"].layers, encoder.lyric_encoder.layers,
                           encoder.timbre_encoder.layers):
                share_layer_weights_(layers)
        if plan.share_dit_layers:
            share_layer_weights_(components["transformer"].layers)
        for index, name in enumerate(("transformer", "text_encoder", "condition_encoder")):
            fill_layers_(components[name], seed=plan.seed + index, rows=len(tokenizer))
        components["condition_encoder"].silence_latent.normal_(0.0, 0.5)
    pipeline = AceStepPipeline(tokenizer=tokenizer, **components)
    for module in (pipeline.transformer, pipeline.text_encoder, pipeline.condition_encoder, pipeline.vae):
        module.eval().requires_grad_(False)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def absent_bytes(modules, rows: int) -> int:
    """Weight bytes that are not resident: storages shared between layers, embedding rows past `rows`."""
    full, unique = weight_bytes(modules)
    untouched = sum(max(layer.num_embeddings - rows, 0) * layer.embedding_dim * layer.weight.element_size()
                    for module in modules for layer in module.modules() if isinstance(layer, nn.Embedding))
    return full - unique + untouched


def weight_bytes(modules) -> tuple[int, int]:
    """(bytes of every parameter and buffer counted once per use, bytes of the distinct storages behind them)."""
    full, seen, unique = 0, set(), 0
    for module in modules:
        for _, tensor in [*module.named_parameters(remove_duplicate=False), *module.named_buffers()]:
            size = tensor.numel() * tensor.element_size()
            full += size
            if tensor.untyped_storage().data_ptr() not in seen:
                seen.add(tensor.untyped_storage().data_ptr())
                unique += size
    return full, unique


# ---- phases -----------------------------------------------------------------------------------------------------

def read_hwm_bytes() -> int | None:
    from inference.runtime.memory import proc_status_bytes

    return proc_status_bytes("VmHWM")  # None off Linux: the phases' peaks are then not measured


def reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


class PhaseMeter:
    """Seconds and peak memory per phase of one call; `mark(phase)` closes the running phase and opens the next.

    The pipeline's modules tell it where it is: the transformer's first forward opens sampling, vae.decode opens
    decoding (`attach`), the same hooks for both paths."""

    def __init__(self, device: torch.device):
        self.device = device
        self.seconds: dict[str, float] = {}
        self.peak_bytes: dict[str, int | None] = {}
        self.steps = 0
        self.phase: str | None = None
        self.started = 0.0

    def reset_peak(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            reset_hwm()

    def read_peak(self) -> int | None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            return int(torch.cuda.max_memory_allocated(self.device))
        return read_hwm_bytes()

    def mark(self, phase: str | None) -> None:
        now = time.perf_counter()
        if self.phase is not None:
            self.seconds[self.phase] = now - self.started
            self.peak_bytes[self.phase] = self.read_peak()
        self.phase, self.started = phase, time.perf_counter()
        if phase is not None:
            self.reset_peak()

    def on_transformer(self, module, args) -> None:
        self.steps += 1
        if self.phase == "encoding":
            self.mark("sampling")

    def attach(self, pipeline) -> Callable[[], None]:
        """Hooks on pipeline for this meter; returns what removes them."""
        handle = pipeline.transformer.register_forward_pre_hook(self.on_transformer)
        decode = pipeline.vae.decode

        def metered_decode(*args, **kwargs):
            self.mark("decoding")
            return decode(*args, **kwargs)

        pipeline.vae.decode = metered_decode

        def detach() -> None:
            handle.remove()
            del pipeline.vae.decode  # the class's method again

        return detach


def metered(pipeline, device: torch.device, run: Callable[[], object]) -> PhaseMeter:
    gc.collect()
    meter = PhaseMeter(device)
    detach = meter.attach(pipeline)
    try:
        meter.mark("encoding")
        run()
        meter.mark(None)
    finally:
        detach()
    return meter


def phase_report(path: str, meter: PhaseMeter, plan: AceStepBenchPlan, absent: int, extra: dict) -> dict:
    wall_s = sum(meter.seconds.values())
    sampling_s = meter.seconds.get("sampling", 0.0)
    peaks = {phase: None if meter.peak_bytes.get(phase) is None else round(meter.peak_bytes[phase] / GIB, 2)
             for phase in PHASES}
    report = {
        "suite": "engine", "family": "ace-step", "path": path, "shape": plan.shape, "device": str(meter.device),
        "audio_s": plan.duration_s, "steps": meter.steps, "s_per_step": round(sampling_s / max(meter.steps, 1), 3),
        "phase_s": {phase: round(meter.seconds.get(phase, 0.0), 2) for phase in PHASES},
        "wall_s": round(wall_s, 2), "rtf": round(wall_s / plan.duration_s, 3),
        "peak_gib": peaks, "memory": "cuda max_memory_allocated" if meter.device.type == "cuda" else "VmHWM (RSS)",
    }
    if absent and meter.device.type != "cuda":
        report["peak_gib_whole_model"] = {phase: None if value is None else round(value + absent / GIB, 2)
                                          for phase, value in peaks.items()}
    report.update(extra)
    report.update(threads=torch.get_num_threads(), load_1min=round(os.getloadavg()[0], 2))
    return report


# ---- the two paths ----------------------------------------------------------------------------------------------

def run_direct(pipeline, arguments: dict) -> None:
    """diffusers' own call, as a user of AceStepPipeline would make it (audio out, as numpy)."""
    pipeline(**arguments, output_type="np")


def run_acestep_suite(*, quick: bool, duration_s: float | None = None, device: str = "auto",
                      emit=print) -> list[dict]:
    from inference.acestep.dit_linears import resolve_dit_mode
    from inference.acestep.engine import TURBO_STEPS, AceStepEngine
    from inference.acestep.family import describe_pipeline
    from inference.runtime.device import pick_device
    from inference.runtime.memory import trim_heap

    plan = AceStepBenchPlan.for_run(quick, duration_s)
    target = pick_device(device)
    started = time.perf_counter()
    pipeline = build_random_pipeline(plan)
    components = (pipeline.transformer, pipeline.text_encoder, pipeline.condition_encoder, pipeline.vae)
    full, _ = weight_bytes(components)
    log.info("built random %s (%.2f GiB of weights, %.2f GiB of them shared or untouched) in %.1f s", plan.shape,
             full / GIB, absent_bytes(components, len(pipeline.tokenizer)) / GIB, time.perf_counter() - started)
    if target.type == "cuda":
        pipeline = pipeline.to(target, torch.bfloat16)
    info = describe_pipeline(pipeline, name=f"random {plan.shape}", source_kind="random", is_random=True,
                             device=str(target))
    engine = AceStepEngine(pipeline, info, steps=TURBO_STEPS)
    request = GenerationRequest(prompt=PROMPT, duration_s=plan.duration_s, seed=plan.seed, instrumental=True)
    warm = GenerationRequest(prompt=PROMPT, duration_s=WARM_UP_S, seed=plan.seed, instrumental=True)
    absent = absent_bytes(components, len(pipeline.tokenizer))  # the conversion below touches the DiT only
    common = dict(weights_gib=round(full / GIB, 2), absent_gib=round(absent / GIB, 2))

    run_direct(pipeline, engine.pipeline_arguments(warm))
    meter = metered(pipeline, target, lambda: run_direct(pipeline, engine.pipeline_arguments(request)))
    results = [phase_report("diffusers AceStepPipeline.__call__", meter, plan, absent,
                            common | {"dit_linears": "fp32 (diffusers' own)"})]
    emit(results[-1])

    converted = time.perf_counter()
    linear_plan = engine.convert_linears(resolve_dit_mode(plan.dit_mode, target))
    trim_heap()
    convert_s = time.perf_counter() - converted
    engine.generate(warm)
    meter = metered(pipeline, target, lambda: engine.generate(request))
    results.append(phase_report("ours AceStepEngine", meter, plan, absent,
                                common | {"dit_linears": linear_plan.summary(),
                                          "dit_linear_choices": linear_plan.choices,
                                          "dit_linear_errors": linear_plan.errors,
                                          "dit_linear_ms": linear_plan.timings_ms,
                                          "dit_end_to_end": linear_plan.end_to_end,
                                          "convert_s": round(convert_s, 1)}))
    emit(results[-1])
    reference, ours = results
    comparison = {"suite": "engine", "family": "ace-step", "compare": "ours vs diffusers", "shape": plan.shape,
                  "audio_s": plan.duration_s, "speedup_wall": round(reference["wall_s"] / ours["wall_s"], 2),
                  "speedup_step": round(reference["s_per_step"] / max(ours["s_per_step"], 1e-9), 2),
                  "target_speedup": 1.5, "load_1min": round(os.getloadavg()[0], 2)}
    comparison["meets_target"] = comparison["speedup_wall"] >= comparison["target_speedup"]
    emit(comparison)
    results.append(comparison)
    return results
