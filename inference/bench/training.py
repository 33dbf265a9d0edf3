"""`continuo bench train`: LoRA training steps/s and peak memory for the real MusicGen and ACE-Step shapes, ours
against a plain peft loop in the same run, and the hours 10 minutes of audio would take here.

Both sides train rank-8 LoRA (alpha 16, AdamW) on the attention projections, on the same data (random weights of
the shape, inference/bench/random_weights.py: noise, the speed is what is measured).

**musicgen-small** (`run_train_bench`), on the same random codes and text states:
- **ours**: our decoder (inference/musicgen/model.py, fused qkv) with peft injected, the loss of
  inference/musicgen/training.py:pattern_loss, as `continuo train-style` runs it;
- **plain peft**: transformers' MusicgenForCausalLM of the same shape, `peft.get_peft_model` on q/k/v/out_proj of
  self- and cross-attention, its own `labels` loss: the loop a peft tutorial would write.
Each side's memory is the peak resident set its build and warm-up step added (/proc clear_refs), over what the
process held before it. The estimate for 10 minutes of audio (20 clips of 30 s, `continuo train-style`'s default
4 epochs of batch 2: 40 steps of 2 x 1500 frames; and per 1000 such steps) scales the measured step by frames.

**acestep-v15-turbo** (`run_acestep_train_bench`), on one clip of noise at 48 kHz stereo, its VAE latents and
text2music conditioning (ours computes them; the plain side takes the same tensors):
- **ours**: inference/acestep/training.py:AceStepLoraTrainer, as `continuo train-style` runs it (its shared loop's
  step: its own RNG stream, seeded t and noise, per-clip backward);
- **plain peft/diffusers**: a second adapter on the same DiT through diffusers' `add_adapter(LoraConfig)` (TARGETS),
  AdamW, and the flow-matching step a diffusers training script writes (torch.rand t, randn noise, MSE on v).
  The sides switch adapters with `set_adapter` before each step; they share the frozen DiT, so each side's memory
  is what its adapter, optimizer, clip and step add over the built pipeline.
Its fp32 weights would not fit beside other work on a shared 24 GiB machine (DiT 2B weights: 7.6 GiB; the
pipeline 11 GiB; a second DiT for the plain side as much again), so the full-shape build shares one layer's
weights across the DiT's 24 layers and across each encoder's layers (`AceStepBenchPlan.share_dit_layers`,
`share_encoder_layers`): the arithmetic, the activations and the optimizer's state are the whole model's, the
weights resident are one layer's. The rows say so (`shared_layers`) and add the weight bytes left out
(`absent_gib`) to the measured peak for a whole model's (`peak_whole_model_gib`). The 10-minute estimate is 40 steps
of 2 clips of 30 s (train-style's ACE-Step clips), the measured clip step scaled by frames.

Both benches: the sides are built and warmed up (one step each), then their steps alternate `steps` times (A B A
B ...: a change in the shared machine's load falls on both alike); steps/s is one over the median step. Scaling by
frames counts the linears (which dominate at these lengths), not attention's quadratic part: a lower bound.
"""

from __future__ import annotations

import os
import statistics
import time

import torch

SHAPE = "musicgen-small"
ACE_SHAPES = {"acestep-v15-turbo": "acestep-v15-turbo", "acestep-tiny": "tiny"}  # bench name -> AceStepShape's
ACE_TEN_MINUTES_CLIPS_PER_STEP = 2  # batch 2 of 30 s clips (inference/acestep/training.py:DEFAULT_CLIP_S)
GIB = 2**30
TEN_MINUTES_STEPS = 40  # 20 clips of 30 s, 4 epochs, batch 2
TEN_MINUTES_FRAMES_PER_STEP = 2 * 1500
TEXT_TOKENS = 12


