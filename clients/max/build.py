"""Writes clients/max/continuo.maxpat (Max 8/9) and clients/max/Continuo.amxd (Max for Live audio effect).

    python clients/max/build.py          # rewrite both
    python clients/max/build.py --check  # exit 1 when a committed file differs from what this script writes

Both patches are described here, once, from osc_schema/continuo.json: the events the daemon sends are read
from the schema (each gets a [route] outlet), and every request goes out through [pack <types>] ->
[prepend <address>] -> [udpsend], so its OSC types are the schema's. Max cannot run here: tests/clients/test_max.py
checks the files structurally (objects and their inlet/outlet counts, patch lines, every message against the
schema, every event routed, the reply port, the .amxd header).

The device follows Live's tempo, time signature and (Live 12) root note and scale with live.path live_set +
live.observer, takes a dropped clip (live.drop) for continue, variations and stems, and puts each finished output
into the next clip slot of an audio track it creates (ClipSlot.create_audio_clip, Live 12); every output is
also listed in a menu, so on Live 11 the file can be dragged in from there. The plain patch does the same with
[transport] and [dropfile], and auditions outputs in [buffer~] / [play~].
"""

from __future__ import annotations

import json
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SCHEMA = json.loads((ROOT / "osc_schema" / "continuo.json").read_text())
MAXPAT = HERE / "continuo.maxpat"
AMXD = HERE / "Continuo.amxd"
DAEMON_PORT = 9000
REPLY_PORT = 9002  # the Pd patch listens on 9001: both can run beside each other

# Inlet and outlet counts of every object the patches use, as Max creates them: fixed counts from Cycling '74's
# reference pages (the .maxref.xml files, as bundled by shakfu/py2max in py2max/maxref/data/bundle.json.gz);
# live.path, live.observer, live.object and udpsend, which those pages leave out, as Max saves them in public
# .maxpat files (live.path live_set 1/3, live.observer 2/2, live.object 2/1, udpsend 1/0). Objects whose counts
# depend on their arguments are computed by box_counts below, from the same reference pages' rules.
FIXED_COUNTS: dict[str, tuple[int, int]] = {
    "loadbang": (1, 1), "udpreceive": (1, 1), "udpsend": (1, 0), "print": (1, 0), "prepend": (1, 1),
    "tosymbol": (1, 1), "conformpath": (1, 2), "date": (1, 3), "zl.reg": (2, 2), "zl.lookup": (2, 2),
    "dropfile": (1, 2), "transport": (2, 9), "buffer~": (1, 2), "play~": (1, 2), "ezdac~": (2, 0),
    "dspstate~": (1, 4), "live.thisdevice": (1, 3), "live.path": (1, 3), "live.observer": (2, 2),
    "live.object": (2, 1), "live.drop": (1, 2), "plugin~": (2, 2), "plugout~": (2, 2), "metro": (2, 1),
    "deferlow": (1, 1), "counter": (5, 4), "random": (2, 1),
    # boxes that are not newobj: their maxclass
    "message": (2, 1), "comment": (1, 0), "number": (1, 2), "flonum": (1, 2), "umenu": (1, 3),
    "textedit": (1, 4), "textbutton": (1, 3), "live.text": (1, 2), "live.numbox": (1, 2),
}
UI_CLASSES = ("message", "comment", "number", "flonum", "umenu", "textedit", "textbutton", "live.text",
              "live.numbox", "live.drop")


def box_counts(maxclass: str, text: str) -> tuple[int, int]:
    """(inlets, outlets) of a box. KeyError for an object not in the table."""
    if maxclass != "newobj":
        return FIXED_COUNTS[maxclass]
    name, *args = text.split()
    if name in ("t", "trigger"):
        return 1, len(args)
    if name == "route":
        return 2, len(args) + 1
    if name == "pack":
        return len(args), 1
    if name == "unpack":
        return 1, len(args)
    if name in ("sel", "select"):
        return (2 if len(args) == 1 else 1), len(args) + 1
    if name == "sprintf":
        specs = sum(1 for arg in args for _ in range(arg.count("%")))
        return max(specs, 1), 1
    if name in ("+", "-", "/", "*"):
        return 2, 1
    return FIXED_COUNTS[name]


