"""ACE-Step over OSC: a real `continuo serve` on the tiny random pipeline (noise, not music).

Generate with lyrics ends in a bar-exact WAV; extract returns one bar-exact stem, layer a stem and a mix, cover
one mix; repaint leaves the clip outside its range sample-identical; a lyrics file outside the input roots is
refused; a MusicGen daemon refuses repaint, extract, layer and cover by capability; a LoRA from --lora-dir changes
the take, is gone for the next job, and a corrupt one fails only its own job.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile

from bridge.clients.osc import OscClient
from bridge.clients.process import DaemonProcess
from tests.daemons import JOB_TIMEOUT_S, daemon_flags

pytestmark = pytest.mark.slow

RATE = 48_000
BAR_FRAMES = 96_000  # one 4/4 bar at 120 bpm, 48 kHz (the default session context)


@pytest.fixture(scope="module")
def acestep_daemon(tiny_acestep_dir, daemon_root) -> Iterator[DaemonProcess]:
    with DaemonProcess(daemon_flags(tiny_acestep_dir, daemon_root)) as process:
        yield process


@pytest.fixture
def client(acestep_daemon) -> Iterator[OscClient]:
    with OscClient(acestep_daemon.host, acestep_daemon.port) as osc:
        osc.hello()
        yield osc


def outputs(events: list) -> list[list]:
    return [args for address, args in events if address == "/continuo/output"]


def test_generate_with_lyrics_from_a_file_ends_in_a_bar_exact_wav(client, daemon_root):
    lyrics = daemon_root / "inbox" / "song.txt"
    lyrics.write_text("[verse]\nNeon rain on the window\n[chorus]\nHold the line\n", encoding="utf-8")
    client.send("/continuo/generate", "ace-1", "default", "synth pop", 1.0, "lyrics", str(lyrics),
                "vocal_language", "en")
    events = client.wait_job("ace-1", JOB_TIMEOUT_S)
    assert events[-1][0] == "/continuo/done", events[-1]
    path = Path(outputs(events)[0][2])
    info = soundfile.info(str(path))
    assert (info.frames, info.samplerate, info.channels) == (BAR_FRAMES, RATE, 2)
    manifest = json.loads((path.parent / "manifest.json").read_text())
    assert manifest["model"]["smoke_model"] is True and "noise, not music" in manifest["warning"]


def test_instrumental_generate_renders(client):
    client.send("/continuo/generate", "ace-2", "default", "ambient pads", 0.5, "instrumental", 1)
    events = client.wait_job("ace-2", JOB_TIMEOUT_S)
    assert events[-1][0] == "/continuo/done", events[-1]
    assert soundfile.info(outputs(events)[0][2]).frames == BAR_FRAMES // 2


def test_repaint_changes_the_range_and_leaves_the_rest_sample_identical(client, daemon_root):
    frames = 2 * BAR_FRAMES
    t = np.arange(frames) / RATE
    clip = np.stack([0.4 * np.sin(2 * np.pi * 220 * t), 0.4 * np.sin(2 * np.pi * 330 * t)], axis=1)
    source = daemon_root / "inbox" / "clip.wav"
    soundfile.write(source, clip, RATE, subtype="PCM_24")
    client.send("/continuo/repaint", "ace-3", str(source), 2.0, 6.0, "prompt", "drum fill", "lyrics", "hey")
    events = client.wait_job("ace-3", JOB_TIMEOUT_S)
    assert events[-1][0] == "/continuo/done", events[-1]
    written, rate = soundfile.read(outputs(events)[0][2], dtype="int32")
    original, _ = soundfile.read(source, dtype="int32")
    assert rate == RATE and written.shape == original.shape
    start, end = BAR_FRAMES // 2, 3 * BAR_FRAMES // 2  # beats 2 and 6 at 120 bpm
    assert np.array_equal(written[:start], original[:start])
    assert np.array_equal(written[end:], original[end:])
    assert not np.array_equal(written[start:end], original[start:end])


def test_extract_returns_one_bar_exact_stem_of_the_input_at_the_session_rate(client, daemon_root):
    frames = 2 * 88_200  # two bars at 44.1 kHz: the stem comes back at the session's 48 kHz, two bars exactly
    t = np.arange(frames) / 44_100
    source = daemon_root / "inbox" / "mix-44k.wav"
    soundfile.write(source, np.stack([0.3 * np.sin(2 * np.pi * 110 * t)] * 2, axis=1), 44_100)
    client.send("/continuo/extract", "ace-8", str(source), "backing vocals")
    events = client.wait_job("ace-8", JOB_TIMEOUT_S)
    assert events[-1][0] == "/continuo/done", events[-1]
    [output] = outputs(events)
    assert output[1] == "backing_vocals"
    info = soundfile.info(output[2])
    assert (info.frames, info.samplerate, info.channels) == (2 * BAR_FRAMES, RATE, 2)
    client.send("/continuo/extract", "ace-9", str(source), "kazoo")
    events = client.wait_job("ace-9", JOB_TIMEOUT_S)
    address, args = events[-1]
    assert address == "/continuo/error" and args[1] == "bad_request" and "unknown track 'kazoo'" in args[2]
    assert "/continuo/queued" not in [name for name, _ in events]


def test_layer_returns_the_new_stem_and_the_mix_both_bar_exact(client, daemon_root):
    frames = 2 * BAR_FRAMES
    t = np.arange(frames) / RATE
    source = daemon_root / "inbox" / "drums.wav"
    soundfile.write(source, np.stack([0.3 * np.sign(np.sin(2 * np.pi * 2 * t))] * 2, axis=1), RATE)
    client.send("/continuo/layer", "ace-10", str(source), "bass", "prompt", "walking bass")
    events = client.wait_job("ace-10", JOB_TIMEOUT_S)
    assert events[-1][0] == "/continuo/done", events[-1]
    written = {args[1]: args[2] for args in outputs(events)}
    assert set(written) == {"mix", "bass"}
    for path in written.values():
        info = soundfile.info(path)
        assert (info.frames, info.samplerate, info.channels) == (frames, RATE, 2)
    mix, _ = soundfile.read(written["mix"])
    stem, _ = soundfile.read(written["bass"])
    assert not np.allclose(mix, stem, atol=1e-3)  # the mix holds the input too, not only the new stem


def test_cover_restyles_the_clip_into_one_bar_exact_mix(client, daemon_root):
    frames = 3 * BAR_FRAMES // 2  # a bar and a half: the output keeps the input's length, not whole bars
    t = np.arange(frames) / RATE
    source = daemon_root / "inbox" / "tune.wav"
    soundfile.write(source, np.stack([0.3 * np.sin(2 * np.pi * 262 * t)] * 2, axis=1), RATE)
    client.send("/continuo/cover", "ace-11", str(source), 0.7, "prompt", "bossa nova guitar")
    events = client.wait_job("ace-11", JOB_TIMEOUT_S)
    assert events[-1][0] == "/continuo/done", events[-1]
    [output] = outputs(events)
    info = soundfile.info(output[2])
    assert output[1] == "mix" and (info.frames, info.samplerate, info.channels) == (frames, RATE, 2)


def test_a_range_past_the_clip_and_a_lyrics_file_outside_the_roots_are_refused(client, daemon_root, tmp_path):
    source = daemon_root / "inbox" / "short.wav"
    soundfile.write(source, np.zeros((BAR_FRAMES, 2)), RATE)
    client.send("/continuo/repaint", "ace-4", str(source), 2.0, 8.0)
    address, args = client.wait_job("ace-4", JOB_TIMEOUT_S)[-1]
    assert address == "/continuo/error" and args[1] == "bad_request" and "past the input's end" in args[2]
    outside = tmp_path / "secret.txt"
    outside.write_text("la la")
    client.send("/continuo/generate", "ace-5", "default", "", 1.0, "lyrics", str(outside))
    events = client.wait_job("ace-5", JOB_TIMEOUT_S)
    address, args = events[-1]
    assert address == "/continuo/error" and args[1] == "bad_request" and "outside the allowed input" in args[2]
    assert "/continuo/queued" not in [name for name, _ in events]
    client.send("/continuo/cover", "ace-7", str(source), 0.5)
    events = client.wait_job("ace-7", JOB_TIMEOUT_S)
    address, args = events[-1]
    assert address == "/continuo/error" and args[1] == "bad_request" and "new prompt" in args[2]
    assert "/continuo/queued" not in [name for name, _ in events]


def test_a_musicgen_daemon_refuses_repaint_and_lyrics_by_capability(tiny_model_dir, tmp_path):
    source = tmp_path / "inbox" / "clip.wav"
    source.parent.mkdir()
    soundfile.write(source, np.zeros((BAR_FRAMES, 2)), RATE)
    with DaemonProcess(daemon_flags(tiny_model_dir, tmp_path)) as daemon, \
            OscClient(daemon.host, daemon.port) as osc:
        osc.hello()
        osc.send("/continuo/repaint", "mg-1", str(source), 0.0, 2.0)
        events = osc.wait_job("mg-1", JOB_TIMEOUT_S)
        address, args = events[-1]
        assert address == "/continuo/error" and args[1] == "bad_request"
        assert "'repaint'" in args[2] and "tiny-random-musicgen" in args[2]
        assert "/continuo/queued" not in [name for name, _ in events]
        for job_id, address, capability in (("mg-4", "/continuo/extract", "'extract'"),
                                             ("mg-5", "/continuo/layer", "'add_layer'"),
                                             ("mg-6", "/continuo/cover", "'cover'")):
            last = 0.5 if address == "/continuo/cover" else "vocals"
            osc.send(address, job_id, str(source), last, "prompt", "jazz")
            events = osc.wait_job(job_id, JOB_TIMEOUT_S)
            assert events[-1][0] == "/continuo/error" and capability in events[-1][1][2]
            assert "/continuo/queued" not in [name for name, _ in events]
        osc.send("/continuo/generate", "mg-2", "default", "", 1.0, "lyrics", "la la")
        address, args = osc.wait_job("mg-2", JOB_TIMEOUT_S)[-1]
        assert address == "/continuo/error" and "'lyrics'" in args[2]
        osc.send("/continuo/generate", "mg-3", "default", "", 1.0, "lora", "grain")  # MusicGen takes its own LoRAs
        events = osc.wait_job("mg-3", JOB_TIMEOUT_S)
        assert events[-1][0] == "/continuo/error" and "unknown LoRA adapter 'grain'" in events[-1][1][2]
        assert "/continuo/queued" not in [name for name, _ in events]


def test_a_lora_over_osc_changes_the_take_and_a_bad_one_fails_only_its_job(tiny_acestep_dir, tiny_lora_dir,
                                                                           tmp_path):
    flags = daemon_flags(tiny_acestep_dir, tmp_path, "--lora-dir", str(tiny_lora_dir))
    with DaemonProcess(flags) as daemon, OscClient(daemon.host, daemon.port) as osc:
        osc.hello()

        def take(job_id: str, *settings) -> np.ndarray:
            osc.send("/continuo/generate", job_id, "default", "pads", 0.5, "seed", 9, "instrumental", 1, *settings)
            events = osc.wait_job(job_id, JOB_TIMEOUT_S)
            assert events[-1][0] == "/continuo/done", events[-1]
            return soundfile.read(outputs(events)[0][2], dtype="int32")[0]

        bare = take("lo-1")
        styled = take("lo-2", "lora", "grain", "lora_weight", 0.8)
        assert styled.shape == bare.shape == (BAR_FRAMES // 2, 2) and not np.array_equal(styled, bare)
        assert np.array_equal(take("lo-3"), bare)  # unloaded: the next job is the bare model's
        osc.send("/continuo/generate", "lo-4", "default", "pads", 0.5, "lora", "corrupt")
        address, args = osc.wait_job("lo-4", JOB_TIMEOUT_S)[-1]
        assert address == "/continuo/error" and args[1] == "model_error" and "LoRA adapter 'corrupt'" in args[2]
        osc.send("/continuo/generate", "lo-5", "default", "pads", 0.5, "lora", "nobody")
        events = osc.wait_job("lo-5", JOB_TIMEOUT_S)
        assert events[-1][0] == "/continuo/error" and "known in" in events[-1][1][2] and "grain" in events[-1][1][2]
        assert "/continuo/queued" not in [name for name, _ in events]
        assert np.array_equal(take("lo-6"), bare)  # the daemon is up and clean after both
