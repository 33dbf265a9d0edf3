"""`continuo jam "prompt" --bpm 120`: start a jam in the running daemon, show it live, Ctrl-C stops it at a bar end.

The daemon makes and plays the jam (bridge/jobs/jams.py); this client only asks and watches, over OSC/UDP: it says
hello, sends /continuo/jam/start with the flags as settings, then keeps one line up to date on a terminal (the bar
playing, the lead over the playhead, the measured RTF, held bars; a held bar's reason on its own line) or, with
--json, prints every jam event as a JSON object. Ctrl-C sends /continuo/jam/stop: the jam ends with the bar playing,
the daemon writes the take, and the client prints its path (stdout) and exits 0. A refusal (a slow model without
--behind-ok, a used jam id, no such device) prints the daemon's reason and exits with the job commands' code for it.
`--list-devices` lists this machine's audio outputs (the daemon plays through its own machine's device).
"""

from __future__ import annotations

import argparse
import secrets
import signal
import sys
from typing import Any

from bridge.clients.commands import (
    EXIT_CODES,
    EXIT_CTRL_C,
    EXIT_NO_REPLY,
    EXIT_UNKNOWN_ERROR,
    EventPrinter,
    exit_code_for,
    parse_metre,
    say_hello,
)
from bridge.clients.osc import OscClient
from bridge.protocol.schema import load_schema
from bridge.settings import is_loopback

SILENCE_S = 30.0  # a playing jam says where it is every bar; this long without a word, the daemon is gone
JAM_EVENTS = ("/continuo/jam/chunk", "/continuo/jam/state", "/continuo/jam/scheduled", "/continuo/error")