@dataclass
class Patcher:
    """Boxes and lines by name; patcher() writes Max's JSON."""

    boxes: dict[str, dict] = field(default_factory=dict)
    lines: list[tuple[str, int, str, int]] = field(default_factory=list)
    y: dict[int, int] = field(default_factory=dict)

    def add(self, key: str, text: str, x: int, maxclass: str = "newobj", attributes: dict | None = None) -> str:
        assert key not in self.boxes, key
        y = self.y.get(x, 20)
        self.y[x] = y + 30
        inlets, outlets = box_counts(maxclass, text)
        box = {"id": f"obj-{key}", "maxclass": maxclass, "numinlets": inlets, "numoutlets": outlets,
               "outlettype": [""] * outlets, "patching_rect": [float(x), float(y), 150.0, 22.0]}
        if maxclass in ("newobj", "message", "comment"):
            box["text"] = text
        box.update(attributes or {})
        self.boxes[key] = box
        return key

    def wire(self, source: str, outlet: int, sink: str, inlet: int = 0) -> None:
        self.lines.append((source, outlet, sink, inlet))

    def chain(self, *keys: str) -> None:
        for source, sink in zip(keys, keys[1:]):
            self.wire(source, 0, sink, 0)

    def patcher(self, *, device: bool) -> dict:
        missing = [line for line in self.lines if line[0] not in self.boxes or line[2] not in self.boxes]
        assert not missing, f"lines to boxes that do not exist: {missing}"
        return {"patcher": {
            "fileversion": 1,
            "appversion": {"major": 8, "minor": 6, "revision": 0, "architecture": "x64", "modernui": 1},
            "classnamespace": "box", "rect": [100.0, 100.0, 1500.0, 900.0], "openinpresentation": 0,
            "default_fontsize": 12.0, "default_fontface": 0, "default_fontname": "Arial", "gridsize": [15.0, 15.0],
            "devicewidth": 600.0 if device else 0.0,
            "description": "Continuo: generate, continue, variations and stems from the Continuo daemon over OSC",
            "boxes": [{"box": box} for box in self.boxes.values()],
            "lines": [{"patchline": {"source": [f"obj-{a}", o], "destination": [f"obj-{b}", i]}}
                      for a, o, b, i in self.lines],
        }}


def request(p: Patcher, key: str, address: str, pack_args: str, x: int) -> str:
    """[pack <types>] -> [prepend <address>] -> udpsend; returns the pack's key."""
    p.add(f"{key}-pack", f"pack {pack_args}", x)
    p.add(f"{key}-address", f"prepend {address}", x)
    p.chain(f"{key}-pack", f"{key}-address", "udpsend")
    return f"{key}-pack"