def random_decoder(shape: str, seed: int = 0):
    """Our decoder of shape with random weights (fast fill)."""
    from inference.bench.random_weights import fill_layers_, uninitialised_layers
    from inference.musicgen.model import ModelArgs, MusicGenDecoder, sinusoids

    args = ModelArgs.from_name(shape)
    with uninitialised_layers():
        decoder = MusicGenDecoder(args)
    fill_layers_(decoder, seed=seed, rows=args.vocab_size + 1)
    decoder.positions = sinusoids(args.max_positions, args.dim)
    decoder.set_attention_backend("sdpa")
    return decoder


def random_hf_decoder(shape: str, seed: int = 0):
    """transformers' MusicgenForCausalLM of shape (the decoder, its LM heads), random weights (fast fill)."""
    from transformers import MusicgenDecoderConfig, MusicgenForCausalLM

    from inference.bench.random_weights import fill_layers_, uninitialised_layers
    from inference.musicgen.model import ModelArgs

    args = ModelArgs.from_name(shape)
    config = MusicgenDecoderConfig(vocab_size=args.vocab_size, max_position_embeddings=args.max_positions,
                                   num_hidden_layers=args.n_layer, ffn_dim=args.ffn_dim,
                                   num_attention_heads=args.n_head, hidden_size=args.dim,
                                   num_codebooks=args.num_codebooks, pad_token_id=args.pad_id,
                                   bos_token_id=args.pad_id, dropout=0.0, attention_dropout=0.0,
                                   activation_dropout=0.0, layerdrop=0.0)
    with uninitialised_layers():
        model = MusicgenForCausalLM(config)
    fill_layers_(model, seed=seed, rows=args.vocab_size + 1)
    return model


def side_memory_mb(build) -> tuple[object, float]:
    """(build(), the peak resident memory it added in MB: its weights, a warm-up step's activations and AdamW's
    state), measured from the resident set before it (/proc clear_refs resets the peak)."""
    from inference.bench.musicgen import peak_rss_mb, reset_peak_rss
    from inference.runtime.memory import resident_bytes

    before = (resident_bytes() or 0) / 2**20
    reset_peak_rss()
    step = build()
    step()  # warm-up: allocations, oneDNN's first calls
    return step, peak_rss_mb() - before


def ours_step(codes: torch.Tensor, states: torch.Tensor, shape: str):
    """One training step of ours (a callable), and its trainable / total weights."""
    from inference.musicgen.decode import build_delay_pattern
    from inference.musicgen.training import TrainingOptions, inject_lora_, pattern_loss

    decoder = random_decoder(shape)
    inject_lora_(decoder, TrainingOptions())
    trainable = [p for p in decoder.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-4)
    args = decoder.args
    pattern = build_delay_pattern(codes, codes.shape[-1], args.audio_channels, args.pad_id)
    mask = torch.ones(states.shape[:2], dtype=torch.long)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        pattern_loss(decoder, pattern, decoder.encode_memory(states, mask)).backward()
        optimizer.step()

    step.trainable = sum(p.numel() for p in trainable)
    step.weights = sum(p.numel() for p in decoder.parameters())
    return step


def plain_peft_step(codes: torch.Tensor, states: torch.Tensor, shape: str):
    """One training step of the plain peft loop over transformers' decoder (a callable)."""
    from peft import LoraConfig, get_peft_model

    from inference.musicgen.decode import build_delay_pattern

    model = random_hf_decoder(shape)
    config = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0,
                        target_modules=["q_proj", "k_proj", "v_proj", "out_proj"])
    model = get_peft_model(model, config)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-4)
    pad = model.config.pad_token_id
    pattern = build_delay_pattern(codes, codes.shape[-1], 1, pad)  # (B, K, L)
    inputs = pattern[:, :, :-1].reshape(-1, pattern.shape[-1] - 1)  # (B*K, L-1) as MusicgenForCausalLM takes
    labels = pattern[:, :, 1:].transpose(1, 2).clone()  # (B, L-1, K)
    labels[labels == pad] = -100

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        model(input_ids=inputs, encoder_hidden_states=states, labels=labels).loss.backward()
        optimizer.step()

    step.trainable = sum(p.numel() for p in trainable)
    return step


