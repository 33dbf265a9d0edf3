import dataclasses
from pathlib import Path

import pytest

from bridge.audio.context import MusicalContext
from bridge.audio.effects import build_pedalboard
from bridge.audio.presets import (
    PRESET_SETTINGS,
    EffectSpec,
    Preset,
    PresetError,
    builtin_presets_dir,
    load_presets,
)
from bridge.errors import BadRequest, ConfigError
from bridge.protocol.schema import load_schema

SHIPPED = ("default", "lofi_tape", "club_master")


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / f"{name}.toml"
    path.write_text(text)
    return path


def preset(**changes) -> Preset:
    return dataclasses.replace(Preset(name="test", path=Path("test.toml")), **changes)


# --- loading ---------------------------------------------------------------


def test_shipped_presets_load_and_build():
    presets = load_presets([builtin_presets_dir()])
    assert set(SHIPPED) <= set(presets)
    for name, loaded in presets.items():
        assert loaded.name == name
        assert loaded.description
        assert "{prompt}" in loaded.prompt_template
        assert loaded.master, name
        assert len(build_pedalboard(loaded.master)) == len(loaded.master)
    assert presets["default"].target_lufs == -14.0
    assert presets["club_master"].target_lufs == -9.0
    assert presets["default"].true_peak_db == -1.0


def test_full_layout(tmp_path):
    write(
        tmp_path,
        "full",
        """
description = "All keys."
model = "musicgen-small"
[prompt]
template = "{prompt}, {bpm} bpm"
[generation]
temperature = 0.9
top_k = 100
top_p = 0.5
guidance_scale = 4
seed = 7
prompt_seconds = 3.0
[loudness]
target_lufs = -16
true_peak_db = -2.0
[output]
bit_depth = 16
stems = ["drums", "bass"]
[[master]]
plugin = "Compressor"
threshold_db = -18
ratio = 2.5
[[master]]
plugin = "LadderFilter"
mode = "HPF24"
cutoff_hz = 80.0
""",
    )
    loaded = load_presets([tmp_path])["full"]
    assert loaded.model == "musicgen-small"
    assert (loaded.temperature, loaded.top_k, loaded.top_p, loaded.seed) == (0.9, 100, 0.5, 7)
    assert loaded.guidance_scale == 4.0 and isinstance(loaded.guidance_scale, float)
    assert (loaded.target_lufs, loaded.true_peak_db, loaded.bit_depth) == (-16.0, -2.0, 16)
    assert loaded.stems == ("drums", "bass")
    assert loaded.master == (
        EffectSpec("Compressor", {"threshold_db": -18, "ratio": 2.5}),
        EffectSpec("LadderFilter", {"mode": "HPF24", "cutoff_hz": 80.0}),
    )
    assert loaded.path == tmp_path / "full.toml"


def test_empty_file_gives_defaults(tmp_path):
    write(tmp_path, "empty", "")
    assert load_presets([tmp_path])["empty"] == Preset(name="empty", path=tmp_path / "empty.toml")


BAD_SNIPPETS = [
    ("unknown top-level key", 'colour = "red"', "colour"),
    ("unknown section key", "[generation]\ntemprature = 1.0", "generation.temprature"),
    ("wrong type string", '[generation]\ntemperature = "hot"', "generation.temperature"),
    ("wrong type bool", "[generation]\ntop_p = true", "generation.top_p"),
    ("wrong type description", "description = 5", "description"),
    ("non-integer top_k", "[generation]\ntop_k = 2.5", "generation.top_k"),
    ("out of range", "[loudness]\ntarget_lufs = 3.0", "loudness.target_lufs"),
    ("out of range seed", "[generation]\nseed = -1", "generation.seed"),
    ("section not a table", "generation = 1", "generation"),
    ("bad bit depth", "[output]\nbit_depth = 20", "output.bit_depth"),
    ("unknown stem", '[output]\nstems = ["guitar"]', "output.stems"),
    ("template without prompt", '[prompt]\ntemplate = "lofi"', "prompt.template"),
    ("template unknown placeholder", '[prompt]\ntemplate = "{prompt} {tempo}"', "{tempo}"),
    ("template stray brace", '[prompt]\ntemplate = "{prompt} }"', "prompt.template"),
    ("unknown plugin", '[[master]]\nplugin = "Flanger"', "master[0].plugin"),
    ("missing plugin", "[[master]]\nthreshold_db = -10", "master[0].plugin"),
    ("master not an array", '[master]\nplugin = "Gain"', "master"),
    (
        "unknown plugin parameter",
        '[[master]]\nplugin = "Compressor"\nthreshhold_db = -10.0',
        "master[0].threshhold_db",
    ),
    ("out-of-range parameter", '[[master]]\nplugin = "Reverb"\nroom_size = 2.0', "master[0].room_size"),
    (
        "parameter pedalboard accepts silently",
        '[[master]]\nplugin = "HighpassFilter"\ncutoff_frequency_hz = -5.0',
        "master[0].cutoff_frequency_hz",
    ),
    ("absurd gain", '[[master]]\nplugin = "Gain"\ngain_db = 1000', "master[0].gain_db"),
    ("parameter wrong type", '[[master]]\nplugin = "Compressor"\nratio = "big"', "master[0].ratio"),
    ("parameter bool", '[[master]]\nplugin = "Compressor"\nthreshold_db = true', "master[0].threshold_db"),
    ("parameter array", '[[master]]\nplugin = "Gain"\ngain_db = [1, 2]', "master[0].gain_db"),
    (
        "second effect",
        '[[master]]\nplugin = "Gain"\n[[master]]\nplugin = "Delay"\nfeedback = 1.5',
        "master[1].feedback",
    ),
    ("bad ladder mode", '[[master]]\nplugin = "LadderFilter"\nmode = "LPF48"', "master[0].mode"),
    ("vst3 missing file", '[[master]]\nplugin = "vst3"\npath = "nope.vst3"', "master[0].path"),
    ("vst3 without path", '[[master]]\nplugin = "vst3"', "master[0].path"),
    ("toml syntax", 'description = "unterminated', "toml"),
]


