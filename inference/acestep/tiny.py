"""A tiny random ACE-Step 1.5 pipeline built in code, saved in diffusers' own on-disk format.

Every component of `diffusers.AceStepPipeline` is there (Qwen3 text encoder, its tokenizer, the condition
encoder, the DiT, the Oobleck VAE, the flow-matching scheduler, and the optional audio tokenizer and detokenizer
that the cover task needs), so `AceStepPipeline.from_pretrained(DIR)`
loads it and `continuo serve --model DIR` serves it. The rates are the real ones (48 kHz stereo, a VAE hop of
1920 samples: 25 latent frames per second, 64-dim latents in the real model); only widths and depths are tiny.
The weights are random: the pipeline produces noise, never music, and it says so (SMOKE_MARKER).

`AceStepShape.from_name` also holds the real 1.5 turbo shapes, for benchmarks on random weights.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from inference.smoke import SMOKE_MARKER, write_marker

TINY_NAME = "tiny-random-ace-step (SMOKE: noise, not music)"
FAMILY = "ace-step"  # what its marker says built it (family.py:NAME)
TINY_FILES = frozenset({  # what a build writes: a folder holding only these is an earlier (partial) build
    "model_index.json", "scheduler", "tokenizer", "text_encoder", "condition_encoder", "transformer", "vae",
    "audio_tokenizer", "audio_token_detokenizer", SMOKE_MARKER,
})
SAMPLE_RATE = 48_000
DOWNSAMPLING_RATIOS = (2, 4, 4, 6, 10)  # 1920 samples per latent frame -> 25 Hz, as ACE-Step 1.5's VAE
ENDOFTEXT = "<|endoftext|>"  # the pipeline's prompt templates end with it; Qwen3 pads with it


@dataclass(frozen=True)
class AceStepShape:
    """Widths and depths of the DiT, the condition encoder, the text encoder and the VAE."""

    hidden: int = 32
    intermediate: int = 64
    layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    head_dim: int = 8
    latent_dim: int = 8  # the VAE's latent channels (audio_acoustic_hidden_dim, timbre_hidden_dim)
    sliding_window: int = 16
    condition_hidden: int = 32
    lyric_layers: int = 2
    timbre_layers: int = 2
    text_hidden: int = 32
    text_intermediate: int = 64
    text_layers: int = 2
    text_heads: int = 4
    text_kv_heads: int = 2
    text_head_dim: int = 8
    text_vocab: int = 0  # 0: the byte-level tokenizer's own size
    vae_encoder_hidden: int = 16  # twice latent_dim: the encoder emits mean and scale
    vae_decoder_channels: int = 4
    vae_multiples: tuple[int, ...] = (1, 1, 1, 2, 2)
    is_turbo: bool = True

    @classmethod
    def from_name(cls, name: str) -> AceStepShape:
        if name not in SHAPES:
            raise ValueError(f"unknown ACE-Step shape {name!r}; known: {', '.join(SHAPES)}")
        return SHAPES[name]


SHAPES: dict[str, AceStepShape] = {
    "tiny": AceStepShape(),
    # ACE-Step 1.5 turbo (2B DiT): diffusers' defaults for AceStepTransformer1DModel / AceStepConditionEncoder,
    # Qwen3-Embedding-0.6B as the text encoder, the 48 kHz Oobleck VAE with 64 latent channels.
    "acestep-v15-turbo": AceStepShape(
        hidden=2048, intermediate=6144, layers=24, heads=16, kv_heads=8, head_dim=128, latent_dim=64,
        sliding_window=128, condition_hidden=2048, lyric_layers=8, timbre_layers=4, text_hidden=1024,
        text_intermediate=3072, text_layers=28, text_heads=16, text_kv_heads=8, text_head_dim=128,
        text_vocab=151_669, vae_encoder_hidden=128, vae_decoder_channels=128, vae_multiples=(1, 2, 4, 8, 16),
    ),
}


def build_tokenizer():
    """A byte-level BPE tokenizer without merges: every UTF-8 byte is a token, so any lyric in any language
    tokenizes (about one token per byte), and <|endoftext|> is the special and pad token as in Qwen3."""
    from tokenizers import Tokenizer, decoders, pre_tokenizers
    from tokenizers.models import BPE
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {symbol: index for index, symbol in enumerate(sorted(alphabet))}
    backend = Tokenizer(BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, model_max_length=4096)
    tokenizer.add_special_tokens({"eos_token": ENDOFTEXT, "pad_token": ENDOFTEXT})
    return tokenizer


def build_components(shape: AceStepShape, *, vocab_size: int) -> dict:
    """The pipeline's modules at `shape`, randomly initialised (seed them before calling)."""
    from diffusers import AutoencoderOobleck, FlowMatchEulerDiscreteScheduler
    from diffusers.models.transformers.ace_step_transformer import AceStepTransformer1DModel
    from diffusers.pipelines.ace_step import AceStepConditionEncoder
    from transformers import Qwen3Config, Qwen3Model

    transformer = AceStepTransformer1DModel(
        hidden_size=shape.hidden, intermediate_size=shape.intermediate, num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads, num_key_value_heads=shape.kv_heads, head_dim=shape.head_dim,
        in_channels=3 * shape.latent_dim, audio_acoustic_hidden_dim=shape.latent_dim, patch_size=2,
        sliding_window=shape.sliding_window, encoder_hidden_size=shape.condition_hidden,
        is_turbo=shape.is_turbo, model_version="turbo" if shape.is_turbo else None,
    )
    text_encoder = Qwen3Model(Qwen3Config(
        hidden_size=shape.text_hidden, intermediate_size=shape.text_intermediate,
        num_hidden_layers=shape.text_layers, num_attention_heads=shape.text_heads,
        num_key_value_heads=shape.text_kv_heads, head_dim=shape.text_head_dim, vocab_size=vocab_size,
        max_position_embeddings=8192,
    ))
    condition_encoder = AceStepConditionEncoder(
        hidden_size=shape.condition_hidden, intermediate_size=shape.intermediate, text_hidden_dim=shape.text_hidden,
        timbre_hidden_dim=shape.latent_dim, num_lyric_encoder_hidden_layers=shape.lyric_layers,
        num_timbre_encoder_hidden_layers=shape.timbre_layers, num_attention_heads=shape.heads,
        num_key_value_heads=shape.kv_heads, head_dim=shape.head_dim, sliding_window=shape.sliding_window,
    )
    vae = AutoencoderOobleck(
        encoder_hidden_size=shape.vae_encoder_hidden, downsampling_ratios=list(DOWNSAMPLING_RATIOS),
        channel_multiples=list(shape.vae_multiples), decoder_channels=shape.vae_decoder_channels,
        decoder_input_channels=shape.latent_dim, audio_channels=2, sampling_rate=SAMPLE_RATE,
    )
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1, shift=1.0)
    return {"transformer": transformer, "text_encoder": text_encoder, "condition_encoder": condition_encoder,
            "vae": vae, "scheduler": scheduler}


