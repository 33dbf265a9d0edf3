"""End to end: a jam over OSC against `continuo serve` on the tiny model (noise, not music): bar chunks of exact
lengths at the clock's bar lines, a prompt change heard from the next bar on, stop at a bar end, the recording."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bridge.audio import clocks
from bridge.clients.osc import OscClient

pytestmark = [pytest.mark.slow, pytest.mark.serial, pytest.mark.skipif(
    not hasattr(clocks, "make_clock"), reason="needs bridge/audio/clocks.py:make_clock (the clock helper's work, #25)")]

BPM = 190.0  # a bar is 40421.05 samples at 32 kHz: not whole, the remainder must be carried
RATE = 32_000
EXACT = 4 * 60.0 / BPM * RATE
TIMEOUT_S = 30.0


def chunk_of(jam_id: str, bar: int | None = None):
    return lambda address, args: address == "/continuo/jam/chunk" and args[0] == jam_id and (
        bar is None or args[1] == bar)


def state_of(jam_id: str, state: str):
    return lambda address, args: address == "/continuo/jam/state" and args[0] == jam_id and args[1] == state


def test_a_jam_plays_bar_exact_chunks_takes_a_prompt_at_the_next_bar_and_stops_at_a_bar_end(
        osc_client: OscClient, daemon_process, daemon_root):
    osc_client.send("/continuo/jam/start", "jam-e2e", "dark techno", "bpm", BPM, "lookahead_bars", 1,
                    "guidance_scale", 1.0, "behind_ok", 1)  # the smoke model's warm-up figure swings with the load
    osc_client.wait_for(state_of("jam-e2e", "starting"), TIMEOUT_S)
    chunks = [osc_client.wait_for(chunk_of("jam-e2e", 0), TIMEOUT_S)[1]]
    osc_client.wait_for(state_of("jam-e2e", "playing"), TIMEOUT_S)
    osc_client.send("/continuo/jam/control", "jam-e2e", "prompt", "ambient pad")
    _, (jam_id, name, value, landing) = osc_client.wait_for(
        lambda address, args: address == "/continuo/jam/scheduled" and args[1] == "prompt", TIMEOUT_S)
    assert (jam_id, value) == ("jam-e2e", "ambient pad") and landing >= 1
    for bar in range(1, landing + 1):
        chunks.append(osc_client.wait_for(chunk_of("jam-e2e", bar), TIMEOUT_S)[1])
    osc_client.send("/continuo/jam/stop", "jam-e2e")
    _, (_, _, _, last) = osc_client.wait_for(
        lambda address, args: address == "/continuo/jam/scheduled" and args[1] == "stop", TIMEOUT_S)
    _, stopping = osc_client.wait_for(state_of("jam-e2e", "stopping"), TIMEOUT_S)
    assert stopping[2] == last - 1  # the last bar to sound: a client drops any later one it holds
    for bar in range(landing + 1, last):
        chunks.append(osc_client.wait_for(chunk_of("jam-e2e", bar), TIMEOUT_S)[1])
    _, stopped = osc_client.wait_for(state_of("jam-e2e", "stopped"), TIMEOUT_S)
    made = chunks + [args for event in osc_client.drain() if chunk_of("jam-e2e")(*event) for args in [event[1]]]
    dropped = [args for args in made if args[1] >= last]  # handed out ahead before the stop: never heard
    chunks = sorted((args for args in made if args[1] < last), key=lambda args: args[1])

    bars = [args[1] for args in chunks]
    assert bars == list(range(last))
    for args in made:  # the old prompt id before the bar the change landed on, the new one from it
        assert (args[5] == 0) == (args[1] < landing), (landing, [(a[1], a[5]) for a in made])
    starts = [args[2] for args in chunks]
    assert starts[0] % 4 == 0 and starts == [starts[0] + 4 * bar for bar in bars]  # on the clock's bar lines
    lengths = [sf.info(args[7]).frames for args in chunks]
    assert [round(args[9] * RATE) for args in chunks] == lengths and {args[10] for args in chunks} == {RATE}
    ends = np.cumsum(lengths)
    assert np.abs(ends - EXACT * np.arange(1, len(ends) + 1)).max() <= 0.5  # no drift: the remainder carried
    assert set(lengths) == {int(EXACT), int(EXACT) + 1} or len(lengths) < 3

    folder = daemon_root / "renders" / "jam-e2e"
    assert all(Path(args[7]).parent == folder / "bars" for args in chunks)
    take = Path(stopped[8].removeprefix("take: "))
    assert take.parent == folder and take.name.startswith("dark-techno_") and sf.info(take).frames == ends[-1]
    for args in dropped:  # out of the take, kept aside (never deleted)
        assert (folder / "unplayed" / Path(args[7]).name).is_file()

    with urllib.request.urlopen(daemon_process.http_url.rstrip("/") + chunks[-1][8], timeout=10) as response:
        assert response.read() == Path(chunks[-1][7]).read_bytes()  # the chunk's url serves its bar's WAV

    osc_client.send("/continuo/jam/start", "jam-e2e", "again")  # a used id: refused, never the old jam
    _, error = osc_client.wait_for(lambda address, args: address == "/continuo/error" and args[0] == "jam-e2e",
                                   TIMEOUT_S)
    assert error[1] == "id_conflict" and "new jam id" in error[2]
    osc_client.send("/continuo/jam/control", "jam-e2e", "prompt", "late")  # control: a stopped jam takes none
    _, error = osc_client.wait_for(lambda address, args: address == "/continuo/error" and args[0] == "jam-e2e",
                                   TIMEOUT_S)
    assert error[1] == "bad_request" and "stopped" in error[2]


def test_continuo_jam_plays_until_ctrl_c_then_stops_at_a_bar_end_and_prints_the_take(daemon_process, daemon_root):
    import os
    import signal
    import subprocess
    import sys
    import time

    command = [sys.executable, "-m", "bridge.cli", "jam", "warm lo-fi keys", "--bpm", str(BPM), "--host",
               daemon_process.host, "--port", str(daemon_process.port), "--outputs", "clients,record",
               "--behind-ok", "--guidance", "1", "--lookahead-bars", "1", "--jam-id", "jam-cli"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    bars = daemon_root / "renders" / "jam-cli" / "bars"
    deadline = time.monotonic() + TIMEOUT_S
    while not (bars.is_dir() and len(list(bars.glob("bar-*.wav"))) >= 2):
        assert time.monotonic() < deadline and process.poll() is None, process.stderr.read()
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)  # Ctrl-C: stop at the end of the bar playing
    out, err = process.communicate(timeout=TIMEOUT_S)
    assert process.returncode == 0, err
    take = Path(out.strip().splitlines()[-1])
    assert take.parent == daemon_root / "renders" / "jam-cli" and take.name.startswith("warm-lofi-keys_")
    assert "RTF" in err and "lead" in err and "stopped" in err and "noise, not music" in err
    assert sf.info(take).frames == sum(sf.info(bar).frames for bar in bars.glob("bar-*.wav"))


def test_a_zeromq_client_gets_each_bar_as_inline_pcm(daemon_process):
    """Over ZeroMQ every bar carries its PCM (to the jam's client and on PUB under the jam id), with its bar number,
    start beat, bpm and prompt id: the bar's WAV in the recording, sample for sample."""
    import time

    from bridge.clients.zmq import ZmqClient, parse_reply

    with ZmqClient(daemon_process.zmq_endpoint) as client:
        sub = client.subscribe(daemon_process.zmq_pub_endpoint, b"jam-zmq")
        time.sleep(0.3)  # a PUB drops what is sent before the subscription lands
        client.request("jam_start", {"jam_id": "jam-zmq", "prompt": "dark techno"},
                       {"bpm": BPM, "lookahead_bars": 1, "guidance_scale": 1.0, "behind_ok": 1})
        bars = []
        for bar in range(2):
            reply = client.wait_for(lambda r, bar=bar: r.event == "jam/chunk" and r.args["bar"] == bar, TIMEOUT_S)
            recorded, rate = sf.read(reply.args["path"], dtype="float32", always_2d=True)  # before the stop
            bars.append((reply, recorded))
        assert sub.poll(int(TIMEOUT_S * 1000))
        published = parse_reply(sub.recv_multipart())
        while published.event != "jam/chunk":
            assert sub.poll(int(TIMEOUT_S * 1000))
            published = parse_reply(sub.recv_multipart())
        client.request("jam_stop", {"jam_id": "jam-zmq"})
        client.wait_for(lambda r: r.event == "jam/state" and r.args["state"] == "stopped", TIMEOUT_S)
        sub.close(0)
    for reply, recorded in bars:
        assert rate == RATE and reply.header["pcm"]["sample_rate"] == RATE
        assert len(reply.pcm) == 1 and np.array_equal(reply.pcm[0], recorded)
        assert reply.args["start_beat"] == bars[0][0].args["start_beat"] + 4 * reply.args["bar"]
        assert reply.args["bpm"] == pytest.approx(BPM) and reply.args["prompt_id"] == 0
    first = bars[0][0]
    assert published.args["bar"] == 0 and np.array_equal(published.pcm[0], first.pcm[0])  # the subscriber's copy