@pytest.mark.parametrize("snippet, key", [case[1:] for case in BAD_SNIPPETS], ids=[c[0] for c in BAD_SNIPPETS])
def test_bad_snippets(tmp_path, snippet, key):
    path = write(tmp_path, "broken", snippet)
    with pytest.raises(PresetError) as info:
        load_presets([tmp_path])
    assert isinstance(info.value, ConfigError)
    assert str(path) in info.value.message
    assert key in info.value.message
    assert all(line.startswith(f"{path}: ") for line in info.value.problems)


@pytest.mark.parametrize("name", ["Bad Name", "UPPER", "-dash-first", "x" * 49, "dot.name"])
def test_bad_names(tmp_path, name):
    write(tmp_path, name, 'description = "fine"')
    with pytest.raises(PresetError) as info:
        load_presets([tmp_path])
    assert f"{name}.toml: name: " in info.value.message


def test_all_problems_of_all_files_are_reported(tmp_path):
    first = write(tmp_path, "first", 'colour = 1\n[generation]\ntop_k = -5\n[[master]]\nplugin = "Nope"')
    second = write(tmp_path, "second", "[loudness]\ntrue_peak_db = 3.0")
    write(tmp_path, "fine", 'description = "ok"')
    with pytest.raises(PresetError) as info:
        load_presets([tmp_path])
    problems = info.value.problems
    assert len(problems) == 4
    assert sum(line.startswith(f"{first}: ") for line in problems) == 3
    assert sum(line.startswith(f"{second}: loudness.true_peak_db: ") for line in problems) == 1
    assert "4 problems" in info.value.message


def test_later_dirs_override_earlier(tmp_path):
    base, user = tmp_path / "base", tmp_path / "user"
    base.mkdir()
    user.mkdir()
    write(base, "mine", 'description = "base"')
    write(base, "other", 'description = "other"')
    write(user, "mine", 'description = "user"')
    presets = load_presets([base, user])
    assert presets["mine"].description == "user"
    assert presets["mine"].path == user / "mine.toml"
    assert presets["other"].description == "other"


def test_missing_directory_is_a_problem(tmp_path):
    with pytest.raises(PresetError, match="does not exist"):
        load_presets([tmp_path / "nope"])


def test_vst3_relative_path_resolves_against_preset_dir(tmp_path):
    (tmp_path / "fake.vst3").write_bytes(b"not a plugin")
    write(tmp_path, "ext", '[[master]]\nplugin = "vst3"\npath = "fake.vst3"\ndrive = 0.5')
    spec = load_presets([tmp_path])["ext"].master[0]
    assert spec.params["path"] == str((tmp_path / "fake.vst3").resolve())


# --- overrides ---------------------------------------------------------------


def test_overrides_apply_and_leave_original():
    base = preset()
    changed = base.with_overrides(
        {"temperature": 0.7, "top_k": 50.0, "cfg": 5, "seed": 42, "target_lufs": -10, "true_peak_db": -2}
    )
    assert (changed.temperature, changed.top_k, changed.guidance_scale, changed.seed) == (0.7, 50, 5.0, 42)
    assert isinstance(changed.top_k, int)
    assert (changed.target_lufs, changed.true_peak_db) == (-10.0, -2.0)
    assert base.temperature == 1.0 and base.seed is None
    assert base.with_overrides({}) is base
    assert changed.with_overrides({"seed": None}).seed is None