def build_pipeline(shape: AceStepShape = AceStepShape(), *, seed: int = 0):
    """An AceStepPipeline of random weights at `shape`, in memory."""
    from diffusers import AceStepPipeline

    tokenizer = build_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        components = build_components(shape, vocab_size=shape.text_vocab or len(tokenizer))
        components["condition_encoder"].silence_latent.normal_(0.0, 0.5)  # a random model has no real silence
        components.update(build_audio_tokenizers(shape))  # after the rest, so their weights stay as they were
    return AceStepPipeline(tokenizer=tokenizer, **components)


def build_audio_tokenizers(shape: AceStepShape) -> dict:
    """The 25 Hz -> 5 Hz audio tokenizer and its detokenizer (the pipeline's optional components, which its
    cover task needs), randomly initialised at `shape`."""
    from diffusers import AceStepAudioTokenDetokenizer, AceStepAudioTokenizer

    common = dict(hidden_size=shape.condition_hidden, intermediate_size=shape.intermediate,
                  audio_acoustic_hidden_dim=shape.latent_dim, num_attention_heads=shape.heads,
                  num_key_value_heads=shape.kv_heads, head_dim=shape.head_dim, sliding_window=shape.sliding_window)
    return {"audio_tokenizer": AceStepAudioTokenizer(fsq_dim=shape.condition_hidden, **common),
            "audio_token_detokenizer": AceStepAudioTokenDetokenizer(**common)}


def build_tiny_acestep(out_dir: Path, *, seed: int = 0) -> Path:
    """Write a tiny random ACE-Step pipeline (every component, the tokenizer too) and its smoke marker."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / SMOKE_MARKER).unlink(missing_ok=True)  # the marker is written last
    shape = SHAPES["tiny"]
    pipeline = build_pipeline(shape, seed=seed)
    pipeline.save_pretrained(out_dir, safe_serialization=True)
    write_marker(out_dir, name=TINY_NAME, family=FAMILY, seed=seed, shape=asdict(shape))
    return out_dir


def build_tiny_lora(pipeline_dir: Path, out_dir: Path, *, rank: int = 4, seed: int = 0, scale: float = 0.5,
                    shape_offset: int = 0) -> Path:
    """Write a random LoRA (rank `rank`, on every linear layer of the transformer in pipeline_dir) in diffusers'
    LoRA format (AceStepPipeline.save_lora_weights: out_dir/pytorch_lora_weights.safetensors). Noise, not a
    style: it exists to prove that an adapter loads, changes the output and unloads. shape_offset > 0 makes
    every B matrix that many rows too tall: an adapter for another model, which must fail to load."""
    from diffusers import AceStepPipeline, AceStepTransformer1DModel

    transformer = AceStepTransformer1DModel.from_pretrained(Path(pipeline_dir) / "transformer")
    generator = torch.Generator().manual_seed(seed)
    layers = {}
    for name, module in transformer.named_modules():
        if isinstance(module, torch.nn.Linear):
            layers[f"{name}.lora_A.weight"] = torch.randn(rank, module.in_features, generator=generator) * scale
            layers[f"{name}.lora_B.weight"] = torch.randn(module.out_features + shape_offset, rank,
                                                          generator=generator) * scale
    AceStepPipeline.save_lora_weights(out_dir, transformer_lora_layers=layers)
    return Path(out_dir)
