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
  MSE), t uniform in (0, 1), t and noise drawn from a generator seeded by (seed, step, place in the batch), so a
  step's draw depends on its index alone.
- **Saved**: `AceStepPipeline.save_lora_weights(dir, transformer_lora_layers=...)`:
  dir/pytorch_lora_weights.safetensors, which the request's `lora` setting loads as it loads a downloaded adapter.
- **Captions**: ACE-Step is conditioned on tags and lyrics; a clip's caption (the musician's words, tempo and key
  heard) goes in as the tags (the prompt), and no lyrics: every clip is "[Instrumental]", as a render with
  `instrumental` asks. So an adapter learns the sound, never words; a vocal style from lyrics is not built.
- **Loop** (inference/runtime/lora_training.py, shared with MusicGen): epochs over the clips in shuffled batches;
  a batch's loss is the mean of its clips' losses, each clip's gradient taken on its own (clips differ in length
  and caption: no padding, one clip's activations in memory at a time); a clip's t and noise come from a generator
  seeded by (seed, step, its place in the batch). Progress, cancel, `between_steps`, checkpoints (LoRA, AdamW,
  losses, RNG stream and a hash of the clips' audio, captions and options) and a bit-identical resume are the
  loop's.
- **The job** (`load_style_model`): what bridge/jobs/style_training.py drives, as for MusicGen: the pipeline at
  fp32 (a second copy beside the served one), the clips cut at its 48 kHz stereo, the adapter and card.json written
  into a new folder.

Base weights (inference/runtime/lora_training.py:training_base_weights): QLoRA on CUDA where bitsandbytes has its
kernels (the DiT's linears nf4, swapped on the CPU before the move), else fp32 (or bf16 autocast, by name); the
text encoder, condition encoder and VAE stay fp32 (they run once per clip, under no_grad).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from inference.errors import InferenceError
from inference.runtime.lora_training import (
    FP32_BASE,
    BaseWeights,
    LoraTrainingLoop,
    LoraTrainingOptions,
    StyleModel,
    TrainingResult,
    count_weights,
    data_hash,
    quantize_base_,
    training_base_weights,
)

TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
INSTRUMENTAL = "[Instrumental]"
FORMAT = "diffusers AceStepPipeline LoRA (transformer)"
DEFAULT_CLIP_S = 30.0  # a clip's length when the job is not told: the window can be minutes; a step's cost grows
# with it (and attention's quadratically)
CONDITIONING = "the clip's caption as ACE-Step's tags (prompt); no lyrics: [Instrumental]"


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


class AceStepLoraTrainer(LoraTrainingLoop):
    """peft's LoRA (through diffusers' add_adapter) on a pipeline's DiT, which it changes; clips are (audio (C, T) at
    the pipeline's rate, caption). The loop, checkpoints and resume are inference/runtime/lora_training.py's."""

    def __init__(self, pipeline, clips: Sequence[tuple[np.ndarray, str]], options: LoraTrainingOptions,
                 work_dir: Path, base_weights: BaseWeights = FP32_BASE):
        from peft import LoraConfig

        if not clips:
            raise InferenceError("no clips to train on")
        self.pipeline, self.options = pipeline, options
        self.work_dir = Path(work_dir)
        self.module = transformer = pipeline.transformer
        self.device = transformer.device
        self.base_weights = base_weights
        self.data_hash = data_hash(((caption, np.ascontiguousarray(audio, dtype=np.float32).tobytes())
                                    for audio, caption in clips), options)
        self.clips = []
        with torch.inference_mode(False):  # the daemon's compute thread is in inference mode: these feed autograd
            for audio, caption in clips:
                latents = clip_latents(pipeline, audio)
                states, context = conditioning(pipeline, caption, latents.shape[1])
                self.clips.append(AceStepClip(latents, states, context))
            transformer.requires_grad_(False)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(options.seed)
                transformer.add_adapter(LoraConfig(r=options.rank, lora_alpha=options.alpha, target_modules=TARGETS,
                                                   init_lora_weights=True))
        self.start_optimizer()

    def loss(self, clip: AceStepClip, draw: int) -> torch.Tensor:
        """Flow-matching MSE of one clip at draw's t and noise."""
        generator = torch.Generator().manual_seed(self.options.seed * 1_000_003 + draw)
        x0 = clip.latents
        t = torch.rand((1,), generator=generator).clamp(1e-3, 1 - 1e-3).to(x0)
        noise = torch.randn(x0.shape, generator=generator).to(x0)
        xt = (1 - t[:, None, None]) * x0 + t[:, None, None] * noise
        predicted = self.pipeline.transformer(hidden_states=xt, timestep=t, timestep_r=t,
                                              encoder_hidden_states=clip.states, context_latents=clip.context,
                                              return_dict=False)[0]
        return F.mse_loss(predicted.float(), (noise - x0).float())

    def backward(self, indices: list[int], step: int) -> torch.Tensor:
        """The batch's mean loss, each clip's gradient taken on its own (module docstring)."""
        total = torch.zeros(())
        for place, index in enumerate(indices):
            loss = self.loss(self.clips[index], step * 65_536 + place) / len(indices)
            loss.backward()
            total += loss.detach().cpu()
        return total

    @torch.no_grad()
    def mean_loss(self, draws: int = 8) -> float:
        """The loss over every clip at `draws` fixed draws each (the same draws before and after training)."""
        self.pipeline.transformer.eval()
        return float(np.mean([float(self.loss(clip, -1 - draw)) for clip in self.clips for draw in range(draws)]))

    def adapter(self) -> dict[str, torch.Tensor]:
        """The LoRA tensors in peft's names, as diffusers saves them."""
        from peft.utils import get_peft_model_state_dict

        return {name: tensor.detach().cpu().clone()
                for name, tensor in get_peft_model_state_dict(self.pipeline.transformer).items()}

    def save(self, directory: Path) -> Path:
        """directory/pytorch_lora_weights.safetensors in diffusers' format (AceStepPipeline.save_lora_weights)."""
        return save_adapter(Path(directory), self.adapter())


def save_adapter(directory: Path, layers: dict[str, torch.Tensor]) -> Path:
    from diffusers import AceStepPipeline

    AceStepPipeline.save_lora_weights(Path(directory), transformer_lora_layers=layers)
    return Path(directory)


def write_adapter_dir(directory: Path, result: TrainingResult, card: dict) -> Path:
    """directory (made new: never over another adapter, FileExistsError) with the weights, then card.json last."""
    from inference.adapters import write_card

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=False)
    save_adapter(directory, result.lora)
    return write_card(directory, card)


def load_training_pipeline(checkpoint: Path, device: str = "cpu", base_weights: str = "auto"):
    """checkpoint's AceStepPipeline at fp32 on device, with autograd available (not the served, converted one), its
    DiT's linears nf4 where the base weights are QLoRA's; (pipeline, BaseWeights)."""
    from diffusers import AceStepPipeline

    from inference.runtime.device import pick_device

    target = pick_device(device)
    base = training_base_weights(target, base_weights)
    with torch.inference_mode(False):
        pipeline = AceStepPipeline.from_pretrained(Path(checkpoint), dtype=torch.float32, local_files_only=True)
        quantize_base_(pipeline.transformer, base, target)  # on the CPU, each linear quantized on its way there
        pipeline.to(target)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline, base


def load_style_model(checkpoint: Path, device: str = "cpu", base_weights: str = "auto") -> StyleModel:
    """checkpoint's pipeline as the style-training job takes it (inference/runtime/lora_training.py)."""
    from inference.runtime.plans import checkpoint_fingerprint

    pipeline, base = load_training_pipeline(checkpoint, device, base_weights)
    vae = pipeline.vae.config
    window_s = pipeline.condition_encoder.silence_latent.shape[1] / pipeline.latents_per_second
    return StyleModel(family="ace-step", format=FORMAT, sample_rate=int(vae.sampling_rate),
                      channels=int(vae.audio_channels), window_s=min(window_s, DEFAULT_CLIP_S),
                      fingerprint=checkpoint_fingerprint(Path(checkpoint)),
                      parameters=count_weights(pipeline.transformer),
                      device=pipeline.transformer.device, options_type=LoraTrainingOptions,
                      make_trainer=lambda clips, options, work_dir: AceStepLoraTrainer(pipeline, clips, options,
                                                                                     work_dir, base),
                      write=write_adapter_dir, conditioning=CONDITIONING, base_weights=base)
