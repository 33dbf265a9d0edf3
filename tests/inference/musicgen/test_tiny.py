"""The tiny smoke checkpoint: real MusicGen architecture and rates, tiny widths, random weights."""

from __future__ import annotations

import json

import pytest
from transformers import AutoProcessor, MusicgenForConditionalGeneration

from inference.musicgen.tiny import SMOKE_MARKER, build_tiny_musicgen


@pytest.fixture(scope="module")
def processor(tiny_model_dir):
    return AutoProcessor.from_pretrained(tiny_model_dir, local_files_only=True)


def test_marker_says_smoke(tiny_model_dir):
    marker = json.loads((tiny_model_dir / SMOKE_MARKER).read_text())
    assert marker["smoke"] is True
    assert "noise" in marker["warning"]


def test_checkpoint_is_small_safetensors(tiny_model_dir):
    assert (tiny_model_dir / "model.safetensors").is_file()
    total = sum(path.stat().st_size for path in tiny_model_dir.iterdir())
    assert total < 8 * 2**20


@pytest.mark.parametrize("channels", [1, 2])
def test_config_keeps_real_rates(tiny_model_dir, tiny_stereo_model_dir, channels):
    directory = tiny_model_dir if channels == 1 else tiny_stereo_model_dir
    model = MusicgenForConditionalGeneration.from_pretrained(directory, local_files_only=True)
    codec = model.config.audio_encoder
    assert codec.sampling_rate == 32_000
    assert codec.hop_length == 640
    assert codec.frame_rate == 50
    assert codec.num_quantizers == 4
    assert model.config.decoder.audio_channels == channels
    assert model.config.decoder.num_codebooks == 4 * channels
    assert model.config.text_encoder.model_type == "t5"


def test_same_seed_builds_identical_weights(tmp_path, tiny_model_dir):
    rebuilt = build_tiny_musicgen(tmp_path / "again", seed=0)
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert (rebuilt / name).read_bytes() == (tiny_model_dir / name).read_bytes()


def test_tokenizer_tells_prompts_apart(processor):
    piano = processor.tokenizer("warm piano chords").input_ids
    techno = processor.tokenizer("dark techno kick").input_ids
    assert piano != techno
    assert piano[-1] == techno[-1] == 1  # </s>, as in T5
    assert processor.tokenizer.pad_token_id == 0
    assert processor.tokenizer.unk_token_id == 2


def test_tokenizer_ignores_case(processor):
    assert processor.tokenizer("Dark TECHNO").input_ids == processor.tokenizer("dark techno").input_ids


def test_unknown_words_become_unk(processor):
    ids = processor.tokenizer("xylophone über piano").input_ids
    assert ids[:2] == [2, 2]
    assert ids[2] == processor.tokenizer("piano").input_ids[0]


def test_processor_pads_a_batch(processor):
    batch = processor(text=["a", "warm piano chords"], padding=True, return_tensors="pt")
    assert batch["input_ids"].shape == (2, 4)
    assert batch["attention_mask"][0].tolist() == [1, 1, 0, 0]