def run_train_bench(*, quick: bool = False, clip_s: float | None = None, steps: int | None = None,
                    shape: str = SHAPE) -> list[dict]:
    """One JSON-ready row per side and one for the estimate (module docstring)."""
    from inference.musicgen.model import ModelArgs

    clip_s = clip_s or (1.0 if quick else 4.0)
    steps = steps or (1 if quick else 3)
    args = ModelArgs.from_name(shape)
    frames = round(clip_s * 50)
    generator = torch.Generator().manual_seed(0)
    codes = torch.randint(0, args.vocab_size, (1, args.num_codebooks, frames), generator=generator)
    text_states = torch.randn((1, TEXT_TOKENS, args.text_dim), generator=generator) * 0.1  # T5's, ours projects
    projected = torch.randn((1, TEXT_TOKENS, args.dim), generator=generator) * 0.1  # what MusicgenForCausalLM takes
    common = {"shape": shape, "clip_s": clip_s, "batch": 1, "timed_steps": steps, "threads": torch.get_num_threads(),
              "load_1min_before": round(os.getloadavg()[0], 2)}
    ours, ours_mb = side_memory_mb(lambda: ours_step(codes, text_states, shape))
    plain, plain_mb = side_memory_mb(lambda: plain_peft_step(codes, projected, shape))
    rate = alternate({"ours": ours, "plain": plain}, steps)  # a change in the machine's load falls on both alike
    common["load_1min_after"] = round(os.getloadavg()[0], 2)
    ours_row = {"side": "ours", "steps_per_s": round(rate["ours"], 4), "peak_added_mb": round(ours_mb),
                "trainable": ours.trainable, "weights": ours.weights,
                "vs_plain_peft": round(rate["ours"] / rate["plain"], 2)} | common
    plain_row = {"side": "plain peft (transformers' MusicgenForCausalLM)", "steps_per_s": round(rate["plain"], 4),
                 "peak_added_mb": round(plain_mb), "trainable": plain.trainable} | common
    estimate = ten_minutes(TEN_MINUTES_FRAMES_PER_STEP / frames / rate["ours"], "measured step scaled by frames")
    return [ours_row, plain_row, estimate | common]


def ten_minutes(seconds_per_step: float, how: str) -> dict:
    """The estimate row for 10 minutes of audio here (TEN_MINUTES_STEPS steps of seconds_per_step)."""
    return {"side": "estimate: 10 min of audio here (ours)", "steps": TEN_MINUTES_STEPS,
            "seconds_per_step": round(seconds_per_step, 1),
            "hours": round(TEN_MINUTES_STEPS * seconds_per_step / 3600, 2),
            "hours_per_1000_steps": round(1000 * seconds_per_step / 3600, 1),
            "note": f"{how} (linear; a lower bound); a GPU figure is on paper until a device is lent"}


def alternate(sides: dict, steps: int) -> dict[str, float]:
    """{side: steps/s}: the sides' steps alternated `steps` times (module docstring), one over the median step."""
    times = {name: [] for name in sides}
    for _ in range(steps):
        for name, step in sides.items():
            started = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - started)
    return {name: 1.0 / statistics.median(values) for name, values in times.items()}


