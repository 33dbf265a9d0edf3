"""Training an ACE-Step 1.5 LoRA (a musician's style) with diffusers' and peft's LoRA tooling, written in the
diffusers format the engine's `lora` path loads (inference/acestep/engine.py:AceStepEngine.adapter_applied).

- **Model**: the pipeline's own DiT (AceStepTransformer1DModel) with peft's LoRA added through diffusers
  (`transformer.add_adapter(LoraConfig)`, rank 8, alpha 16) on the attention projections (`TARGETS`: to_q, to_k,
  to_v, to_out.0 of self- and cross-attention); every other weight frozen. Text encoder, condition encoder and VAE
  are the pipeline's, frozen.
- **Data**: each clip (C, T) at the pipeline's rate becomes VAE latents (B, L, D) (the posterior's mode: no noise
  in the data); the condition is text2music's, built as the pipeline builds it (`conditioning`: the caption and
  "[Instrumental]" through encode_prompt and the condition encoder with the silence timbre reference, the
  context latents of silence and a generate-everything chunk mask).
- **Loss**: flow matching as the pipeline samples (x_t = (1 - t) x_0 + t noise, the DiT predicts v = noise - x_0;
  MSE), t uniform in (0, 1), t and noise drawn from a generator seeded by (seed, step), so a step's draw depends
  on its index alone.
- **Saved**: `AceStepPipeline.save_lora_weights(dir, transformer_lora_layers=...)`:
  dir/pytorch_lora_weights.safetensors, which the request's `lora` setting loads as it loads a downloaded adapter.

Built for the tiny pipeline's tests and the CPU; not wired into `continuo train-style` or the daemon's job (which
refuse ACE-Step models with "not built yet"); no checkpoint/resume, no QLoRA.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from inference.adapters import LoraHyperparameters

TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
INSTRUMENTAL = "[Instrumental]"


@dataclass(frozen=True)
class AceStepTrainingOptions(LoraHyperparameters):
    steps: int = 100  # one clip per step, in turn


def clip_latents(pipeline, audio: np.ndarray) -> torch.Tensor:
    """(C, T) float32 at the pipeline's rate -> latents (1, L, D): the VAE posterior's mode."""
    waveform = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None]
    with torch.no_grad():
        posterior = pipeline.vae.encode(waveform.to(pipeline.vae.device)).latent_dist
    return posterior.mode().transpose(1, 2).contiguous()


def conditioning(pipeline, caption: str, latent_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(encoder_hidden_states, context_latents) of text2music for one caption, as the pipeline builds them."""
    device, dtype = pipeline.transformer.device, pipeline.transformer.dtype
    with torch.no_grad():
        instruction = pipeline._get_task_instruction(task_type="text2music", track_name=None,
                                                     complete_track_classes=None)
        text, text_mask, lyric, lyric_mask = pipeline.encode_prompt(
            prompt=caption, lyrics=INSTRUMENTAL, device=device, vocal_language="en",
            audio_duration=latent_length / pipeline.latents_per_second, instruction=instruction)
        frames = math.ceil(30 * pipeline.latents_per_second)
        reference = pipeline.condition_encoder.silence_latent[:, :frames, :].to(device=device, dtype=dtype)
        states, _ = pipeline.condition_encoder(
            text_hidden_states=text, text_attention_mask=text_mask, lyric_hidden_states=lyric,
            lyric_attention_mask=lyric_mask, refer_audio_acoustic_hidden_states_packed=reference,
            refer_audio_order_mask=torch.arange(1, device=device, dtype=torch.long))
        source, length = pipeline.prepare_src_latents(device=device, dtype=dtype, batch_size=1,
                                                      latent_length=latent_length)
        mask = pipeline._build_chunk_mask(task_type="text2music", latent_length=length, batch_size=1, device=device,
                                          dtype=dtype, acoustic_dim=source.shape[-1])
    return states, torch.cat([source, mask], dim=-1)


@dataclass
class AceStepClip:
    latents: torch.Tensor  # (1, L, D)
    states: torch.Tensor  # encoder hidden states
    context: torch.Tensor  # context latents


class AceStepLoraTrainer:
    """peft's LoRA (through diffusers' add_adapter) on a pipeline's DiT, which it changes."""

    def __init__(self, pipeline, clips: Sequence[tuple[np.ndarray, str]], options: AceStepTrainingOptions):
        from peft import LoraConfig

        self.pipeline, self.options = pipeline, options
        self.clips = []
        for audio, caption in clips:
            latents = clip_latents(pipeline, audio)
            states, context = conditioning(pipeline, caption, latents.shape[1])
            self.clips.append(AceStepClip(latents, states, context))
        transformer = pipeline.transformer
        transformer.requires_grad_(False)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(options.seed)
            transformer.add_adapter(LoraConfig(r=options.rank, lora_alpha=options.alpha, target_modules=TARGETS,
                                               init_lora_weights=True))
        self.parameters = [p for p in transformer.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.parameters, lr=options.learning_rate)
        self.step_index = 0

    def loss(self, clip: AceStepClip, step: int) -> torch.Tensor:
        """Flow-matching MSE of one clip at step's draw of t and noise."""
        generator = torch.Generator().manual_seed(self.options.seed * 1_000_003 + step)
        x0 = clip.latents
        t = torch.rand((1,), generator=generator).clamp(1e-3, 1 - 1e-3).to(x0)
        noise = torch.randn(x0.shape, generator=generator).to(x0)
        xt = (1 - t[:, None, None]) * x0 + t[:, None, None] * noise
        predicted = self.pipeline.transformer(hidden_states=xt, timestep=t, timestep_r=t,
                                              encoder_hidden_states=clip.states, context_latents=clip.context,
                                              return_dict=False)[0]
        return F.mse_loss(predicted.float(), (noise - x0).float())

    def train_step(self) -> float:
        self.pipeline.transformer.train()
        with torch.inference_mode(False), torch.enable_grad():
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.loss(self.clips[self.step_index % len(self.clips)], self.step_index)
            loss.backward()
            self.optimizer.step()
        self.step_index += 1
        return float(loss.detach())

    @torch.no_grad()
    def mean_loss(self, draws: int = 8) -> float:
        """The loss over every clip at `draws` fixed draws each (the same draws before and after training)."""
        self.pipeline.transformer.eval()
        return float(np.mean([float(self.loss(clip, 10_000 + draw)) for clip in self.clips for draw in range(draws)]))

    def run(self) -> list[float]:
        return [self.train_step() for _ in range(self.options.steps)]

    def save(self, directory: Path) -> Path:
        """directory/pytorch_lora_weights.safetensors in diffusers' format (AceStepPipeline.save_lora_weights)."""
        from diffusers import AceStepPipeline
        from peft.utils import get_peft_model_state_dict

        layers = get_peft_model_state_dict(self.pipeline.transformer)
        AceStepPipeline.save_lora_weights(Path(directory), transformer_lora_layers=layers)
        return Path(directory)
