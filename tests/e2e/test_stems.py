"""End to end: stems, loop, beats and preset reload through the real daemon (tiny model, random HDemucs)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from inference.stems.separator import SUM_TOLERANCE
from tests.daemons import JOB_TIMEOUT_S

pytestmark = pytest.mark.slow

PCM24_STEP = 2.0 ** -23  # one 24-bit step: each written file is rounded by at most half of it


@pytest.fixture(scope="module")
def daemon_extra_flags() -> tuple[str, ...]:
    """Random HDemucs weights at the small size: stems without a download."""
    return ("--stems-weights", "random", "--stems-model-size", "low")


def outputs(events) -> dict[str, list]:
    return {args[1]: args for address, args in events if address == "/continuo/output"}


def read(path: str) -> np.ndarray:
    audio, _ = sf.read(path, dtype="float64", always_2d=True)
    return audio


def test_generate_with_stems_writes_the_mix_and_stems_that_sum_to_it(osc_client):
    osc_client.send("/continuo/generate", "stems-1", "default", "drums and bass", 1.0,
                    "stems", "drums,bass,other,vocals")
    events = osc_client.wait_job("stems-1", JOB_TIMEOUT_S)
    assert events[-1][0] == "/continuo/done", events[-1]
    found = outputs(events)
    assert list(found) == ["mix", "drums", "bass", "other", "vocals"]
    assert "separating" in {args[2] for address, args in events if address == "/continuo/progress"}
    mix = read(found["mix"][2])
    assert mix.shape == (96000, 2)
    total = sum(read(found[name][2]) for name in ("drums", "bass", "other", "vocals"))
    assert np.abs(total - mix).max() < SUM_TOLERANCE + 5 * PCM24_STEP
    for name in ("drums", "bass"):
        assert found[name][3:5] == [48000, 2] and found[name][6] == pytest.approx(1.0)


def test_stems_of_an_input_file_come_at_the_session_rate(osc_client, daemon_root):
    rate = 44100
    audio = (0.1 * np.random.default_rng(0).standard_normal((rate, 2))).astype(np.float32)
    sf.write(daemon_root / "inbox" / "loop.wav", audio, rate, subtype="FLOAT")
    osc_client.send("/continuo/stems", "split-1", str(daemon_root / "inbox" / "loop.wav"), "vocals,drums")
    events = osc_client.wait_job("split-1", JOB_TIMEOUT_S)
    assert events[-1][0] == "/continuo/done", events[-1]
    found = outputs(events)
    assert list(found) == ["drums", "vocals"]
    assert [sf.info(found[name][2]).samplerate for name in found] == [48000, 48000]
    assert sf.info(found["drums"][2]).frames == 48000


@pytest.mark.parametrize("settings, frames", [(["loop", 1], 96000), (["beats", 6.0], 144000),
                                               (["beats", 3.0, "beats_per_bar", 3, "beat_unit", 8], 36000)])
def test_loop_and_beats_lengths_are_exact(osc_client, settings, frames):
    job_id = f"len-{settings[0]}-{frames}"
    osc_client.send("/continuo/generate", job_id, "default", "pad", 1.0, *settings)
    events = osc_client.wait_job(job_id, JOB_TIMEOUT_S)
    assert events[-1][0] == "/continuo/done", events[-1]
    assert sf.info(outputs(events)["mix"][2]).frames == frames


def test_unknown_stem_setting_is_a_bad_request(osc_client):
    osc_client.send("/continuo/generate", "stems-bad", "default", "x", 1.0, "stems", "drums,guitar")
    events = osc_client.wait_job("stems-bad", 10)
    assert events[-1][0] == "/continuo/error" and "guitar" in events[-1][1][2]


def preset_names(osc_client) -> set[str]:
    names = set()
    while True:
        try:
            _, args = osc_client.wait_for(lambda a, _args: a == "/continuo/presets", 2)
        except TimeoutError:
            return names
        names.add(args[0])


def test_reload_keeps_the_old_presets_when_new_ones_are_bad(osc_client, daemon_root):
    user = daemon_root / "user-presets"
    (user / "bright.toml").write_text('[[master]]\nplugin = "Gain"\ngain_db = 99.0\n')
    osc_client.send("/continuo/presets/reload")
    _, error = osc_client.wait_for(lambda a, _args: a == "/continuo/error", 10)
    assert "bright.toml" in error[2] and "master[0].gain_db" in error[2] and "-60 to 24" in error[2]
    osc_client.send("/continuo/generate", "reload-1", "bright", "x", 1.0)
    assert osc_client.wait_job("reload-1", 10)[-1][1][1] == "not_found"
    (user / "bright.toml").write_text('[[master]]\nplugin = "Gain"\ngain_db = 3.0\n')
    osc_client.send("/continuo/presets/reload")
    assert "bright" in preset_names(osc_client)
    (user / "bright.toml").unlink()