def add_jam_command(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "jam", help="start a live jam in the running daemon (Ctrl-C stops it at a bar end)",
        description=__doc__.split("\n\n")[0])
    parser.add_argument("prompt", nargs="?", default="", help="what to play, e.g. \"dark techno\"")
    parser.add_argument("--bpm", type=float, default=None, help="tempo (internal clock; default: the session's)")
    parser.add_argument("--metre", type=parse_metre, default=None, help="time signature, e.g. 4/4 or 7/8")
    parser.add_argument("--preset", default="default")
    parser.add_argument("--clock", choices=["internal", "midi", "host", "link"], default="internal",
                        help="internal (this tempo), midi (the daemon's --midi input), host (the DAW's transport "
                             "from the Max for Live or Pd client), link (Ableton Link: pip install 'continuo[link]')")
    parser.add_argument("--device", default=None, help="audio output device (name or index; see --list-devices)")
    parser.add_argument("--block", type=int, default=None, help="the device's block size in frames")
    parser.add_argument("--latency", type=float, default=None, help="the device's output latency in seconds")
    parser.add_argument("--outputs", default=None,
                        help="device,clients,record (default: device,clients,record on this machine's daemon, "
                             "clients,record on another's)")
    parser.add_argument("--temperature", type=float, default=None)
    parser.add_argument("--guidance", type=float, default=None, help="classifier-free guidance (guidance_scale)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--context-bars", type=int, default=None, help="bars of its own codes each bar continues")
    parser.add_argument("--lookahead-bars", type=int, default=None, help="bars made ahead (default 0: adapt)")
    parser.add_argument("--behind-ok", action="store_true",
                        help="start even when the model cannot keep up (bars are held while it catches up)")
    parser.add_argument("--jam-id", default=None, help="default: a new jam-<random> id")
    parser.add_argument("--list-devices", action="store_true", help="list this machine's audio outputs and exit")
    parser.add_argument("--host", default="127.0.0.1", help="the daemon's address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=9000, help="the daemon's OSC port (default 9000)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per event on stdout")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the first bar")


def start_settings(ns: argparse.Namespace) -> list[Any]:
    """The flags as /continuo/jam/start settings (name, value pairs)."""
    outputs = ns.outputs or ("device,clients,record" if is_loopback(ns.host) else "clients,record")
    pairs: list[Any] = ["clock", ns.clock, "outputs", outputs]
    named = {"preset": ns.preset, "bpm": ns.bpm, "temperature": ns.temperature, "guidance_scale": ns.guidance,
             "seed": ns.seed, "context_bars": ns.context_bars, "lookahead_bars": ns.lookahead_bars,
             "device": ns.device, "block": ns.block, "latency": ns.latency}
    if ns.metre is not None:
        named["beats_per_bar"] = ns.metre[0]
    if ns.behind_ok:
        named["behind_ok"] = 1
    for name, value in named.items():
        if value is not None and name != "preset":
            pairs += [name, float(value) if name in ("bpm", "temperature", "guidance_scale", "latency") else value]
    return pairs


def live_line(state: list[Any]) -> str:
    """The terminal's one line: 'bar 12  lead 3.1 s  RTF 0.42  lookahead 1  held 0  playing'."""
    _jam, name, bar, lead_s, rtf, lookahead, underruns, held, _message = state
    return (f"bar {bar:>4}  lead {lead_s:4.1f} s  RTF {rtf:4.2f}  lookahead {lookahead}  held {held}"
            f"{f' ({underruns} late)' if underruns else ''}  {name}")


def run_jam(ns: argparse.Namespace, *, client_factory=OscClient) -> int:
    if ns.list_devices:
        from bridge.audio.playback import describe_devices

        print(describe_devices())
        return 0
    schema = load_schema()
    printer = EventPrinter(schema, as_json=ns.json)
    jam_id = ns.jam_id or f"jam-{secrets.token_hex(4)}"
    with client_factory(ns.host, ns.port, name="continuo-jam", schema=schema) as client:
        if say_hello(client, printer, ns) is None:
            return EXIT_NO_REPLY
        client.send("/continuo/jam/start", jam_id, ns.prompt, "preset", ns.preset, *start_settings(ns))
        stopping = False
        previous = signal.getsignal(signal.SIGINT)

        def on_ctrl_c(_signum: int, _frame: Any) -> None:
            nonlocal stopping
            if stopping:
                raise KeyboardInterrupt
            stopping = True
            client.send("/continuo/jam/stop", jam_id)
            printer.note("stopping", f"stopping {jam_id} at the end of the bar playing (Ctrl-C again: leave "
                         "now; the daemon still stops it)", jam_id=jam_id)

        signal.signal(signal.SIGINT, on_ctrl_c)
        try:
            return watch(client, printer, jam_id, ns)
        except KeyboardInterrupt:
            return EXIT_CTRL_C
        finally:
            signal.signal(signal.SIGINT, previous)
            if not printer.as_json:
                print(file=sys.stderr)


def watch(client: OscClient, printer: EventPrinter, jam_id: str, ns: argparse.Namespace) -> int:
    """Until the jam stops or fails: the live line, or JSON events. The exit status."""
    playing = False
    while True:
        wait_s = SILENCE_S if playing else ns.timeout
        try:
            address, args = client.wait_for(lambda a, args: a in JAM_EVENTS and args[:1] == [jam_id], wait_s)
        except TimeoutError:
            what = "no word" if playing else "no bar"
            printer.note("error", f"{what} from {jam_id} within {wait_s:g} s: is `continuo serve` still running?",
                         code="no_reply")
            return EXIT_NO_REPLY
        if printer.as_json:
            printer.event(address, args)
        if address == "/continuo/error":
            printer.note("error", f"{args[1]}: {args[2]}", code=args[1])
            return exit_code_for(args[1]) if args[1] in EXIT_CODES else EXIT_UNKNOWN_ERROR
        if address != "/continuo/jam/state":
            continue
        state, message = args[1], args[8]
        playing = playing or state in ("playing", "stopping")
        if not printer.as_json:
            end = "\n" if state in ("stopped", "failed") else ""
            print(f"\r{live_line(args)}", end=end, file=sys.stderr, flush=True)
            if message and state not in ("stopped", "failed") and "fell behind" in message:
                print(f"\ncontinuo: {message}", file=sys.stderr, flush=True)
        if state == "failed":
            printer.note("error", f"the jam failed: {message}", code="model_error")
            return EXIT_CODES["model_error"]
        if state == "stopped":
            if message.startswith("take: ") and not printer.as_json:
                print(message.removeprefix("take: "), flush=True)
            return 0
