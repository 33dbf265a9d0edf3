"""The ACE-Step family on its tiny random pipeline: the real loader, parity with a direct AceStepPipeline call,
progress and cancel between steps, lyrics limits, repaint, and capability refusals on both families."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch

from inference.acestep.engine import MAX_LYRIC_TOKENS, TURBO_STEPS, AceStepEngine
from inference.acestep.family import capabilities, problems
from inference.api import AudioEdit, Capability, Engine, GenerationRequest
from inference.errors import Cancelled, InferenceError
from inference.loading import checkpoint_problems, family, load_engine, resolve_model
from inference.smoke import read_marker

REQUEST = GenerationRequest(prompt="warm piano", duration_s=1.0, seed=7, lyrics="[verse]\nneon rain",
                            vocal_language="en", bpm=120.0, keyscale="C minor", timesignature="4")


@pytest.fixture(scope="module")
def engine(tiny_acestep_dir) -> AceStepEngine:
    source = resolve_model(str(tiny_acestep_dir), tiny_dir=tiny_acestep_dir.parent / "unused")
    return load_engine(source, warm_up=False)


def test_make_tiny_writes_every_component_and_a_smoke_marker(tiny_acestep_dir):
    index = json.loads((tiny_acestep_dir / "model_index.json").read_text())
    assert index["_class_name"] == "AceStepPipeline"
    for name in ("vae", "text_encoder", "tokenizer", "transformer", "condition_encoder", "scheduler",
                 "audio_tokenizer", "audio_token_detokenizer"):
        assert (tiny_acestep_dir / name).is_dir(), name
    marker = read_marker(tiny_acestep_dir)
    assert marker["smoke"] is True and "noise, not music" in marker["warning"] and marker["family"] == "ace-step"
    assert family(tiny_acestep_dir) == "ace-step" and checkpoint_problems(tiny_acestep_dir) == []


def test_a_broken_pipeline_is_named_not_loaded(tiny_acestep_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_acestep_dir, broken)
    shutil.rmtree(broken / "transformer")
    found = problems(broken)
    assert any("transformer" in problem for problem in found)
    with pytest.raises(InferenceError, match="transformer"):
        load_engine(resolve_model(str(broken), tiny_dir=tmp_path / "unused"), warm_up=False)


def test_the_loader_picks_the_family_from_the_config_and_declares_capabilities(engine):
    assert isinstance(engine, AceStepEngine) and isinstance(engine, Engine)
    info = engine.info
    assert (info.sample_rate, info.channels, info.frame_rate) == (48_000, 2, 25.0)
    assert info.is_random and "SMOKE" in info.name
    assert {Capability.LYRICS, Capability.REPAINT} <= info.capabilities
    assert {Capability.EXTRACT, Capability.ADD_LAYER, Capability.COVER} <= info.capabilities  # tokenizers: cover
    assert not info.supports(Capability.STREAMING)


def test_our_path_matches_a_direct_pipeline_call(engine, tiny_acestep_dir):
    from diffusers import AceStepPipeline

    direct = AceStepPipeline.from_pretrained(tiny_acestep_dir, local_files_only=True)
    direct.set_progress_bar_config(disable=True)
    call = dict(prompt="warm piano", lyrics="[verse]\nneon rain", vocal_language="en", audio_duration=1.0,
                num_inference_steps=8, bpm=120, keyscale="C minor", timesignature="4", guidance_scale=1.0)
    latents = direct(**call, generator=torch.Generator().manual_seed(7), output_type="latent").audios
    audio = direct(**call, generator=torch.Generator().manual_seed(7)).audios[0].numpy()
    ours_latents = engine.sample(REQUEST)
    torch.testing.assert_close(ours_latents, latents, rtol=1e-4, atol=1e-5)
    ours = engine.generate(REQUEST)
    assert ours.audio.shape == audio.shape and ours.seed == 7
    np.testing.assert_allclose(ours.audio, audio, rtol=1e-4, atol=1e-5)
    other = engine.generate(GenerationRequest(**{**REQUEST.__dict__, "seed": 8}))
    assert not np.allclose(other.audio, ours.audio)


def test_progress_per_step_and_cancel_between_steps(engine):
    seen = []
    engine.generate(REQUEST, on_progress=lambda fraction, stage: seen.append((stage, fraction)))
    assert ("generating", 1.0) in seen and seen[-1] == ("decoding", 1.0)
    steps = []

    def cancel_after_three() -> bool:
        steps.append(1)
        return len(steps) > 3

    with pytest.raises(Cancelled, match=f"of {TURBO_STEPS} steps"):
        engine.generate(REQUEST, should_cancel=cancel_after_three)
    assert len(steps) == 4  # before the start, then after steps 1, 2 and 3: the loop stopped there


def test_lyrics_longer_than_the_model_reads_are_refused_not_cut(engine):
    with pytest.raises(InferenceError, match="tokens long"):
        engine.generate(GenerationRequest(prompt="", duration_s=0.5, seed=0, lyrics="la " * MAX_LYRIC_TOKENS))
    with pytest.raises(InferenceError, match="contradict"):
        engine.generate(GenerationRequest(prompt="", duration_s=0.5, seed=0, lyrics="la", instrumental=True))


def test_repaint_returns_the_whole_clip(engine):
    clip = engine.generate(REQUEST).audio
    repainted = engine.generate(GenerationRequest(prompt="drums", duration_s=1.0, seed=3,
                                                  edit=AudioEdit("repaint", clip, start_s=0.25, end_s=0.75)))
    assert repainted.audio.shape == clip.shape
    with pytest.raises(InferenceError, match="repaint span"):
        engine.generate(GenerationRequest(prompt="", duration_s=1.0, seed=3,
                                          edit=AudioEdit("repaint", clip, start_s=0.8, end_s=0.2)))


def test_extract_is_the_pipelines_extract_of_that_track(engine, tiny_acestep_dir):
    from diffusers import AceStepPipeline

    clip = engine.generate(REQUEST).audio
    assert engine.info.supports(Capability.EXTRACT)
    request = GenerationRequest(prompt="", duration_s=1.0, seed=5, bpm=120.0, timesignature="4",
                                edit=AudioEdit("extract", clip, track="bass"))
    ours = engine.sample(request)
    direct = AceStepPipeline.from_pretrained(tiny_acestep_dir, local_files_only=True)
    direct.set_progress_bar_config(disable=True)
    torch.manual_seed(5)  # the pipeline samples the clip's VAE latents from the global RNG; ours seeds it too
    theirs = direct(prompt="", lyrics="", vocal_language="en", audio_duration=None, num_inference_steps=8,
                    bpm=120, timesignature="4", guidance_scale=1.0, task_type="extract", track_name="bass",
                    src_audio=torch.from_numpy(clip), generator=torch.Generator().manual_seed(5),
                    output_type="latent").audios
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(engine.sample(request), ours)  # same seed and clip: the same take, every call
    stem = engine.generate(request).audio
    assert stem.shape == clip.shape
    drums = engine.generate(GenerationRequest(**{**request.__dict__, "edit": AudioEdit("extract", clip,
                                                                                        track="drums")}))
    assert not np.allclose(drums.audio, stem)  # the track is in the model's instruction
    with pytest.raises(ValueError, match="needs a track"):
        AudioEdit("extract", clip, track="kazoo")


def test_lego_is_the_pipelines_lego_of_that_track_over_the_whole_clip(engine, tiny_acestep_dir):
    from diffusers import AceStepPipeline

    clip = engine.generate(REQUEST).audio
    assert engine.info.supports(Capability.ADD_LAYER)
    request = GenerationRequest(prompt="funk", duration_s=1.0, seed=6, edit=AudioEdit("lego", clip, track="bass"))
    ours = engine.sample(request)
    direct = AceStepPipeline.from_pretrained(tiny_acestep_dir, local_files_only=True)
    direct.set_progress_bar_config(disable=True)
    torch.manual_seed(6)
    theirs = direct(prompt="funk", lyrics="", vocal_language="en", audio_duration=None, num_inference_steps=8,
                    guidance_scale=1.0, task_type="lego", track_name="bass", src_audio=torch.from_numpy(clip),
                    generator=torch.Generator().manual_seed(6), output_type="latent").audios
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)
    extracted = engine.sample(GenerationRequest(**{**request.__dict__, "edit": AudioEdit("extract", clip,
                                                                                          track="bass")}))
    assert not torch.allclose(ours, extracted)  # another task, another instruction
    assert engine.generate(request).audio.shape == clip.shape


def test_cover_is_the_pipelines_cover_at_that_strength(engine, tiny_acestep_dir):
    from diffusers import AceStepPipeline

    clip = engine.generate(REQUEST).audio
    request = GenerationRequest(prompt="bossa nova", duration_s=1.0, seed=4,
                                edit=AudioEdit("cover", clip, strength=0.6))
    ours = engine.sample(request)
    direct = AceStepPipeline.from_pretrained(tiny_acestep_dir, local_files_only=True)
    direct.set_progress_bar_config(disable=True)
    torch.manual_seed(4)
    theirs = direct(prompt="bossa nova", lyrics="", vocal_language="en", audio_duration=None, num_inference_steps=8,
                    guidance_scale=1.0, task_type="cover", audio_cover_strength=0.6, src_audio=torch.from_numpy(clip),
                    generator=torch.Generator().manual_seed(4), output_type="latent").audios
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)
    full = engine.sample(GenerationRequest(**{**request.__dict__, "edit": AudioEdit("cover", clip, strength=1.0)}))
    assert not torch.allclose(ours, full)  # below 1 the text-only condition is blended in
    assert engine.generate(request).audio.shape == clip.shape


def test_a_pipeline_without_its_audio_tokenizer_refuses_cover(engine):
    from types import SimpleNamespace

    bare = SimpleNamespace(audio_tokenizer=None, audio_token_detokenizer=engine.pipeline.audio_token_detokenizer)
    assert Capability.COVER not in capabilities(bare) and Capability.COVER in capabilities(engine.pipeline)
    without = AceStepEngine(engine.pipeline, replace(engine.info, capabilities=capabilities(bare)), steps=TURBO_STEPS)
    clip = np.zeros((2, 48_000), dtype=np.float32)
    with pytest.raises(InferenceError, match="cannot cover"):
        without.generate(GenerationRequest(prompt="", duration_s=1.0, seed=0, edit=AudioEdit("cover", clip)))


def test_a_musicgen_engine_refuses_lyrics_and_repaint(tiny_model_dir):
    musicgen = load_engine(resolve_model(str(tiny_model_dir), tiny_dir=tiny_model_dir), warm_up=False)
    with pytest.raises(InferenceError, match="lyrics"):
        musicgen.generate(GenerationRequest(prompt="", duration_s=0.1, seed=0, lyrics="la la"))
    with pytest.raises(InferenceError, match="repaint"):
        musicgen.generate(GenerationRequest(prompt="", duration_s=0.1, seed=0, edit=AudioEdit(
            "repaint", np.zeros((1, 3200), dtype=np.float32), 0.0, 0.05)))
    with pytest.raises(InferenceError, match="cannot add a layer"):
        musicgen.generate(GenerationRequest(prompt="", duration_s=0.1, seed=0, edit=AudioEdit(
            "lego", np.zeros((1, 3200), dtype=np.float32), track="bass")))
    with pytest.raises(InferenceError, match="cannot cover"):
        musicgen.generate(GenerationRequest(prompt="", duration_s=0.1, seed=0, edit=AudioEdit(
            "cover", np.zeros((1, 3200), dtype=np.float32), strength=0.5)))
    with pytest.raises(InferenceError, match="cannot extract"):
        musicgen.generate(GenerationRequest(prompt="", duration_s=0.1, seed=0, edit=AudioEdit(
            "extract", np.zeros((1, 3200), dtype=np.float32), track="vocals")))


def test_the_cli_writes_a_pipeline_that_diffusers_loads(tmp_path, capsys):
    from diffusers import AceStepPipeline

    from bridge.cli import main

    assert main(["model", "make-tiny", "--family", "ace-step", str(tmp_path / "ace")]) == 0
    assert "NOISE, NOT MUSIC" in capsys.readouterr().out
    pipeline = AceStepPipeline.from_pretrained(tmp_path / "ace", local_files_only=True)
    assert pipeline.sample_rate == 48_000 and pipeline.latents_per_second == 25.0


def test_ace_step_refuses_a_code_prompt_by_name(engine):
    """A jam continues MusicGen's own codes; ACE-Step has none to continue, and says so before any work."""
    assert Capability.CODE_PROMPT not in engine.info.capabilities
    with pytest.raises(InferenceError, match="cannot continue from codes.*backend 'engine'"):
        engine.generate(GenerationRequest(prompt="", duration_s=1.0, seed=0,
                                          prompt_codes=np.zeros((4, 10), dtype=np.int64)))
