"""What a MusicGen checkpoint's config says about the model: rate, channels, frame rate, window, melody.

One description for every engine; each engine adds what its decode loop can do (its capabilities).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from inference.api import Capability, ModelInfo

TRAINED_WINDOW_S = 30.0  # MusicGen is trained on 30 s excerpts
MELODY_TEXT_ALLOWANCE = 64  # text tokens a melody model's window is sized for (longer prompts are refused per request)


def describe_model(config, *, name: str, source_kind: str, is_random: bool, device: str, parameters: int,
                   capabilities: Iterable[Capability], max_output_s: float = 0.0,
                   modes: dict | None = None) -> ModelInfo:
    """ModelInfo from a Musicgen(Melody)Config; a melody checkpoint adds Capability.MELODY to `capabilities`.

    The window is the trained 30 s, or less where the decoder's positions (less the delay pattern's tail and,
    for a melody model, its conditioning prefix) run out first.
    """
    codec, decoder = config.audio_encoder, config.decoder
    frame_rate = codec.sampling_rate / hop_length(config)
    delay_frames = decoder.num_codebooks // decoder.audio_channels  # bos + delay pattern tail
    melody = is_melody_config(config)
    prefix = config.chroma_length + MELODY_TEXT_ALLOWANCE if melody else 0  # positions the conditioning takes
    position_limit_s = (decoder.max_position_embeddings - delay_frames - prefix) / frame_rate
    return ModelInfo(
        name=name, source_kind=source_kind, sample_rate=int(codec.sampling_rate), channels=int(decoder.audio_channels),
        frame_rate=frame_rate, max_duration_s=min(TRAINED_WINDOW_S, position_limit_s), is_random=is_random,
        device=device, parameters=parameters, max_output_s=max_output_s,
        capabilities=frozenset(capabilities) | ({Capability.MELODY} if melody else set()), modes=modes or {},
    )


def hop_length(config) -> int:
    """Audio samples per codec frame."""
    return int(np.prod(config.audio_encoder.upsampling_ratios))


def is_melody_config(config) -> bool:
    return getattr(config, "model_type", "") == "musicgen_melody"
