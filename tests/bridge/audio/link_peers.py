"""Two Ableton Link peers, run by tests/bridge/audio/test_clocks.py inside a private network namespace.

Peer "ours" is the jam's LinkClock (made by make_clock); peer "daw" is a bare LinkPython-extern Link, as a DAW would
be. A third, disabled LinkClock is the control: it hears nothing, so the checks that it fails show they can fail.
Prints one JSON object of measurements; the test asserts on them. Never run outside the namespace (it multicasts).
"""

from __future__ import annotations

import json
import time

import link

from bridge.audio.clocks import LinkClock, make_clock

QUANTUM = 4


def wait_for(condition, timeout_s: float) -> float | None:
    """Seconds until condition() held, or None after timeout_s."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if condition():
            return time.monotonic() - start
        time.sleep(0.002)
    return None


def same_moment(daw: link.Link) -> tuple[float, int]:
    """One instant on both clocks: time.monotonic() and the DAW peer's Link clock (microseconds)."""
    while True:  # retried where a thread switch fell between the reads
        before = time.monotonic()
        micros = daw.clock().micros()
        after = time.monotonic()
        if after - before < 1e-4:
            return (before + after) / 2, micros


def bar_agreement(clock: LinkClock, daw: link.Link) -> dict:
    """Where each peer is in the bar, and when each puts the next bar line, at one instant (the closest of five
    tries: the figure is the clocks' agreement, not this busy machine's scheduling)."""
    return min((one_agreement(clock, daw) for _ in range(5)), key=lambda a: abs(a["bar_line_error_s"]))


def one_agreement(clock: LinkClock, daw: link.Link) -> dict:
    mono, micros = same_moment(daw)
    reading = clock.reading(mono)
    state = daw.captureSessionState()
    daw_phase = state.phaseAtTime(micros, QUANTUM)
    ours_phase = reading.beat % reading.beats_per_bar
    ours_bar_s = reading.time_of_beat(reading.next_bar_beat())
    daw_next = state.beatAtTime(micros, QUANTUM) - daw_phase + QUANTUM
    daw_bar_s = mono + (state.timeAtBeat(daw_next, QUANTUM) - micros) / 1e6
    phase_error = (ours_phase - daw_phase + QUANTUM / 2) % QUANTUM - QUANTUM / 2
    return {"bpm": reading.bpm, "daw_bpm": state.tempo(), "playing": reading.playing,
            "phase_error_beats": phase_error, "bar_line_error_s": ours_bar_s - daw_bar_s}


def main() -> None:
    out: dict = {}
    ours = make_clock("link", bpm=120.0, beats_per_bar=QUANTUM)
    control = LinkClock(bpm=120.0, beats_per_bar=QUANTUM)
    control._link.enabled = False  # a peer that hears nothing
    daw = link.Link(100.0)
    daw.startStopSyncEnabled = True
    daw.enabled = True
    out["found_s"] = wait_for(lambda: ours.peers >= 1 and daw.numPeers() >= 1, 5.0)
    out["before"] = bar_agreement(ours, daw)

    state = daw.captureSessionState()  # the DAW changes tempo and presses play
    now = daw.clock().micros()
    state.setTempo(133.0, now)
    state.setIsPlaying(True, now)
    daw.commitSessionState(state)
    out["tempo_seen_s"] = wait_for(lambda: abs(ours.reading().bpm - 133.0) < 0.01, 3.0)
    out["playing_seen_s"] = wait_for(lambda: ours.reading().playing, 3.0)
    out["after"] = bar_agreement(ours, daw)
    out["control"] = bar_agreement(control, daw)

    # Ours changes the tempo: it lands at our next bar line, and the DAW follows from there.
    reading = ours.reading()
    bar = ours.set_tempo(90.0)
    line_s = reading.time_of_beat(bar * QUANTUM)
    out["set_tempo"] = {"bar": bar, "reading_bar": reading.bar_of(reading.beat), "line_in_s": line_s - time.monotonic()}
    time.sleep(max(0.0, line_s - time.monotonic() - 0.15))
    out["set_tempo"]["daw_bpm_before_line"] = daw.captureSessionState().tempo()
    out["set_tempo"]["daw_seen_s"] = wait_for(lambda: abs(daw.captureSessionState().tempo() - 90.0) < 0.01, 2.0)
    mono, micros = same_moment(daw)
    state = daw.captureSessionState()
    out["set_tempo"]["daw_beat_at_line"] = state.beatAtTime(micros - round((mono - line_s) * 1e6), QUANTUM)
    out["set_tempo"]["daw_phase_at_line"] = state.phaseAtTime(micros - round((mono - line_s) * 1e6), QUANTUM)
    out["settled"] = bar_agreement(ours, daw)

    state = daw.captureSessionState()  # the DAW stops
    state.setIsPlaying(False, daw.clock().micros())
    daw.commitSessionState(state)
    out["stop_seen_s"] = wait_for(lambda: not ours.reading().playing, 3.0)
    for peer in (ours, control):
        peer.close()
    daw.enabled = False
    print(json.dumps(out))


if __name__ == "__main__":
    main()