def run_acestep_train_bench(*, quick: bool = False, clip_s: float | None = None, steps: int | None = None,
                            shape: str = "acestep-v15-turbo") -> list[dict]:
    """ACE-Step's rows: ours, plain peft/diffusers, the estimate (module docstring). shape: a key of ACE_SHAPES."""
    import tempfile
    from pathlib import Path

    import numpy as np
    import torch.nn.functional as F
    from peft import LoraConfig

    from inference.acestep.training import DEFAULT_CLIP_S, TARGETS, AceStepLoraTrainer
    from inference.bench.acestep import AceStepBenchPlan, absent_bytes, build_random_pipeline
    from inference.runtime.lora_training import LoraTrainingOptions
    from inference.runtime.memory import resident_bytes

    clip_s = clip_s or (1.0 if quick else 10.0)
    steps = steps or (1 if quick else 3)
    full = ACE_SHAPES[shape] != "tiny"
    common = {"shape": shape, "clip_s": clip_s, "batch": 1, "timed_steps": steps, "threads": torch.get_num_threads(),
              "load_1min_before": round(os.getloadavg()[0], 2), "shared_layers": full}
    pipeline = build_random_pipeline(AceStepBenchPlan(shape=ACE_SHAPES[shape], share_encoder_layers=full,
                                                      share_dit_layers=full))
    modules = [pipeline.transformer, pipeline.text_encoder, pipeline.condition_encoder, pipeline.vae]
    absent = absent_bytes(modules, len(pipeline.tokenizer))
    base_gib = (resident_bytes() or 0) / GIB
    audio = (np.random.default_rng(0).standard_normal((2, round(clip_s * pipeline.sample_rate))) * 0.1).astype(
        np.float32)
    options = LoraTrainingOptions(rank=8, alpha=16.0, learning_rate=1e-4, epochs=1, batch_size=1,
                                  checkpoint_every=10**9)
    transformer = pipeline.transformer
    with tempfile.TemporaryDirectory() as work:
        def build_ours():
            trainer = AceStepLoraTrainer(pipeline, [(audio, "warm lo-fi piano with soft drums")], options,
                                         Path(work))

            def step() -> None:
                transformer.set_adapter("default")
                trainer.step_index = 0  # the one clip again
                trainer.train_step()

            step.trainer = trainer
            step.trainable = sum(p.numel() for p in trainer.parameters)
            return step

        ours, ours_mb = side_memory_mb(build_ours)
        clip = ours.trainer.clips[0]

        def build_plain():
            transformer.add_adapter(LoraConfig(r=8, lora_alpha=16, target_modules=TARGETS, init_lora_weights=True),
                                    adapter_name="plain")
            trainable = [p for name, p in transformer.named_parameters() if ".plain." in name]
            optimizer = torch.optim.AdamW(trainable, lr=1e-4)

            def step() -> None:
                transformer.set_adapter("plain")
                transformer.train()
                optimizer.zero_grad(set_to_none=True)
                x0 = clip.latents
                t = torch.rand((1,)).clamp(1e-3, 1 - 1e-3)
                noise = torch.randn_like(x0)
                xt = (1 - t[:, None, None]) * x0 + t[:, None, None] * noise
                predicted = transformer(hidden_states=xt, timestep=t, timestep_r=t,
                                        encoder_hidden_states=clip.states, context_latents=clip.context,
                                        return_dict=False)[0]
                F.mse_loss(predicted, noise - x0).backward()
                optimizer.step()

            step.trainable = sum(p.numel() for p in trainable)
            return step

        plain, plain_mb = side_memory_mb(build_plain)
        rate = alternate({"ours": ours, "plain": plain}, steps)
    common["load_1min_after"] = round(os.getloadavg()[0], 2)
    weights = sum(p.numel() for name, p in transformer.named_parameters(remove_duplicate=False)
                  if "lora_" not in name)  # each shared layer counted where it is used: the whole DiT's
    whole = {"base_resident_gib": round(base_gib, 2), "absent_gib": round(absent / GIB, 2)}
    ours_row = {"side": "ours", "steps_per_s": round(rate["ours"], 4), "peak_added_mb": round(ours_mb),
                "peak_whole_model_gib": round(base_gib + ours_mb / 1024 + absent / GIB, 1),
                "trainable": ours.trainable, "dit_weights": weights,
                "vs_plain_peft": round(rate["ours"] / rate["plain"], 2)} | whole | common
    plain_row = {"side": "plain peft/diffusers (add_adapter on the same DiT)", "steps_per_s": round(rate["plain"], 4),
                 "peak_added_mb": round(plain_mb), "trainable": plain.trainable} | common
    estimate = ten_minutes(ACE_TEN_MINUTES_CLIPS_PER_STEP * DEFAULT_CLIP_S / clip_s / rate["ours"],
                           "measured clip step scaled by frames to 2 clips of 30 s")
    return [ours_row, plain_row, estimate | common]
