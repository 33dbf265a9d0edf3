"""The control room listens (#26), in a real browser (tests/e2e/test_browser.py's chromium and page): a dropped
file's tempo, metre and key shown and put into the form, its beats and downbeats drawn on its waveform, and a MIDI
download link beside each stem. Its own daemon: random HDemucs weights, so stems need no download."""

from __future__ import annotations

import pytest
import soundfile as sf

from bridge.tools.listen_truth import drum_pattern
from tests.e2e.test_browser import JOB_TIMEOUT_MS, browser, job_card, page  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def daemon_extra_flags() -> tuple[str, ...]:
    return ("--stems-weights", "random", "--stems-model-size", "low")


def test_a_dropped_file_shows_its_tempo_key_and_beats_and_stems_get_midi_links(page, tmp_path):  # noqa: F811
    truth = drum_pattern(100.0, "3/4", bars=4)
    clip = tmp_path / "waltz.wav"
    sf.write(clip, truth.audio.T, truth.sample_rate)
    page.set_input_files("#file", str(clip))
    page.wait_for_function("() => document.getElementById('analysis').dataset.bpm !== undefined", timeout=30_000)
    assert float(page.get_attribute("#analysis", "data-bpm")) == pytest.approx(100.0, rel=0.02)
    assert "BPM" in page.inner_text("#analysis") and "3/4" in page.inner_text("#analysis")
    assert float(page.input_value("#bpm")) == pytest.approx(100.0, rel=0.02)  # the form takes what was heard
    assert page.input_value("#beats-per-bar") == "3"
    page.wait_for_function("() => document.getElementById('drop-wave').dataset.downbeats !== undefined")
    wave = page.locator("#drop-wave")
    assert wave.is_visible()
    assert int(wave.get_attribute("data-downbeats")) == pytest.approx(len(truth.downbeats_s), abs=1)
    assert int(wave.get_attribute("data-beats")) >= 3 * int(wave.get_attribute("data-downbeats")) - 3

    page.fill("#stems", "bass")
    page.check("#midi")
    before = page.locator(".job").count()
    page.click("#stems-button")
    page.wait_for_function("([n]) => document.querySelectorAll('.job').length > n", arg=[before])
    job_id = page.locator(".job").first.get_attribute("data-job-id")
    link = job_card(page, job_id).locator('.output[data-output="bass"] a.midi')
    link.wait_for(timeout=JOB_TIMEOUT_MS)
    assert link.inner_text() == "⇩ MIDI bass"
    response = page.request.get(link.evaluate("a => a.href"))
    assert response.ok and response.headers["content-type"] == "audio/midi"
    assert response.body()[:4] == b"MThd"  # a standard MIDI file
    assert job_card(page, job_id).locator('.output[data-output="bass"] audio').count() == 1  # the stem itself
    assert page.problems == []
