"""A tiny random MusicGen checkpoint built in code, for smoke runs and CPU tests.

The architecture and the rates are the real ones (T5 text encoder, a MusicGen
decoder over 4 delayed codebooks, EnCodec at 32 kHz with a hop of 640 samples,
so 50 frames per second); only the widths and depths are tiny. The weights are
random: the model produces noise, never music.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from inference.smoke import SMOKE_MARKER, write_marker

TINY_NAME = "tiny-random-musicgen (SMOKE: noise, not music)"
TINY_FILES = frozenset({  # what a build writes: a folder holding only these is an earlier (partial) build
    "config.json", "generation_config.json", "model.safetensors", "processor_config.json",
    "preprocessor_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", SMOKE_MARKER,
})

SAMPLE_RATE = 32_000
UPSAMPLING_RATIOS = (8, 5, 4, 4)  # hop 640 samples -> 50 frames/s
CODEBOOK_SIZE = 2048
BANDWIDTH_KBPS = 2.2  # 4 quantizers of 11 bits at 50 Hz, as in facebook/musicgen-*
SPECIAL_TOKENS = ("<pad>", "</s>", "<unk>")  # ids 0, 1, 2 as in T5

# Words a prompt for a DAW is likely to contain; each becomes one whole-word piece.
CORPUS = """
ambient analog arpeggio bass bassline beat bells bpm bright brass break breakbeat
calm cello chill chord chords choir clap classical cinematic dark deep disco drum
drums dub dubstep electric electronic energetic epic fast funk funky groove guitar
happy hard hat hihat hip hop house jazz keys kick lead lofi loop major mellow melody
minor modular orchestra organ pad pads percussion piano pluck punchy rhythm rock
sad saxophone slow snare soft soul strings synth synthwave techno tempo trance
trumpet upbeat vinyl violin vocal warm with and a the of in for
""".split()


@dataclass(frozen=True)
class TinyShape:
    """Widths and depths of the tiny model; rates stay those of MusicGen."""

    text_d_model: int = 24
    text_d_ff: int = 48
    text_layers: int = 2
    text_heads: int = 4
    decoder_hidden: int = 32
    decoder_ffn: int = 64
    decoder_layers: int = 2
    decoder_heads: int = 4
    max_positions: int = 2048
    codec_hidden: int = 16
    codec_filters: int = 4


def build_tiny_musicgen(out_dir: Path, *, seed: int = 0, channels: int = 1, melody: bool = False,
                        shape: TinyShape | None = None, edit: Callable | None = None) -> Path:
    """Build a tiny random MusicGen (or MusicGen-melody) checkpoint and processor in out_dir; return out_dir.

    shape: other widths (the quality harness's head size 64: inference/bench/quality.py); edit(model): a change to
    the transformers model before it is saved (the harness programs its decoder's weights there)."""
    if channels not in (1, 2):
        raise ValueError(f"channels must be 1 (mono) or 2 (stereo), got {channels}")
    from transformers import (
        MusicgenForConditionalGeneration,
        MusicgenMelodyForConditionalGeneration,
        MusicgenMelodyProcessor,
        MusicgenProcessor,
    )

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / SMOKE_MARKER).unlink(missing_ok=True)  # the marker is written last
    shape = shape or TinyShape()
    tokenizer = build_tokenizer()
    config = build_config(shape, vocab_size=len(tokenizer), channels=channels, melody=melody)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = (MusicgenMelodyForConditionalGeneration if melody else MusicgenForConditionalGeneration)(config).eval()
        calibrate_codebooks_(model)
        if melody:
            amplify_chroma_(model)
        if edit is not None:
            edit(model)
    model.generation_config = build_generation_config(config)
    model.save_pretrained(out_dir, safe_serialization=True)
    if melody:
        processor = MusicgenMelodyProcessor(feature_extractor=build_chroma_extractor(), tokenizer=tokenizer)
    else:
        processor = MusicgenProcessor(feature_extractor=build_feature_extractor(channels), tokenizer=tokenizer)
    processor.save_pretrained(out_dir)
    write_marker(out_dir, name=TINY_NAME, seed=seed, channels=channels, melody=melody, shape=asdict(shape))
    return out_dir


def calibrate_codebooks_(model) -> None:
    """Fill EnCodec's codebooks (zeros at init) from the encoder's own output statistics.

    Zero codebooks decode every code to the same sound; codebooks of the wrong
    scale map every input to one code. Drawing each residual codebook from the
    mean and spread of what the encoder emits on noise and sines gives a codec
    whose codes depend on the input and whose decoded audio depends on the codes.
    """
    codec = model.audio_encoder
    seconds = torch.arange(SAMPLE_RATE) / SAMPLE_RATE
    tones = ((110, 0.5), (440, 0.2), (1760, 0.05))  # (hz, amplitude)
    sines = [amplitude * torch.sin(2 * torch.pi * hz * seconds) for hz, amplitude in tones]
    noise = [amplitude * torch.randn(SAMPLE_RATE) for amplitude in (0.3, 0.03)]
    audio = torch.stack(sines + noise)[:, None, :]  # (B, 1, T)
    with torch.no_grad():
        embeddings = codec.encoder(audio)  # (B, D, frames)
        residual = embeddings.transpose(1, 2).reshape(-1, embeddings.shape[1])
        for layer in codec.quantizer.layers:
            codebook = layer.codebook
            mean, spread = residual.mean(dim=0), residual.std(dim=0)
            codebook.embed.copy_(mean + spread * torch.randn_like(codebook.embed))
            codebook.embed_avg.copy_(codebook.embed)
            codebook.cluster_size.fill_(1.0)
            residual = residual - codebook.decode(codebook.encode(residual))


def amplify_chroma_(model, gain: float = 50.0) -> None:
    """Scale the chroma projection so the tune visibly steers the tiny model.

    At init (std 0.02) a one-hot chroma frame projects to a vector far smaller than
    the text states, and the melody changes under 1 % of greedy codes; tests that a
    melody is followed need it to matter, as it does in a trained checkpoint.
    """
    with torch.no_grad():
        model.audio_enc_to_dec_proj.weight.mul_(gain)


def build_tokenizer():
    """A T5-style Unigram tokenizer over CORPUS: <pad>=0, </s>=1, <unk>=2, then whole lowercase words.

    Every sequence ends with </s> as in T5; a word outside CORPUS becomes one <unk>.
    """
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram
    from transformers import PreTrainedTokenizerFast

    pieces = [(token, 0.0) for token in SPECIAL_TOKENS]
    pieces += [("\u2581" + word, -1.0) for word in sorted(set(CORPUS))]
    backend = Tokenizer(Unigram(pieces, unk_id=SPECIAL_TOKENS.index("<unk>"), byte_fallback=False))
    backend.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")]
    )
    backend.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    backend.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", model_max_length=512
    )