def new_job_id(p: Patcher, key: str, x: int) -> str:
    """A button's bang -> a fresh job id, max-<YYYYMMDD>-<HHMMSS>-<random 0..999999>: the calendar date and time
    (not [date]'s ticks, which restart with the machine: after a reboot a new prompt got an old take) and a
    random number, so ids differ across reboots and across two machines in the same second.

    [t b b b] fires right to left: the random number and the time fill sprintf's cold inlets, then the date: its
    month and day go to their inlets first ([t l l]'s right outlet), its year last, into the hot inlet."""
    p.add(f"{key}-ticks", "t b b b", x)
    p.add(f"{key}-random", "random 1000000", x)
    p.add(f"{key}-ask-time", "time", x, "message")
    p.add(f"{key}-ask-date", "date", x, "message")
    p.add(f"{key}-date", "date", x)
    p.add(f"{key}-hms", "unpack i i i", x)
    p.add(f"{key}-ymd", "t l l", x)
    p.add(f"{key}-md", "unpack i i i", x)
    p.add(f"{key}-year", "$3", x, "message")
    p.add(f"{key}-id", "sprintf symout max-%04ld%02ld%02ld-%02ld%02ld%02ld-%06ld", x)
    p.add(f"{key}-id-tee", "t s s", x)
    p.wire(f"{key}-ticks", 2, f"{key}-random")
    p.wire(f"{key}-random", 0, f"{key}-id", 6)
    p.wire(f"{key}-ticks", 1, f"{key}-ask-time")
    p.wire(f"{key}-ticks", 0, f"{key}-ask-date")
    p.wire(f"{key}-ask-time", 0, f"{key}-date")
    p.wire(f"{key}-ask-date", 0, f"{key}-date")
    p.wire(f"{key}-date", 1, f"{key}-hms")  # hour minute second
    for n in range(3):
        p.wire(f"{key}-hms", n, f"{key}-id", 3 + n)
    p.wire(f"{key}-date", 0, f"{key}-ymd")  # month day year
    p.wire(f"{key}-ymd", 1, f"{key}-md")
    p.wire(f"{key}-md", 0, f"{key}-id", 1)
    p.wire(f"{key}-md", 1, f"{key}-id", 2)
    p.wire(f"{key}-ymd", 0, f"{key}-year")
    p.wire(f"{key}-year", 0, f"{key}-id", 0)
    p.chain(f"{key}-id", f"{key}-id-tee")
    p.wire(f"{key}-id-tee", 1, "current-job", 1)  # cancel acts on the newest job
    return f"{key}-id-tee"


def job_request(p: Patcher, key: str, signature: str, pack_args: str, x: int,
                sources: tuple[tuple[str, int], ...]) -> str:
    """A job request (``signature``: its address, then its arguments): its button makes a fresh job id for the
    pack's first inlet; ``sources`` (box, outlet) feed the next inlets in order. Returns the pack's key."""
    pack = request(p, key, signature.split()[0], pack_args, x)
    p.wire(f"{key}-button", 0, f"{key}-ticks")
    p.wire(new_job_id(p, key, x), 0, pack, 0)
    for inlet, (source, outlet) in enumerate(sources, start=1):
        p.wire(source, outlet, pack, inlet)
    return pack