def test_overrides_only_take_the_settings_type():
    # Ranges were checked where the value came in (the schema; tests/bridge/jobs/test_admission.py):
    # with_overrides does not check them again, and refuses a name that is not a preset setting as a bug.
    seeded = preset().with_overrides({"seed": 7.0})
    assert seeded.seed == 7 and isinstance(seeded.seed, int)
    with pytest.raises(ValueError, match="bit_depth is not a preset setting"):
        preset().with_overrides({"bit_depth": 16})


# --- ranges: the schema's ------------------------------------------------------

SECTION = {name: "generation" for name in PRESET_SETTINGS} | {"target_lufs": "loudness", "true_peak_db": "loudness"}


@pytest.mark.parametrize("name", PRESET_SETTINGS)
def test_every_preset_setting_has_the_schemas_range(tmp_path, name):
    spec = load_schema().setting(name)
    write(tmp_path, "edges", f"[{SECTION[name]}]\n{name} = {spec.max!r}\n")
    assert getattr(load_presets([tmp_path])["edges"], name) == spec.max
    write(tmp_path, "edges", f"[{SECTION[name]}]\n{name} = {spec.min!r}\n")
    assert getattr(load_presets([tmp_path])["edges"], name) == spec.min
    step = 1 if spec.type == "i" else 0.01
    for outside in (spec.min - step, spec.max + step):
        write(tmp_path, "edges", f"[{SECTION[name]}]\n{name} = {outside!r}\n")
        with pytest.raises(PresetError) as caught:
            load_presets([tmp_path])
        (problem,) = caught.value.problems
        assert problem.startswith(
            f"{tmp_path / 'edges.toml'}: {SECTION[name]}.{name}: must be {spec.describe()}, got {outside!r}")


def test_a_temperature_the_schema_refuses_is_refused_at_load(tmp_path):
    path = write(tmp_path, "wild", "[generation]\ntemperature = 4.5\n")  # the old table allowed up to 5
    with pytest.raises(PresetError) as caught:
        load_presets([tmp_path])
    assert caught.value.problems == (f"{path}: generation.temperature: must be a float in 0.05..4, got 4.5",)


# --- prompts -----------------------------------------------------------------


@pytest.mark.parametrize(
    "bpm, text", [(120.0, "120"), (120, "120"), (333.3, "333.3"), (174.5, "174.5"), (99.125, "99.125")]
)
def test_render_prompt_placeholders(bpm, text):
    context = MusicalContext(bpm=bpm, beats_per_bar=7, beat_unit=8, key="F# minor")
    rendered = preset(prompt_template="{prompt} | {bpm} bpm | {key} | {metre}").render_prompt("acid", context)
    assert rendered == f"acid | {text} bpm | F# minor | 7/8"


def test_user_prompt_may_use_placeholders_and_literal_braces():
    context = MusicalContext(bpm=90, key="D dorian")
    template = preset(prompt_template="{prompt}, tape")
    assert template.render_prompt("jazz in {key} at {bpm}", context) == "jazz in D dorian at 90, tape"
    assert template.render_prompt("set {{x}}", context) == "set {x}, tape"
    # Inserted text is not parsed again: braces in a value stay as they are.
    assert preset().render_prompt("{{bpm}}", context) == "{bpm}"


@pytest.mark.parametrize(
    "prompt, fragment",
    [
        ("drums {tempo}", "{tempo}"),
        ("drums {prompt}", "{prompt}"),
        ("drums {key.upper}", "{key.upper}"),
        ("drums {0}", "{0}"),
        ("drums {", "stray '{'"),
        ("drums }", "stray '}'"),
    ],
)
def test_render_prompt_errors_name_the_problem(prompt, fragment):
    with pytest.raises(BadRequest) as info:
        preset().render_prompt(prompt, MusicalContext())
    assert fragment in info.value.message
    assert info.value.message.startswith("prompt: ")


def test_template_errors_name_the_preset():
    with pytest.raises(BadRequest, match="preset test template: unknown placeholder {mood}"):
        preset(prompt_template="{prompt} {mood}").render_prompt("x", MusicalContext())


def test_render_prompt_keeps_a_repeated_phrase_once():
    from bridge.audio.context import MusicalContext
    from bridge.audio.presets import builtin_presets_dir, load_presets

    default = load_presets([builtin_presets_dir()])["default"]
    text = default.render_prompt("warm lo-fi piano, {bpm} bpm", MusicalContext(bpm=120.0))
    assert text.count("120 bpm") == 1 and text.startswith("warm lo-fi piano, 120 bpm")
    assert "4/4" in text and "major" not in text
    assert default.render_prompt("", MusicalContext(bpm=120.0)) == "120 bpm, 4/4"  # no key given: none invented
