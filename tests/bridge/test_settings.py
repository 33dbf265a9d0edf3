from pathlib import Path

import pytest

from bridge.cli import build_parser, settings_from_args
from bridge.errors import ConfigError
from bridge.settings import Settings, load_settings


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
