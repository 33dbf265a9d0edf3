"""MIDI into the real daemon (in process, tiny model): a note-on renders into its slot and is announced."""

from __future__ import annotations

import mido
import pytest

from bridge.clients.osc import OscClient
from bridge.daemon import Daemon
from bridge.settings import load_settings
from tests.e2e.test_daemon import JOB_TIMEOUT_S

pytestmark = pytest.mark.slow


def test_note_on_renders_into_its_slot_and_the_clock_sets_the_tempo(tiny_model_dir, tmp_path):
    with OscClient("127.0.0.1", 9, name="max-patch") as patch:  # only listens: MIDI job events come here
        settings = load_settings({
            "model": str(tiny_model_dir), "osc_port": 0, "zmq_port": -1, "osc_tcp_port": -1, "http_port": -1,
            "output_root": str(tmp_path / "renders"), "user_presets_dir": str(tmp_path / "user"),
            "cpu_threads": 1, "midi_reply_port": patch.reply_address[1],
        }, environ={})
        daemon = Daemon(settings)
        daemon.startup()
        try:
            midi = daemon.build_midi_controller()  # start_midi without a port: fed by the test
            for tick in range(48):  # 150 BPM
                midi.feed(mido.Message("clock"), 100.0 + tick * 60 / 150 / 24)
            midi.feed(mido.Message("note_on", note=37, velocity=100))  # slot 2, preset default, 4 bars
            _, slot = patch.wait_for(lambda address, _args: address == "/continuo/slot", JOB_TIMEOUT_S)
            job_id, number, path = slot
            assert number == 2 and job_id.startswith("midi-2-") and path.endswith(f"/{job_id}/mix.wav")
            patch.wait_for(lambda address, args: address == "/continuo/done" and args[0] == job_id, 30)
            record = daemon.journal.get(job_id)
            assert record.params["preset"] == "default" and record.params["context"]["bpm"] == pytest.approx(150.0)
            mix = next(output for output in record.outputs if output.name == "mix")
            assert mix.path == path and mix.seconds == pytest.approx(4 * 4 * 60 / 150)  # 4 bars at the clock's tempo
        finally:
            daemon.stop_requested.set()
            daemon.shutdown()