def build_config(shape: TinyShape, *, vocab_size: int, channels: int, melody: bool = False):
    from transformers import (
        EncodecConfig,
        MusicgenConfig,
        MusicgenDecoderConfig,
        MusicgenMelodyConfig,
        MusicgenMelodyDecoderConfig,
        T5Config,
    )

    text = T5Config(
        vocab_size=vocab_size,
        d_model=shape.text_d_model,
        d_kv=shape.text_d_model // shape.text_heads,
        d_ff=shape.text_d_ff,
        num_layers=shape.text_layers,
        num_heads=shape.text_heads,
        feed_forward_proj="relu",
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    codec = EncodecConfig(
        sampling_rate=SAMPLE_RATE,
        audio_channels=1,  # stereo MusicGen encodes each channel on its own
        upsampling_ratios=list(UPSAMPLING_RATIOS),
        target_bandwidths=[BANDWIDTH_KBPS],
        codebook_size=CODEBOOK_SIZE,
        hidden_size=shape.codec_hidden,
        num_filters=shape.codec_filters,
        num_lstm_layers=1,
        use_causal_conv=False,
        use_conv_shortcut=False,
        normalize=False,
        norm_type="weight_norm",
    )
    codebooks = codec.num_quantizers * channels
    decoder = (MusicgenMelodyDecoderConfig if melody else MusicgenDecoderConfig)(
        vocab_size=CODEBOOK_SIZE,
        max_position_embeddings=shape.max_positions,
        num_hidden_layers=shape.decoder_layers,
        ffn_dim=shape.decoder_ffn,
        num_attention_heads=shape.decoder_heads,
        hidden_size=shape.decoder_hidden,
        num_codebooks=codebooks,
        audio_channels=channels,
        pad_token_id=CODEBOOK_SIZE,
        bos_token_id=CODEBOOK_SIZE,
    )
    if melody:  # chroma conditioning: 12 bins, 235 frames (30 s at 32 kHz / 4096), as the real checkpoints
        return MusicgenMelodyConfig(text_encoder=text, audio_encoder=codec, decoder=decoder, num_chroma=12,
                                    chroma_length=235)
    return MusicgenConfig(text_encoder=text, audio_encoder=codec, decoder=decoder)


def build_generation_config(config):
    from transformers import GenerationConfig

    token = config.decoder.pad_token_id
    return GenerationConfig(
        do_sample=True,
        guidance_scale=3.0,
        top_k=250,
        max_length=1500,
        pad_token_id=token,
        bos_token_id=token,
        decoder_start_token_id=token,
    )


def build_feature_extractor(channels: int):
    from transformers import EncodecFeatureExtractor

    return EncodecFeatureExtractor(feature_size=channels, sampling_rate=SAMPLE_RATE, padding_value=0.0)


def build_chroma_extractor():
    """The melody checkpoints' chroma feature extractor at MusicGen's rate (12 bins, 4096-sample hop)."""
    from transformers import MusicgenMelodyFeatureExtractor

    return MusicgenMelodyFeatureExtractor(sampling_rate=SAMPLE_RATE)
