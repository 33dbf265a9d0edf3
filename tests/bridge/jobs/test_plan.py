"""Lengths in bars and beats, downbeat alignment of continuations, request settings the plan consumes,
per-stem chains in presets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bridge.audio.context import MusicalContext
from bridge.audio.presets import Preset, PresetError, builtin_presets_dir, load_presets
from bridge.audio.render import measured
from bridge.audio.stems import apply_stem_chains
from bridge.errors import BadRequest
from bridge.jobs.plan import build_plan, job_params, parse_stems

TEMPOS = [60.0, 97.0, 120.0, 133.33, 174.0]
METRES = [(4, 4), (3, 4), (6, 8), (7, 8), (5, 16)]
RATES = [44100, 48000, 96000]


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("beats_per_bar, beat_unit", METRES)
@pytest.mark.parametrize("bpm", TEMPOS)
def test_beats_and_bars_give_exact_frames(bpm, beats_per_bar, beat_unit, rate):
    context = MusicalContext(bpm=bpm, beats_per_bar=beats_per_bar, beat_unit=beat_unit, sample_rate=rate)
    for beats in (1, 3, 6, 13):
        expected = round(beats * 60 / bpm * 4 / beat_unit * rate)
        assert context.frames_for_beats(beats) == expected
    assert context.frames_for_beats(beats_per_bar * 4) == context.frames_for_bars(4)


@pytest.mark.parametrize("bpm, beats_per_bar, beat_unit, rate", [(120.0, 4, 4, 48000), (133.33, 7, 8, 44100),
                                                                  (97.0, 3, 4, 96000)])
def test_next_downbeat(bpm, beats_per_bar, beat_unit, rate):
    context = MusicalContext(bpm=bpm, beats_per_bar=beats_per_bar, beat_unit=beat_unit, sample_rate=rate)
    bar = context.frames_for_bars(1)
    for bars in (0, 1, 2, 5):
        downbeat = context.frames_for_bars(bars)
        assert context.frames_to_next_downbeat(downbeat) == 0
        assert context.frames_to_next_downbeat(downbeat + 1) == context.frames_for_bars(bars + 1) - downbeat - 1
    half = context.frames_for_bars(2.5)
    assert context.frames_to_next_downbeat(half) == context.frames_for_bars(3) - half
    assert 0 <= context.frames_to_next_downbeat(bar - 1) <= 1


PRESETS = {"default": Preset(name="default", path=Path("default.toml"), stems=("bass",))}


def plan(op="generate", settings=None, bars=2.0, **context):
    params = job_params(op, {"preset": "default", "prompt": "x", "bars": bars}, settings or {},
                        MusicalContext(**context))
    return build_plan(op, params, PRESETS, [])


def test_beats_setting_decides_the_length():
    six = plan(settings={"beats": 6.0}, bpm=90.0, beats_per_bar=3, beat_unit=8)
    assert six.bars == 2.0 and six.frames == round(6 * 60 / 90 * 4 / 8 * 48000)
    assert six.duration_s == pytest.approx(6 * 60 / 90 / 2)


@pytest.mark.parametrize("settings, fragment", [({"stems": "drums,drums"}, "twice"), ({"stems": "kazoo"}, "kazoo")])
def test_plan_settings_are_validated(settings, fragment):
    # beats, loop and hard_cut ranges are the schema's (tests/bridge/jobs/test_admission.py); the stems list
    # is parsed here, where the plan needs it.
    with pytest.raises(BadRequest, match=fragment):
        plan(settings=settings)


def test_request_stems_override_the_preset_and_flags_default_off():
    assert plan().stems == ("bass",) and not plan().loop and not plan().hard_cut
    chosen = plan(settings={"stems": "vocals, drums", "loop": 1, "hard_cut": 1})
    assert chosen.stems == ("drums", "vocals") and chosen.loop and chosen.hard_cut
    assert plan(settings={"stems": ""}).stems == ()
    assert parse_stems(["other"]) == ("other",)


def test_stems_op_plans_without_a_preset(tmp_path):
    wav = tmp_path / "in.wav"
    wav.write_bytes(b"")
    params = job_params("stems", {"input_path": str(wav), "stems": ["drums"]}, {}, MusicalContext())
    stems_plan = build_plan("stems", params, {}, [tmp_path])
    assert stems_plan.stems == ("drums",) and stems_plan.bars == 0 and stems_plan.input_path == wav


def test_stem_chains_load_and_are_validated(tmp_path):
    presets = load_presets([builtin_presets_dir()])
    pack = presets["stem_pack"]
    assert pack.stems == ("drums", "bass", "other", "vocals")
    assert [spec.plugin for spec in pack.stem_chains["drums"]] == ["Compressor"]
    (tmp_path / "bad.toml").write_text('[[stem_chains.guitar]]\nplugin = "Gain"\n'
                                       '[[stem_chains.drums]]\nplugin = "Reverb"\nroom_size = 3.0\n')
    with pytest.raises(PresetError) as caught:
        load_presets([tmp_path])
    problems = caught.value.problems
    assert any("bad.toml: stem_chains.guitar: unknown stem" in line for line in problems), problems
    assert any("bad.toml: stem_chains.drums[0].room_size: must be from 0 to 1" in line for line in problems), problems


def test_stem_chain_applies_to_its_stem_only_and_reports_each_output():
    pack = load_presets([builtin_presets_dir()])["stem_pack"]
    rng = np.random.default_rng(0)
    stems = {name: (0.1 * rng.standard_normal((2, 48000))).astype(np.float32) for name in ("drums", "bass", "other")}
    out = apply_stem_chains(stems, 48000, chains=pack.stem_chains, loop=False, hard_cut=False)
    assert list(out) == ["drums", "bass", "other", "other-tail"]  # the reverb's tail comes back beside it
    assert np.array_equal(out["bass"].audio, stems["bass"])  # no chain: untouched, so the sum holds
    assert not np.array_equal(out["drums"].audio, stems["drums"])
    assert out["bass"].lufs == measured(stems["bass"], 48000).lufs
    looped = apply_stem_chains(stems, 48000, chains=pack.stem_chains, loop=True, hard_cut=False)
    assert "other-tail" not in looped and looped["other"].audio.shape == (2, 48000)


def test_the_prompt_setting_steers_variations_and_continuations_only():
    # generate refusing the prompt setting is admission's rule (test_admission.py).
    assert plan("variations", settings={"prompt": "dark techno at {bpm}"}, bpm=128.0).prompt == \
        plan("generate", bpm=128.0).prompt.replace("x", "dark techno at 128")


def test_style_settings_become_weighted_model_prompts():
    styled = plan(settings={"style": "dark techno kick at {bpm}", "style_weight": 0.5}, bpm=128.0)
    assert styled.styles == (("dark techno kick at 128", 0.5),)
    assert plan(settings={"style": "strings"}).styles == (("strings", 1.0),)
    assert plan().styles == ()


def test_build_plan_trusts_admitted_params():
    # A replay builds from what admission journalled: flags become booleans, beats a float, nothing re-checked.
    replay = plan(settings={"loop": 1, "hard_cut": 0, "stream": 1, "beats": 6, "temperature": 0.5, "cfg": 2})
    assert (replay.loop, replay.hard_cut, replay.stream, replay.beats) == (True, False, True, 6.0)
    assert (replay.preset.temperature, replay.preset.guidance_scale) == (0.5, 2.0)


def test_picked_seeds_stay_exact_in_a_float32(monkeypatch):
    """Seeds the daemon picks (and variations' seed + N) stay below 2**24, where float32 (Pd, Max) is exact."""
    import secrets

    from bridge.jobs import plan
    from bridge.protocol.schema import load_schema

    count = next(a for a in load_schema().requests["/continuo/variations"].args if a.name == "count")
    assert count.max == plan.MAX_VARIATION_COUNT  # the schema's bound is the one the limit assumes
    highest = []
    monkeypatch.setattr(secrets, "randbelow", lambda n: highest.append(n - 1) or n - 1)  # the largest pick
    params = job_params("variations", {"preset": "default", "count": count.max, "bars": 1.0}, {}, MusicalContext())
    assert params["seed"] == highest[0]
    assert params["seed"] + count.max - 1 == 2**24 - 1
    assert job_params("generate", {"preset": "default", "bars": 1.0}, {"seed": 2**30}, MusicalContext()).get(
        "seed") is None  # a seed the client chose is its own (in the settings), never replaced
