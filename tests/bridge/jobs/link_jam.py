"""A jam on an Ableton Link clock whose other peer changes the tempo; run by tests/bridge/jobs/test_jam.py inside a
private network namespace (never outside it: Link multicasts).

Peer "daw" is a bare LinkPython-extern Link, as a DAW would be; the jam's clock is make_clock("link") (quantum = one
bar). The DAW presses play at 240 BPM, the jam starts on the tiny random model (noise, not music), and after two bars
are out the DAW sets 190 BPM mid-bar. Prints one JSON object: every chunk as it went out, the bar the change had to
land on, and, read after the change, where the DAW's timeline puts each later chunk's start. The test asserts on it.

Usage: link_jam.py TINY_MODEL_DIR SCRATCH_DIR
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import link

from bridge.audio.clocks import make_clock
from bridge.audio.playback import JamChunk
from bridge.audio.presets import Preset
from bridge.jobs.jam import JamSession, JamSettings
from inference.loading import load_engine, resolve_model
from tests.bridge.audio.link_peers import QUANTUM, same_moment, wait_for

START_BPM, NEW_BPM = 240.0, 190.0


class Chunks:
    name = "list"

    def __init__(self) -> None:
        self.chunks: list[JamChunk] = []
        self.lock = threading.Lock()

    def play(self, chunk: JamChunk) -> None:
        with self.lock:
            self.chunks.append(chunk)

    def count(self) -> int:
        with self.lock:
            return len(self.chunks)

    def close(self) -> None:
        pass


def main(model_dir: str, scratch: str) -> None:
    out: dict = {}
    started = time.monotonic()
    engine = load_engine(resolve_model(model_dir, tiny_dir=Path(scratch)), device="cpu", warm_up=False,
                         weights="fp32")
    out["loaded_s"] = time.monotonic() - started
    daw = link.Link(START_BPM)
    daw.startStopSyncEnabled = True
    daw.enabled = True
    clock = make_clock("link", bpm=START_BPM, beats_per_bar=QUANTUM)
    out["found_s"] = wait_for(lambda: clock.peers >= 1 and daw.numPeers() >= 1, 5.0)
    state = daw.captureSessionState()  # the DAW presses play
    state.setIsPlaying(True, daw.clock().micros())
    daw.commitSessionState(state)
    out["playing_seen_s"] = wait_for(lambda: clock.reading().playing, 3.0)

    sink = Chunks()
    settings = JamSettings(jam_id="jam-link", prompt="dark techno", preset=Preset(
        name="plain", path=Path("plain.toml"), guidance_scale=1.0), bpm=START_BPM, context_bars=2, lookahead_bars=2)
    session = JamSession(settings, engine, clock, [sink])
    session.start()
    try:
        out["two_bars_s"] = wait_for(lambda: sink.count() >= 2, 10.0)
        with session.lock:  # the generator waits at its bar line while the change travels: the bar it must land on
            state = daw.captureSessionState()  # the DAW changes the tempo now, mid-bar
            state.setTempo(NEW_BPM, daw.clock().micros())
            daw.commitSessionState(state)
            out["tempo_seen_s"] = wait_for(lambda: abs(clock.reading().bpm - NEW_BPM) < 0.01, 2.0)
            out["landing_bar"] = session.landing_bar()
        out["after_s"] = wait_for(lambda: sink.count() >= out["landing_bar"] + 2, 10.0)
    finally:
        session.close()
    out["closed_s"] = time.monotonic() - started
    mono, micros = same_moment(daw)
    reading = clock.reading(mono)  # after the change: the timeline from then on is at the new tempo
    state = daw.captureSessionState()
    out["daw_bpm"], out["our_bpm"], out["our_pending_bpm"] = state.tempo(), reading.bpm, reading.change_bpm
    out["chunks"] = []
    for chunk in sink.chunks:
        entry = {"bar": chunk.bar, "start_beat": chunk.start_beat, "bpm": chunk.bpm, "samples": chunk.audio.shape[-1],
                 "sample_rate": chunk.sample_rate, "held": chunk.held}
        if chunk.bar >= out["landing_bar"]:  # where the DAW is in its bar when our clock puts this chunk's start
            at_us = micros + round((reading.time_of_beat(chunk.start_beat) - mono) * 1e6)
            entry["daw_phase"] = state.phaseAtTime(at_us, QUANTUM)
            entry["daw_bar_s"] = (state.timeAtBeat(state.beatAtTime(at_us, QUANTUM) + QUANTUM, QUANTUM) - at_us) / 1e6
        out["chunks"].append(entry)
    clock.close()
    daw.enabled = False
    out["total_s"] = time.monotonic() - started
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