def network(p: Patcher) -> None:
    """udpsend / udpreceive, hello at load, and every event the daemon sends routed somewhere."""
    p.add("udpsend", f"udpsend 127.0.0.1 {DAEMON_PORT}", 20)
    p.add("udpreceive", f"udpreceive {REPLY_PORT}", 20)
    p.add("hello", f"/continuo/hello max {REPLY_PORT}", 200, "message")
    p.add("ask-presets", "/continuo/presets", 200, "message")
    p.wire("hello", 0, "udpsend")
    p.wire("ask-presets", 0, "udpsend")
    events = sorted(SCHEMA["events"])
    p.add("events", "route " + " ".join(events), 20)
    p.wire("udpreceive", 0, "events")
    p.add("log", "print continuo", 400)
    for n, address in enumerate(events):
        p.wire("events", n, "log")  # everything the daemon says shows in the Max console
    p.wire("events", len(events), "log")
    outlet = {address: n for n, address in enumerate(events)}
    # queue position and progress
    p.add("queued", "unpack s i f", 560)
    p.add("queue-box", "", 560, "number")
    p.wire("events", outlet["/continuo/queued"], "queued")
    p.wire("queued", 1, "queue-box")
    p.add("progress", "unpack s f s", 700)
    p.add("progress-box", "", 700, "flonum")
    p.add("stage", "prepend set", 700)
    p.add("stage-box", "", 700, "message")
    p.wire("events", outlet["/continuo/progress"], "progress")
    p.wire("progress", 1, "progress-box")
    p.wire("progress", 2, "stage")
    p.chain("stage", "stage-box")
    # errors: shown, and acknowledged when about a job
    p.add("error", "unpack s s s", 860)
    p.add("error-text", "prepend set", 860)
    p.add("error-box", "", 860, "message")
    p.wire("events", outlet["/continuo/error"], "error")
    p.wire("error", 2, "error-text")
    p.chain("error-text", "error-box")
    p.add("error-job", "t b s", 1000)
    p.add("error-job-keep", "zl.reg", 1000)
    p.wire("error", 0, "error-job")
    p.wire("error-job", 1, "error-job-keep", 1)
    p.wire("error-job", 0, "error-job-keep")
    p.add("ack-error", "pack max", 1000)
    p.wire("error-job-keep", 0, "ack-error")
    # done: the seed shown, then acknowledged
    p.add("done", "unpack s i i f", 1150)
    p.add("seed-box", "", 1150, "number")
    p.wire("events", outlet["/continuo/done"], "done")
    p.wire("done", 2, "seed-box")
    p.add("ack", "prepend /continuo/ack", 1000)
    p.wire("done", 0, "ack")
    p.wire("ack-error", 0, "ack")
    p.wire("ack", 0, "udpsend")
    # presets: the daemon lists them after welcome; the menu offers them
    p.add("welcome", "t b b", 200)
    p.add("clear-presets", "clear", 200, "message")
    p.wire("events", outlet["/continuo/welcome"], "welcome")
    p.wire("welcome", 1, "clear-presets")
    p.wire("welcome", 0, "ask-presets")
    p.add("preset-item", "unpack s s", 200)
    p.add("preset-append", "prepend append", 200)
    p.add("preset-menu", "", 200, "umenu")
    p.wire("events", outlet["/continuo/presets"], "preset-item")
    p.chain("preset-item", "preset-append", "preset-menu")
    p.wire("clear-presets", 0, "preset-menu")
    p.add("outputs", "unpack s s s i i f f f f", 1300)
    p.wire("events", outlet["/continuo/output"], "outputs")
    p.add("output-list", "prepend append", 1300)
    p.add("output-menu", "", 1300, "umenu")
    p.wire("outputs", 2, "output-list")
    p.chain("output-list", "output-menu")  # every output listed: pick one, drag its path into the DAW
    # the rest are shown in the console only: context, status, limits, models, adapters, pong, partial, slot
    for address in ("/continuo/context", "/continuo/status", "/continuo/limits", "/continuo/models",
                    "/continuo/adapters", "/continuo/pong", "/continuo/partial", "/continuo/slot"):
        assert address in outlet, address


def controls(p: Patcher, file_source: str) -> None:
    """Prompt, bars, preset, generate, continue, variations, stems and cancel; file_source gives a dropped path."""
    p.add("current-job", "zl.reg", 1450)
    p.add("prompt", "", 20, "textedit")
    p.add("prompt-symbol", "tosymbol", 20)
    p.wire("prompt", 0, "prompt-symbol")
    p.add("bars", "", 150, "number")
    p.add("bars-float", "t f", 150)
    p.wire("bars", 0, "bars-float")
    p.add("count", "", 260, "number")
    p.add("path", "conformpath slash boot", 400)
    p.wire(file_source, 0, "path")  # Max paths (Macintosh HD:/Users/...) become /Users/...
    p.add("path-keep", "t s", 400)
    p.wire("path", 0, "path-keep")
    for key, label in (("generate", "Generate"), ("continue", "Continue"), ("variations", "Variations"),
                       ("stems", "Stems"), ("cancel", "Cancel")):
        p.add(f"{key}-button", label, 560, "textbutton", {"text": label})
    preset, bars = ("preset-menu", 1), ("bars-float", 0)
    job_request(p, "generate", "/continuo/generate <job> <preset> <prompt> <bars>", "max default piano 4.", 560,
                (preset, ("prompt-symbol", 0), bars))
    job_request(p, "continue", "/continuo/continue <job> <preset> <path> <bars>", "max default none 4.", 760,
                (preset, ("path-keep", 0), bars))
    job_request(p, "variations", "/continuo/variations <job> <preset> <path> <count> <bars>", "max default none 4 4.",
                960, (preset, ("path-keep", 0), ("count", 0), bars))
    job_request(p, "stems", "/continuo/stems <job> <path> <stems>", "max none drums,bass,other,vocals", 1160,
                (("path-keep", 0),))
    # /continuo/cancel <job>: the newest job
    cancel = request(p, "cancel", "/continuo/cancel", "max", 1450)
    p.wire("cancel-button", 0, "current-job")
    p.wire("current-job", 0, cancel, 0)


