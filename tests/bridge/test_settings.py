from pathlib import Path

import pytest

from bridge.cli import build_parser, settings_from_args
from bridge.errors import ConfigError
from bridge.settings import Settings, field_type, load_settings, numeric_fields, value_meanings


def test_defaults_when_nothing_is_given():
    settings = load_settings({}, environ={})
    assert settings == Settings()
    assert settings.osc_host == "127.0.0.1" and settings.osc_port == 9000


def test_precedence_is_flag_then_env_then_file_then_default(tmp_path):
    config = tmp_path / "continuo.toml"
    config.write_text('osc_port = 9100\nmax_queue = 3\nmodel = "from-file"\nbpm = 90\n')
    environ = {"CONTINUO_OSC_PORT": "9200", "CONTINUO_MODEL": "from-env"}
    settings = load_settings({"osc_port": "9300", "max_queue": None}, environ=environ, config_path=config)
    assert settings.osc_port == 9300  # flag
    assert settings.model == "from-env"  # environment beats file
    assert settings.max_queue == 3  # file beats default
    assert settings.bpm == 90.0
    assert settings.sample_rate == 48000  # default


def test_config_path_from_environment(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("max_bars = 16\n")
    assert load_settings({}, environ={"CONTINUO_CONFIG": str(config)}).max_bars == 16.0


@pytest.mark.parametrize(
    "toml, words",
    [
        ("osc_prot = 1\n", ["unknown setting", "osc_prot"]),
        ('osc_port = "x"\n', ["osc_port"]),
        ("osc_port = 70000\n", ["osc_port", "65535"]),
        ("max_queue = 0\n", ["max_queue"]),
        ('log_level = "LOUD"\n', ["log_level"]),
        ('osc_host = "0.0.0.0"\n', ["osc_host", "allow-list"]),
        ("osc_port = \n", ["not valid TOML"]),
    ],
)
def test_bad_config_names_the_setting(tmp_path, toml, words):
    config = tmp_path / "bad.toml"
    config.write_text(toml)
    with pytest.raises(ConfigError) as info:
        load_settings({}, environ={}, config_path=config)
    for word in words:
        assert word in info.value.message


def test_missing_config_file_says_so(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings({}, environ={}, config_path=tmp_path / "nope.toml")


def test_environment_values_are_converted():
    settings = load_settings({}, environ={
        "CONTINUO_ALLOW_SMOKE_MODEL": "no", "CONTINUO_INPUT_ROOTS": "/a:/b", "CONTINUO_BPM": "174",
    })
    assert settings.allow_smoke_model is False
    assert settings.input_roots == (Path("/a"), Path("/b"))
    assert settings.bpm == 174.0


def test_bad_environment_value_names_the_variable():
    with pytest.raises(ConfigError, match="CONTINUO_MAX_QUEUE"):
        load_settings({}, environ={"CONTINUO_MAX_QUEUE": "many"})


def test_cli_flags_cover_every_setting(tmp_path, monkeypatch):
    monkeypatch.delenv("CONTINUO_CONFIG", raising=False)
    args = build_parser().parse_args([
        "serve", "--model", "/m", "--osc-port", "0", "--output-root", str(tmp_path),
        "--no-allow-smoke-model", "--input-roots", "/x", "/y", "--max-bars", "8",
    ])
    settings = settings_from_args(args)
    assert settings.model == "/m" and settings.osc_port == 0 and settings.output_root == tmp_path
    assert settings.allow_smoke_model is False and settings.input_roots == (Path("/x"), Path("/y"))
    assert settings.max_bars == 8.0


def test_default_input_roots_are_output_root_and_inbox_beside_it(tmp_path):
    settings = Settings(output_root=tmp_path / "renders")
    assert settings.resolved_input_roots == ((tmp_path / "renders").resolve(), (tmp_path / "inbox").resolve())
    assert settings.resolved_journal_path == (tmp_path / "renders" / "journal.sqlite3").resolve()


# -- one meaning for 0 (issue 21): every number setting, found from the dataclass, so a new one is covered --------
NUMBERS = [f.name for f in numeric_fields()]


def test_the_number_settings_are_all_found():
    assert {"retention_age_s", "retention_max_jobs", "max_queue", "osc_tcp_port", "ack_interval_s",
            "cluster_gpus_per_replica", "inbox_copies_age_s", "auto_trash_days"} <= set(NUMBERS)
    assert "allow_smoke_model" not in NUMBERS and "model" not in NUMBERS  # a bool is not a number here


@pytest.mark.parametrize("name", NUMBERS)
def test_zero_means_off_or_is_refused_naming_the_setting(name):
    f = next(f for f in numeric_fields() if f.name == name)
    try:
        settings = load_settings({name: "0"}, environ={})
    except ConfigError as exc:
        assert name in exc.message and "0 is refused" in exc.message
        assert f.metadata["zero"] is None
        return
    assert getattr(settings, name) == 0
    meaning = f.metadata["zero"]
    assert meaning, f"{name} takes 0 without saying what it means"
    assert f"0 ({meaning})" in value_meanings(f)  # what --help and the errors show
    assert not any(word in meaning.lower() for word in ("delete", "remove", "everything", "all jobs")), meaning


@pytest.mark.parametrize("name", NUMBERS)
@pytest.mark.parametrize("value", ["-2", "-0.5", "nan", "inf"])
def test_negative_and_non_finite_numbers_are_refused_naming_the_setting(name, value):
    f = next(f for f in numeric_fields() if f.name == name)
    if field_type(f) in (int, int | None) and value in ("-0.5", "nan", "inf"):
        value = "-2"  # whole numbers: the converter refuses a fraction itself
    with pytest.raises(ConfigError) as info:
        load_settings({name: value}, environ={})
    assert name in info.value.message


@pytest.mark.parametrize("name", [n for n in NUMBERS if next(
    f for f in numeric_fields() if f.name == n).metadata["minus_one"] is None])
def test_minus_one_is_refused_where_it_means_nothing(name):
    with pytest.raises(ConfigError, match=name):
        load_settings({name: "-1"}, environ={})


def test_the_rule_catches_a_setting_that_breaks_it():
    """The control: the old checks let these through (0 deleted every finished job within a minute)."""
    import dataclasses

    from bridge.settings import check_number

    declared = {f.name: f for f in numeric_fields()}
    check_number(declared["retention_age_s"], 0)  # 0: never forgotten (declared)
    bare = dataclasses.field(metadata={"help": "", "zero": None, "minus_one": None, "low": None, "high": None})
    bare.name = "some_limit"
    with pytest.raises(ConfigError, match="some_limit"):
        check_number(bare, 0)
    with pytest.raises(ConfigError, match="some_limit"):
        check_number(bare, -1)
    check_number(bare, 3)
