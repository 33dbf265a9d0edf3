import dataclasses
import math

import pytest

from bridge.audio.context import (
    BEAT_UNITS,
    BEATS_PER_BAR_RANGE,
    BPM_RANGE,
    KEY_MAX_CHARS,
    SAMPLE_RATES,
    MusicalContext,
)
from bridge.errors import BadRequest

TEMPOS = [60.0, 90.0, 120.0, 174.0, 333.3]
METRES = [(3, 4), (4, 4), (6, 8), (7, 8), (5, 4)]
RATES = [44100, 48000, 96000]


@pytest.mark.parametrize("bpm", TEMPOS)
@pytest.mark.parametrize("metre", METRES, ids=lambda m: f"{m[0]}-{m[1]}")
@pytest.mark.parametrize("sample_rate", RATES)
@pytest.mark.parametrize("bars", [1, 2.5, 8, 64])
def test_frames_for_bars_table(bpm, metre, sample_rate, bars):
    beats, unit = metre
    context = MusicalContext(bpm=bpm, beats_per_bar=beats, beat_unit=unit, sample_rate=sample_rate)
    seconds = bars * beats * 60 / bpm * 4 / unit
    assert math.isclose(context.seconds_for_bars(bars), seconds, rel_tol=1e-12)
    assert context.frames_for_bars(bars) == round(seconds * sample_rate)


@pytest.mark.parametrize(
    "kwargs, bars, frames",
    [
        ({}, 8, 768000),
        ({"bpm": 90, "beats_per_bar": 3, "sample_rate": 44100}, 1, 88200),
        ({"bpm": 120, "beats_per_bar": 6, "beat_unit": 8, "sample_rate": 48000}, 4, 288000),
        ({"bpm": 60, "beats_per_bar": 7, "beat_unit": 8, "sample_rate": 96000}, 2, 672000),
        ({}, 0, 0),
    ],
)
def test_frames_for_bars_known_values(kwargs, bars, frames):
    assert MusicalContext(**kwargs).frames_for_bars(bars) == frames


def test_frames_are_integers():
    assert isinstance(MusicalContext(bpm=333.3).frames_for_bars(3), int)


@pytest.mark.parametrize("metre", METRES)
def test_metre(metre):
    assert MusicalContext(beats_per_bar=metre[0], beat_unit=metre[1]).metre == f"{metre[0]}/{metre[1]}"


@pytest.mark.parametrize(
    "field, value, range_text",
    [
        ("bpm", 19.9, "20 to 400"),
        ("bpm", 400.5, "20 to 400"),
        ("bpm", float("nan"), "20 to 400"),
        ("bpm", float("inf"), "20 to 400"),
        ("bpm", "120", "20 to 400"),
        ("bpm", True, "20 to 400"),
        ("beats_per_bar", 0, "1 to 32"),
        ("beats_per_bar", 33, "1 to 32"),
        ("beats_per_bar", 4.0, "1 to 32"),
        ("beat_unit", 3, "1, 2, 4, 8, 16, 32"),
        ("beat_unit", 64, "1, 2, 4, 8, 16, 32"),
        ("key", "   ", "32 characters"),
        ("key", "x" * 33, "32 characters"),
        ("key", 5, "32 characters"),
        ("sample_rate", 44000, "44100"),
        ("sample_rate", 48000.0, "48000"),
        ("sample_rate", 0, "192000"),
    ],
)
def test_validation_names_field_value_and_range(field, value, range_text):
    with pytest.raises(BadRequest) as info:
        MusicalContext(**{field: value})
    message = info.value.message
    assert message.startswith(field)
    assert repr(value) in message
    assert range_text in message
    assert info.value.code == "bad_request"


def test_an_empty_key_means_none_as_the_schema_says():
    """osc_schema/continuo.json: /continuo/context's key is "empty for none"; only blanks and over-long keys fail."""
    assert MusicalContext(key="").key == ""
    assert MusicalContext().replace(key="").key == ""


def test_the_daemon_takes_an_empty_key_on_context(make_daemon_in_process):
    daemon = make_daemon_in_process()
    sender = ("127.0.0.1", 41999)
    daemon.on_message("/continuo/context", [100.0, 3, 4, "", 48000], sender)
    assert list(daemon.sent) == [("/continuo/context", [100.0, 3, 4, "", 48000])]
    assert daemon.sessions.session(sender).context.key == ""


def test_replace_validates():
    context = MusicalContext()
    assert context.replace(bpm=174.0, key="F# minor").bpm == 174.0
    with pytest.raises(BadRequest, match="bpm"):
        context.replace(bpm=1000)
    with pytest.raises(BadRequest, match="tempo"):
        context.replace(tempo=100)


def test_context_is_frozen_and_validate_passes_for_defaults():
    context = MusicalContext()
    context.validate()
    with pytest.raises(dataclasses.FrozenInstanceError):
        context.bpm = 100  # type: ignore[misc]


@pytest.mark.parametrize("bars", [-1, float("nan"), float("inf"), "8"])
def test_bad_bars(bars):
    with pytest.raises(BadRequest, match="bars"):
        MusicalContext().frames_for_bars(bars)


def test_ranges_are_exported():
    assert BPM_RANGE == (20.0, 400.0)
    assert BEATS_PER_BAR_RANGE == (1, 32)
    assert BEAT_UNITS == (1, 2, 4, 8, 16, 32)
    assert 48000 in SAMPLE_RATES and 44000 not in SAMPLE_RATES
    assert KEY_MAX_CHARS == 32
