"""`continuo bench train`: LoRA training steps/s and peak memory for a real MusicGen shape, ours against a plain peft
loop, and the hours 10 minutes of audio would take here.

Both sides train rank-8 LoRA (alpha 16, AdamW) on the attention projections, on the same random codes and text
states (random weights of the shape, inference/bench/random_weights.py: noise, the speed is what is measured):
- **ours**: our decoder (inference/musicgen/model.py, fused qkv) with peft injected, the loss of
  inference/musicgen/training.py:pattern_loss, as `continuo train-style` runs it;
- **plain peft**: transformers' MusicgenForCausalLM of the same shape, `peft.get_peft_model` on q/k/v/out_proj of
  self- and cross-attention, its own `labels` loss: the loop a peft tutorial would write.
Both sides are built and warmed up (one step each), then their steps alternate `steps` times (A B A B ...: a change
in the shared machine's load falls on both alike) at batch 1 over `clip_s` of codes; steps/s is one over the median
step. Each side's memory is the peak resident set its build and warm-up step added (/proc clear_refs), over what
the process held before it. The estimate for 10 minutes of audio (20 clips of 30 s, `continuo train-style`'s
default 4 epochs of batch 2: 40 steps of 2 x 1500 frames; and per 1000 such steps, what a longer fine-tune takes)
scales the measured step by frames (the linears dominate at these lengths; attention's quadratic part is not
scaled up, so it is a lower bound). ACE-Step's turbo shape is not measured: its training is not built.
"""

from __future__ import annotations

import os
import statistics
import time

import torch

SHAPE = "musicgen-small"
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
    times = {"ours": [], "plain": []}
    for _ in range(steps):  # alternated: a change in the machine's load falls on both sides alike
        for name, step in (("ours", ours), ("plain", plain)):
            started = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - started)
    common["load_1min_after"] = round(os.getloadavg()[0], 2)
    rate = {name: 1.0 / statistics.median(values) for name, values in times.items()}
    ours_row = {"side": "ours", "steps_per_s": round(rate["ours"], 4), "peak_added_mb": round(ours_mb),
                "trainable": ours.trainable, "weights": ours.weights,
                "vs_plain_peft": round(rate["ours"] / rate["plain"], 2)} | common
    plain_row = {"side": "plain peft (transformers' MusicgenForCausalLM)", "steps_per_s": round(rate["plain"], 4),
                 "peak_added_mb": round(plain_mb), "trainable": plain.trainable} | common
    scale = TEN_MINUTES_FRAMES_PER_STEP / frames
    estimate = {"side": "estimate: 10 min of audio here (ours)", "steps": TEN_MINUTES_STEPS,
                "seconds_per_step": round(scale / rate["ours"], 1),
                "hours": round(TEN_MINUTES_STEPS * scale / rate["ours"] / 3600, 2),
                "hours_per_1000_steps": round(1000 * scale / rate["ours"] / 3600, 1),
                "note": "measured step scaled by frames (linear; a lower bound); a GPU figure is on paper until a "
                        "device is lent"} | common
    return [ours_row, plain_row, estimate]