def context(p: Patcher) -> str:
    """/continuo/context <bpm> <beats_per_bar> <beat_unit> <key> <sample_rate>: bpm is the hot inlet; the
    others store, then re-send. Returns the pack's key."""
    pack = request(p, "context", "/continuo/context", "120. 4 4 C 48000", 20)
    for inlet, name in ((1, "beats"), (2, "unit"), (3, "key"), (4, "rate")):
        p.add(f"context-{name}", "t b s" if name == "key" else "t b i", 20)
        p.wire(f"context-{name}", 1, pack, inlet)
        p.wire(f"context-{name}", 0, pack, 0)
    p.add("context-rate-source", "dspstate~", 20)
    p.wire("context-rate-source", 1, "context-rate")
    return pack


def device() -> Patcher:
    """The Max for Live audio effect: audio passes through; Live's set drives the context."""
    p = Patcher()
    p.add("plugin", "plugin~", 20)
    p.add("plugout", "plugout~", 20)
    p.wire("plugin", 0, "plugout", 0)
    p.wire("plugin", 1, "plugout", 1)
    p.add("drop", "", 400, "live.drop")
    network(p)
    controls(p, "drop")
    pack = context(p)
    # Live's tempo, time signature, root note and scale (Live 12)
    p.add("device", "live.thisdevice", 150)
    p.add("device-ready", "t b b", 150)
    p.add("set-path", "path live_set", 150, "message")
    p.add("live-set", "live.path live_set", 150)
    p.wire("device", 0, "device-ready")
    p.wire("device-ready", 1, "set-path")
    p.wire("device-ready", 0, "hello")
    p.chain("set-path", "live-set")
    observed = ("tempo", "signature_numerator", "signature_denominator", "root_note", "scale_name")
    for name in observed:
        p.add(f"observe-{name}", f"live.observer {name}", 150 + 160 * observed.index(name))
        p.wire("live-set", 0, f"observe-{name}", 1)
    p.add("tempo", "t f", 150)
    p.wire("observe-tempo", 0, "tempo")
    p.wire("tempo", 0, pack, 0)
    p.wire("observe-signature_numerator", 0, "context-beats")
    p.wire("observe-signature_denominator", 0, "context-unit")
    # key: root note 0..11 -> a name; Major / Minor -> major / minor; other scales -> the root alone
    p.add("root-name", "zl.lookup C C# D D# E F F# G G# A A# B", 790)
    p.add("key-parts", "pack C major", 790)  # other scales keep the last major or minor
    p.add("scale", "route Major Minor", 950)
    p.add("major", "major", 950, "message")
    p.add("minor", "minor", 950, "message")
    p.add("key-symbol", "tosymbol", 790)
    p.wire("observe-root_note", 0, "root-name")
    p.wire("root-name", 0, "key-parts")
    p.wire("observe-scale_name", 0, "scale")
    p.wire("scale", 0, "major")
    p.wire("scale", 1, "minor")
    p.wire("major", 0, "key-parts", 1)
    p.wire("minor", 0, "key-parts", 1)
    p.chain("key-parts", "key-symbol", "context-key")
    # each output into the next clip slot of an audio track this device creates at index 0 (Live 12)
    p.add("clip-track", "call create_audio_track 0", 1300, "message")
    p.add("clip-set", "live.object", 1300)
    p.wire("live-set", 0, "clip-set", 1)
    p.wire("clip-track", 0, "clip-set")
    p.add("first-output", "t s b", 1300)
    p.wire("outputs", 2, "first-output")
    p.add("slot-count", "counter", 1300)
    p.wire("first-output", 1, "slot-count")
    p.add("slot-path", "sprintf path live_set tracks 0 clip_slots %ld", 1300)  # the track made below
    p.add("slot", "live.path", 1300)
    p.add("clip", "live.object", 1300)
    p.add("create-clip", "prepend call create_audio_clip", 1300)
    p.add("slot-order", "t i i", 1300)
    p.chain("slot-count", "slot-order")
    p.wire("slot-order", 0, "slot-path")
    p.chain("slot-path", "slot")
    p.wire("slot", 0, "clip", 1)
    p.wire("first-output", 0, "create-clip")
    p.chain("create-clip", "clip")
    p.add("track-first", "sel 0", 1450)
    p.wire("slot-order", 1, "track-first")  # the first output makes the track (at index 0) before its path
    p.wire("track-first", 0, "clip-track")
    return p


def plain() -> Patcher:
    """The plain Max patch: the transport's tempo and metre, dropped files, outputs auditioned in buffer~."""
    p = Patcher()
    p.add("start", "loadbang", 150)
    p.wire("start", 0, "hello")
    p.add("drop", "", 400, "dropfile")
    network(p)
    controls(p, "drop")
    pack = context(p)
    p.add("poll", "metro 500", 150)
    p.add("transport", "transport", 150)
    p.wire("start", 0, "poll")
    p.chain("poll", "transport")
    p.add("tempo", "t f", 150)
    p.wire("transport", 4, "tempo")
    p.wire("tempo", 0, pack, 0)
    p.add("metre", "unpack i i", 150)
    p.wire("transport", 5, "metre")
    p.wire("metre", 1, "context-unit")
    p.wire("metre", 0, "context-beats")
    # audition: each output replaces the buffer; click Play
    p.add("buffer-read", "prepend replace", 1300)
    p.add("buffer", "buffer~ continuo-out", 1300)
    p.wire("outputs", 2, "buffer-read")
    p.chain("buffer-read", "buffer")
    p.add("play-button", "Play", 1450, "textbutton", {"text": "Play"})
    p.add("play-start", "start", 1450, "message")
    p.add("player", "play~ continuo-out", 1450)
    p.add("dac", "ezdac~", 1450)
    p.chain("play-button", "play-start", "player")
    p.wire("player", 0, "dac", 0)
    p.wire("player", 0, "dac", 1)
    return p


def amxd(patcher: dict, device_type: bytes = b"aaaa") -> bytes:
    """The .amxd container: 'ampf', a 4-byte little-endian 4, the device type ('aaaa' audio effect),
    a 'meta' chunk of 4 zero bytes, then a 'ptch' chunk holding the patcher JSON."""
    payload = json.dumps(patcher, indent=1).encode() + b"\n\x00"
    return (b"ampf" + struct.pack("<I", 4) + device_type + b"meta" + struct.pack("<I", 4) + b"\x00" * 4
            + b"ptch" + struct.pack("<I", len(payload)) + payload)


def render() -> dict[Path, bytes]:
    maxpat = json.dumps(plain().patcher(device=False), indent=1) + "\n"
    return {MAXPAT: maxpat.encode(), AMXD: amxd(device().patcher(device=True))}


if __name__ == "__main__":
    files = render()
    if "--check" in sys.argv[1:]:
        stale = [path.name for path, data in files.items() if not path.exists() or path.read_bytes() != data]
        sys.exit(f"stale: {', '.join(stale)}; run python clients/max/build.py" if stale else 0)
    for path, data in files.items():
        path.write_bytes(data)
        print(f"wrote {path}")
