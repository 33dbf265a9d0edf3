"""Writes clients/max/continuo.maxpat (Max 8/9) and clients/max/Continuo.amxd (Max for Live audio effect).

    python clients/max/build.py            # rewrite both
    python clients/max/build.py --check    # exit 1 when a committed file differs from what this script writes,
                                           #   or when either disagrees with real Max (maxref.py)
    python clients/max/build.py --vendor ../shared/maxref/objects.json   # re-extract maxref.json from the harvest

Both patches are described here, once, from osc_schema/continuo.json: the events the daemon sends are read
from the schema (each gets a [route] outlet), and every request goes out through [pack <types>] ->
[prepend <address>] -> [udpsend], so its OSC types are the schema's. Max cannot run here: tests/clients/test_max.py
checks the files structurally (every box against real Max data, patch lines, every message against the schema,
every event routed, the reply port, the .amxd header, the Max for Live conventions below).

As real Max saves them:
- Counts: each box's numinlets, numoutlets and outlettype come from maxref.json, the part of a harvest of 6,124
  Max-saved patches that covers the objects used here (maxref.py: a rule trusted on the corpus, else what Max 8
  saved). An object the table does not know stops the build (re-extract with --vendor).
- Version: both files say Max 8.6.4 (APPVERSION), of the Max 8.6 series that Live 12.0 bundles, and the version
  that saved Ableton's own "CPU Reporter.amxd" (Ableton/maxdevtools), whose patcher keys (and, for the device, its
  audio-effect `project` block) are the ones written here. (Without an appversion a patch counts as Max 5's.)

The device follows Live's tempo, time signature and (Live 12) root note and scale with live.path live_set +
live.observer, takes a dropped audio file (live.drop) for continue, variations, stems and MIDI (/continuo/midi: the
clip's notes as a .mid, listed in the output menu and kept out of the clip slots), and puts each finished audio
output into the next clip slot of an audio track it creates (ClipSlot.create_audio_clip, Live 12); every output's
path is also listed in a menu, so on Live 11 the file can be found in Live's browser. The plain patch does the same with
[transport] and [dropfile], and auditions outputs in [buffer~] / [play~]. Both have a jam mode (jam(): the
transport sent to the daemon's host clock, each bar's file played at the host's next bar line, double-buffered).

Max for Live production conventions (Ableton's Max for Live Production Guidelines, in Ableton/maxdevtools), kept
by the device and checked by the tests:
- Parameters are live.* objects with stable long names (Live recalls a value by its long name: never rename one):
  Bars and Variation Count (live.numbox) are Automated and Stored. Text and file values, for which Live has no
  live.* object, are Stored Only, the way Ableton's own devices keep them: the prompt (textedit, blob), the preset
  name ([pattr], blob) and the dropped file (live.drop, file). The six buttons are live.text in button mode, and
  Hidden, as the guidelines ask for a live.text in button mode.
- Nothing prints to the Max console: the device has no [print]; what the daemon says shows in the device (model,
  queue, progress, errors, and a line for every other event). The plain patch also logs to the console.
- Local names start with ---: the device names nothing global (no send/receive/value/buffer~); the plain patch's
  buffer~ is a Max patch's own.
- A frozen device embeds what it needs: this one needs nothing (Max's built-in objects only, an empty
  dependency_cache), so it works unfrozen on any machine with Live 11 or 12.
"""

from __future__ import annotations

import importlib.util
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
APPVERSION = {"major": 8, "minor": 6, "revision": 4, "architecture": "x64", "modernui": 1}
VERSION = "{major}.{minor}.{revision}".format(**APPVERSION)
DEVICE_SIZE = (560, 169)  # Live's device view is 169 pixels high; the jam's column is the right-most 104
AUDIO_EFFECT = b"aaaa"
TEXT_CLASSES = ("newobj", "message", "comment", "live.comment")


def load_sibling(name: str):
    """A module beside this script (clients/max is not a package)."""
    spec = importlib.util.spec_from_file_location(f"continuo_max_{name}", HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


maxref = load_sibling("maxref")
TABLE = maxref.Table.load() if maxref.TABLE_PATH.exists() else None  # None only before the first --vendor

# -- Max for Live parameters --------------------------------------------------------------------------------------
AUTOMATED_AND_STORED, STORED_ONLY, HIDDEN = 0, 1, 2  # Parameter Visibility, saved as parameter_invisible
FLOAT, INT, ENUM, BLOB, FILE = 0, 1, 2, 3, 4  # parameter_type


@dataclass(frozen=True)
class Parameter:
    """A Max for Live parameter, saved the way Max 8 saves it (saved_attribute_attributes.valueof)."""

    longname: str  # Live recalls the value by this name: never change it once released
    shortname: str
    kind: int
    visibility: int
    info: str  # Live's Info View text
    minimum: float | None = None
    maximum: float | None = None
    initial: tuple = ()
    enum: tuple[str, ...] = ()

    def valueof(self) -> dict:
        value = {"parameter_longname": self.longname, "parameter_shortname": self.shortname,
                 "parameter_type": self.kind, "parameter_modmode": 0}
        if self.visibility != AUTOMATED_AND_STORED:  # Max leaves the default out
            value["parameter_invisible"] = self.visibility
        if self.minimum is not None:
            value["parameter_mmin"] = self.minimum
        if self.maximum is not None:
            value["parameter_mmax"] = self.maximum
        if self.enum:
            value["parameter_enum"] = list(self.enum)
        if self.initial:
            value["parameter_initial"] = list(self.initial)
            value["parameter_initial_enable"] = 1
        if self.kind in (INT, FLOAT):
            value["parameter_unitstyle"] = 0 if self.kind == INT else 1
        return dict(sorted(value.items()))

    def attributes(self) -> dict:
        """The box attributes of a UI object that is this parameter."""
        return {"annotation": self.info, "annotation_name": self.longname, "parameter_enable": 1,
                "saved_attribute_attributes": {"valueof": self.valueof()}, "varname": self.longname}

    def object_attributes(self) -> dict:
        """The box attributes of a [pattr] that is this parameter (Max keeps its switch in saved_object_attributes)."""
        return {"saved_attribute_attributes": {"valueof": self.valueof()},
                "saved_object_attributes": {"initial": list(self.initial), "parameter_enable": 1,
                                            "parameter_mappable": 0},
                "varname": self.longname}


BARS = next(arg for arg in SCHEMA["requests"]["/continuo/generate"]["args"] if arg["name"] == "bars")
COUNT = next(arg for arg in SCHEMA["requests"]["/continuo/variations"]["args"] if arg["name"] == "count")
MAX_BARS = 64  # the daemon's default max_bars (bridge/settings.py); more is refused unless the daemon allows it
assert BARS["min"] <= 1 and MAX_BARS <= BARS["max"]
PARAMETERS = {
    "prompt": Parameter("Prompt", "Prompt", BLOB, STORED_ONLY,
                        "Words for the music you want (press Return); added to the preset's prompt."),
    "preset-store": Parameter("Preset", "Preset", BLOB, STORED_ONLY,
                              "The preset the requests use (the daemon lists them).", initial=("default",)),
    "bars": Parameter("Bars", "Bars", INT, AUTOMATED_AND_STORED, "Length of each take, in bars of Live's metre.",
                      1, MAX_BARS, (4,)),
    "count": Parameter("Variation Count", "Count", INT, AUTOMATED_AND_STORED, "How many takes Variations makes.",
                       COUNT["min"], COUNT["max"], (4,)),
    "drop": Parameter("Input Clip", "Clip", FILE, STORED_ONLY,
                      "Drop an audio file here for Continue, Variations and Stems."),
}
BUTTONS = {
    "generate": ("Generate", "Make a new take from the prompt and the preset."),
    "continue": ("Continue", "Continue the dropped clip from its end, on the next downbeat."),
    "variations": ("Variations", "Make variations of the dropped clip (or of the prompt, with no clip)."),
    "stems": ("Stems", "Split the dropped clip into drums, bass, other and vocals."),
    "midi": ("MIDI", "The dropped clip's notes as a MIDI file at Live's tempo: it is listed in the file menu, drag "
                     "it onto a MIDI track."),
    "cancel": ("Cancel", "Cancel the newest job."),
}
JAM_BUTTONS = {
    "jam": ("Jam", "Start a jam at Live's tempo and metre from the prompt and the preset: each bar arrives as a file "
                   "and plays at Live's next bar line (press Play in Live)."),
    "jam-stop": ("Jam Stop", "Stop the jam at the end of the bar playing."),
    "jam-prompt": ("Jam Prompt", "Send the prompt to the jam: it changes at the next bar line."),
}
PARAMETERS |= {f"{key}-button": Parameter(name, name, ENUM, HIDDEN, info, maximum=1, enum=("val1", "val2"))
               for key, (name, info) in (BUTTONS | JAM_BUTTONS).items()}


# -- the patcher ----------------------------------------------------------------------------------------------------
@dataclass
class Patcher:
    """Boxes and lines by name; patcher() writes Max's JSON. Counts come from the table of real Max data."""

    table: maxref.Table = field(default_factory=lambda: TABLE)
    device: bool = False
    boxes: dict[str, dict] = field(default_factory=dict)
    lines: list[tuple[str, int, str, int]] = field(default_factory=list)
    y: dict[int, int] = field(default_factory=dict)

    def add(self, key: str, text: str, x: int, maxclass: str = "newobj", attributes: dict | None = None,
            shown: tuple[int, int, int, int] | None = None) -> str:
        """A box; `shown` puts it in the device's presentation at (x, y, width, height), whole pixels."""
        assert key not in self.boxes, key
        y = self.y.get(x, 20)
        self.y[x] = y + 30
        box: dict = {"id": f"obj-{key}", "maxclass": maxclass}
        if maxclass in TEXT_CLASSES:
            box["text"] = text
        inlets, outlets, types = self.table.expected(box, VERSION)
        box.update(numinlets=inlets, numoutlets=outlets, patching_rect=[float(x), float(y), 150.0, 22.0])
        if outlets:
            box["outlettype"] = types
        if shown and self.device:
            box.update(presentation=1, presentation_rect=[float(v) for v in shown])
        box.update(attributes or {})
        self.boxes[key] = dict(sorted(box.items()))  # Max writes a box's keys in this order
        return key

    def control(self, key: str, text: str, x: int, maxclass: str, attributes: dict | None = None,
                shown: tuple[int, int, int, int] | None = None) -> str:
        """A UI object: in the device, a parameter where PARAMETERS names it, else parameter_enable 0 as Max
        saves a UI object that is not one."""
        extra = dict(attributes or {})
        if self.device:
            extra.update(PARAMETERS[key].attributes() if key in PARAMETERS else {"parameter_enable": 0})
        return self.add(key, text, x, maxclass, extra, shown)

    def wire(self, source: str, outlet: int, sink: str, inlet: int = 0) -> None:
        self.lines.append((source, outlet, sink, inlet))

    def chain(self, *keys: str) -> None:
        for source, sink in zip(keys, keys[1:]):
            self.wire(source, 0, sink, 0)

    def parameters(self) -> dict:
        """The patcher's parameter index, as Max writes it: box id -> [long name, short name, 0]."""
        found = {box["id"]: [value["parameter_longname"], value["parameter_shortname"], 0]
                 for box in self.boxes.values()
                 if (value := box.get("saved_attribute_attributes", {}).get("valueof"))}
        return {**dict(sorted(found.items())), "inherited_shortname": 1}

    def patcher(self) -> dict:
        missing = [line for line in self.lines if line[0] not in self.boxes or line[2] not in self.boxes]
        assert not missing, f"lines to boxes that do not exist: {missing}"
        width, height = DEVICE_SIZE if self.device else (0, 0)
        head = {
            "fileversion": 1, "appversion": dict(APPVERSION), "classnamespace": "box",
            "rect": [100.0, 100.0, 1500.0, 900.0],
        }
        if self.device:
            head["openrect"] = [0.0, 0.0, float(width), float(height)]
        head.update({
            "bglocked": 0, "openinpresentation": int(self.device),
            "default_fontsize": 10.0 if self.device else 12.0, "default_fontface": 0,
            "default_fontname": "Arial Bold" if self.device else "Arial", "gridonopen": 1,
            "gridsize": [15.0, 15.0], "gridsnaponopen": 1, "objectsnaponopen": 1, "statusbarvisible": 2,
            "toolbarvisible": 1, "lefttoolbarpinned": 0, "toptoolbarpinned": 0, "righttoolbarpinned": 0,
            "bottomtoolbarpinned": 0, "toolbars_unpinned_last_save": 0, "tallnewobj": 0, "boxanimatetime": 200,
            "enablehscroll": 1, "enablevscroll": 1, "devicewidth": float(width),
            "description": "Continuo: generate, continue, variations and stems from the Continuo daemon over OSC",
            "digest": "", "tags": "", "style": "", "subpatcher_template": "", "assistshowspatchername": 0,
            "boxes": [{"box": box} for box in self.boxes.values()],
            "lines": [{"patchline": {"destination": [f"obj-{b}", i], "source": [f"obj-{a}", o]}}
                      for a, o, b, i in self.lines],
        })
        if self.device:
            head["parameters"] = self.parameters()
        head["dependency_cache"] = []  # built-in objects only: nothing to freeze
        if self.device:
            head.update({
                "latency": 0, "is_mpe": 0, "minimum_live_version": "", "minimum_max_version": "",
                "platform_compatibility": 0,
                "project": {"version": 1, "creationdate": 3590052493, "modificationdate": 3590052493,
                            "viewrect": [0.0, 0.0, 300.0, 500.0], "autoorganize": 1, "hideprojectwindow": 1,
                            "showdependencies": 1, "autolocalize": 0, "contents": {"patchers": {}}, "layout": {},
                            "searchpath": {}, "detailsvisible": 0,
                            "amxdtype": struct.unpack(">I", AUDIO_EFFECT)[0], "readonly": 0, "devpathtype": 0,
                            "devpath": ".", "sortmode": 0, "viewmode": 0, "includepackages": 0},
            })
        head["autosave"] = 0
        return {"patcher": head}


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


def show(p: Patcher, key: str, source: tuple[str, int], x: int, shown: tuple[int, int, int, int],
         prefix: str = "set") -> None:
    """A message box that shows what `source` sends ([prepend set] -> message box)."""
    p.add(f"{key}-text", f"prepend {prefix}", x)
    p.add(f"{key}-box", "", x, "message", shown=shown)
    p.wire(*source, f"{key}-text")
    p.chain(f"{key}-text", f"{key}-box")


def network(p: Patcher) -> dict[str, int]:
    """udpsend / udpreceive, and every event the daemon sends routed somewhere: the plain patch logs each one to
    the Max console; the device prints nothing and shows the events it does not otherwise use on an info line."""
    p.add("udpsend", f"udpsend 127.0.0.1 {DAEMON_PORT}", 20)
    p.add("udpreceive", f"udpreceive {REPLY_PORT}", 20)
    p.add("hello", f"/continuo/hello max {REPLY_PORT}", 200, "message")
    p.add("ask-presets", "/continuo/presets", 200, "message")
    p.wire("hello", 0, "udpsend")
    p.wire("ask-presets", 0, "udpsend")
    events = sorted(SCHEMA["events"])
    p.add("events", "route " + " ".join(events), 20)
    p.wire("udpreceive", 0, "events")
    outlet = {address: n for n, address in enumerate(events)}
    # queue position and progress
    p.add("queued", "unpack s i f", 560)
    p.control("queue-box", "", 560, "number", shown=(288, 66, 36, 18))
    p.wire("events", outlet["/continuo/queued"], "queued")
    p.wire("queued", 1, "queue-box")
    p.add("progress", "unpack s f s", 700)
    p.control("progress-box", "", 700, "flonum", shown=(248, 88, 50, 18))
    p.wire("events", outlet["/continuo/progress"], "progress")
    p.wire("progress", 1, "progress-box")
    show(p, "stage", ("progress", 2), 700, (302, 88, 146, 22))
    # errors: shown, and acknowledged when about a job
    p.add("error", "unpack s s s", 860)
    p.wire("events", outlet["/continuo/error"], "error")
    show(p, "error", ("error", 2), 860, (248, 114, 200, 22))
    p.add("error-job", "t b s", 1000)
    p.add("error-job-keep", "zl.reg", 1000)
    p.wire("error", 0, "error-job")
    p.wire("error-job", 1, "error-job-keep", 1)
    p.wire("error-job", 0, "error-job-keep")
    p.add("ack-error", "pack max", 1000)
    p.wire("error-job-keep", 0, "ack-error")
    # done: the seed shown, then acknowledged
    p.add("done", "unpack s i i f", 1150)
    p.control("seed-box", "", 1150, "number", shown=(362, 66, 86, 18))
    p.wire("events", outlet["/continuo/done"], "done")
    p.wire("done", 2, "seed-box")
    p.add("ack", "prepend /continuo/ack", 1000)
    p.wire("done", 0, "ack")
    p.wire("ack-error", 0, "ack")
    p.wire("ack", 0, "udpsend")
    # welcome: the model shown (a smoke model says "SMOKE: noise, not music"), then the presets asked for
    p.add("welcome", "t b b", 200)
    p.add("welcome-info", "unpack s s i s s", 200)
    p.add("clear-presets", "clear", 200, "message")
    p.wire("events", outlet["/continuo/welcome"], "welcome")
    p.wire("events", outlet["/continuo/welcome"], "welcome-info")
    show(p, "model", ("welcome-info", 1), 200, (4, 110, 236, 22), "set model:")
    p.wire("welcome", 1, "clear-presets")
    p.wire("welcome", 0, "ask-presets")
    # presets: the daemon lists them after welcome; the menu offers them
    p.add("preset-item", "unpack s s", 200)
    p.add("preset-listed", "t b s", 200)
    p.add("preset-append", "prepend append", 200)
    p.control("preset-menu", "", 200, "umenu", shown=(4, 42, 236, 20))
    p.wire("events", outlet["/continuo/presets"], "preset-item")
    p.chain("preset-item", "preset-listed")
    p.wire("preset-listed", 1, "preset-append")
    p.chain("preset-append", "preset-menu")
    p.wire("clear-presets", 0, "preset-menu")
    p.add("outputs", "unpack s s s i i f f f f", 1300)
    p.wire("events", outlet["/continuo/output"], "outputs")
    p.add("output-list", "prepend append", 1300)
    p.control("output-menu", "", 1300, "umenu", shown=(248, 140, 200, 20))
    p.wire("outputs", 2, "output-list")
    p.chain("output-list", "output-menu")  # every output listed: pick one, drag its path into the DAW
    # the paths of outputs that are sound: the MIDI button's .mid (output mix-midi) is only listed
    p.add("output-path", "zl.reg", 1300)
    p.wire("outputs", 2, "output-path", 1)  # unpack fires right to left: the path is kept before its name comes
    p.add("midi-skip", "sel mix-midi", 1300)
    p.wire("outputs", 1, "midi-skip")
    p.add("audio-gate", "t b", 1300)
    p.wire("midi-skip", 1, "audio-gate")
    p.wire("audio-gate", 0, "output-path")
    used = {"/continuo/queued", "/continuo/progress", "/continuo/error", "/continuo/done", "/continuo/welcome",
            "/continuo/presets", "/continuo/output", "/continuo/jam/chunk"}
    if not p.device:
        p.add("log", "print continuo", 400)
        for n in range(len(events) + 1):
            p.wire("events", n, "log")  # everything the daemon says shows in the Max console
        return outlet
    p.add("info-box", "", 400, "message", shown=(4, 136, 236, 22))
    for address in events:  # context, status, limits, models, slot, storage, ... on one line, named
        if address not in used:
            name = address.removeprefix("/continuo/").replace("/", "-")
            p.add(f"info-{name}", f"prepend set {name}:", 400)
            p.wire("events", outlet[address], f"info-{name}")
            p.wire(f"info-{name}", 0, "info-box")
    return outlet


def preset_choice(p: Patcher) -> tuple[str, int]:
    """The preset name the requests use; returns its (box, outlet). In the device the name is a Stored Only
    parameter ([pattr], Live keeps it with the set), re-selected in the menu each time the daemon lists presets."""
    if not p.device:
        return "preset-menu", 1
    p.add("preset-store", "pattr preset", 200, attributes=PARAMETERS["preset-store"].object_attributes())
    p.add("preset-chosen", "t s s", 200)
    p.add("preset-keep", "zl.reg", 200)
    p.add("preset-select", "prepend setsymbol", 200)
    p.wire("preset-menu", 1, "preset-store")  # a pick: stored, and sent on
    p.chain("preset-store", "preset-chosen")
    p.wire("preset-chosen", 1, "preset-keep", 1)
    p.wire("preset-listed", 0, "preset-keep")  # after each listed preset: select the stored one again
    p.chain("preset-keep", "preset-select", "preset-menu")
    return "preset-chosen", 0


def controls(p: Patcher, file_source: str) -> None:
    """Prompt, bars, preset, generate, continue, variations, stems and cancel; file_source gives a dropped path."""
    p.add("current-job", "zl.reg", 1450)
    p.control("prompt", "", 20, "textedit", {"keymode": 1}, (4, 4, 236, 34))  # Return sends the words
    p.add("prompt-text", "route text", 20)  # as "text <words>": Ableton's devices follow a textedit with this
    p.add("prompt-symbol", "tosymbol", 20)
    p.chain("prompt", "prompt-text", "prompt-symbol")
    if p.device:
        p.add("bars-label", "Bars", 150, "live.comment", shown=(4, 66, 34, 18))
        p.add("count-label", "Count", 260, "live.comment", shown=(88, 66, 40, 18))
    numbox = "live.numbox" if p.device else "number"
    p.control("bars", "", 150, numbox, shown=(40, 67, 40, 15))
    p.add("bars-float", "t f", 150)
    p.wire("bars", 0, "bars-float")
    p.control("count", "", 260, numbox, shown=(130, 67, 40, 15))
    p.add("path", "conformpath slash boot", 400)
    p.wire(file_source, 0, "path")  # Max paths (Macintosh HD:/Users/...) become /Users/...
    p.add("path-keep", "t s", 400)
    p.wire("path", 0, "path-keep")
    places = {"generate": (4, 88, 50, 16), "continue": (56, 88, 50, 16), "variations": (108, 88, 52, 16),
              "stems": (162, 88, 38, 16), "cancel": (202, 88, 38, 16), "midi": (176, 67, 64, 16)}
    for key, (label, _) in BUTTONS.items():
        button = {"mode": 0, "text": label} if p.device else {"text": label}
        p.control(f"{key}-button", label, 560, "live.text" if p.device else "textbutton", button, places[key])
    preset, bars = preset_choice(p), ("bars-float", 0)
    job_request(p, "generate", "/continuo/generate <job> <preset> <prompt> <bars>", "max default piano 4.", 560,
                (preset, ("prompt-symbol", 0), bars))
    job_request(p, "continue", "/continuo/continue <job> <preset> <path> <bars>", "max default none 4.", 760,
                (preset, ("path-keep", 0), bars))
    job_request(p, "variations", "/continuo/variations <job> <preset> <path> <count> <bars>", "max default none 4 4.",
                960, (preset, ("path-keep", 0), ("count", 0), bars))
    job_request(p, "stems", "/continuo/stems <job> <path> <stems>", "max none drums,bass,other,vocals", 1160,
                (("path-keep", 0),))
    job_request(p, "midi", "/continuo/midi <job> <path> <stems>", "max none mix", 1600, (("path-keep", 0),))
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


def local(p: Patcher, name: str) -> str:
    """A name the device keeps to itself (---, Max for Live's local prefix); the plain patch's own, continuo-."""
    return f"---{name}" if p.device else f"continuo-{name}"


def jam(p: Patcher, outlet: dict[str, int], tempo: tuple[str, int], metre: tuple[str, int]) -> None:
    """Jam mode. Jam starts a jam on the host clock at the transport's tempo and metre (`tempo`, `metre`: the boxes
    that give them) with the preset the jobs use; while it runs, [transport] is read ten times a second and sent
    as /continuo/jam/transport <bpm> <beat> <playing> <beats_per_bar> (beat = (bar - 1) x beats per bar + (beat -
    1) + units / resolution).
    Each /continuo/jam/chunk of the jam is kept in a [coll] by its start beat; at each bar line ([metro 1n
    @quantize 1n]: Live's bar lines in the device, the Max transport's in the plain patch) the bar loaded for it
    starts ([play~], its first channel to both sides: MusicGen small and medium are mono) and the next bar line's
    chunk is read into the other [buffer~] (double-buffered). Jam Stop stops the jam at the bar end; Jam Prompt sends
    the prompt for the next bar line."""
    x = 1750
    # start: the pack's first inlet gets a fresh id (the job ids' rules); the prompt, tempo and metre wait in it
    for key, (label, _) in JAM_BUTTONS.items():
        button = {"mode": 0, "text": label} if p.device else {"text": label}
        shown = {"jam": (452, 4, 50, 16), "jam-stop": (506, 4, 50, 16), "jam-prompt": (452, 24, 104, 16)}[key]
        p.control(f"{key}-button", label, x, "live.text" if p.device else "textbutton", button, shown)
    start = job_request(p, "jam", "/continuo/jam/start <job> <prompt> bpm <bpm> beats_per_bar <n> clock host "
                        "preset <name>", "max piano bpm 120. beats_per_bar 4 clock host preset default", x,
                        (("prompt-symbol", 0),))
    p.wire(*tempo, start, 3)
    p.wire(*metre, start, 5)
    p.wire(*(("preset-chosen", 0) if p.device else ("preset-menu", 1)), start, 9)  # the preset the jobs use
    p.add("jam-current", "zl.reg", x)
    p.wire("jam-id-tee", 1, "jam-current", 1)
    p.add("jam-go", "t b b b", x)
    p.wire("jam-button", 0, "jam-go")
    p.add("jam-clear", "clear", x, "message")
    p.add("jam-unready", "-1", x, "message")
    p.add("jam-ready", f"v {local(p, 'jamready')}", x)
    p.add("jam-spare-zero", "0", x, "message")
    p.add("jam-spare", f"v {local(p, 'jamspare')}", x)
    p.add("jam-poll-on", "1", x, "message")
    p.wire("jam-go", 2, "jam-clear")
    p.wire("jam-go", 1, "jam-unready")
    p.chain("jam-unready", "jam-ready")
    p.wire("jam-go", 1, "jam-spare-zero")
    p.chain("jam-spare-zero", "jam-spare")
    p.wire("jam-go", 0, "jam-poll-on")
    # stop and the next bar's prompt: the jam's id from jam-current
    stop = request(p, "jam-stop", "/continuo/jam/stop", "max", x + 200)
    p.wire("jam-stop-button", 0, "jam-current")
    p.wire("jam-current", 0, stop, 0)
    prompt = request(p, "jam-prompt", "/continuo/jam/control", "max prompt piano", x + 200)
    p.wire("prompt-symbol", 0, prompt, 2)
    p.add("jam-prompt-id", "zl.reg", x + 200)
    p.wire("jam-id-tee", 1, "jam-prompt-id", 1)
    p.wire("jam-prompt-button", 0, "jam-prompt-id")
    p.wire("jam-prompt-id", 0, prompt, 0)
    # the transport, ten times a second while a jam runs (until its state says stopped or failed)
    x = 2150
    p.add("jam-poll", "metro 100", x)
    p.wire("jam-poll-on", 0, "jam-poll")
    p.add("jam-state", "unpack s s i f f i i i s", x)
    p.wire("events", outlet["/continuo/jam/state"], "jam-state")
    p.add("jam-ended", "sel stopped failed", x)
    p.wire("jam-state", 1, "jam-ended")
    # stopping <bar>: the jam stops at the end of the bar playing; that bar is the last to sound. Its start beat
    # (the jam's origin beat, from any chunk, + bar x beats) is jamlast: later bars are never loaded, and a later
    # one already loaded in the spare buffer is unreadied
    p.add("stop-bar", "i", x)
    p.wire("jam-state", 2, "stop-bar", 1)
    p.add("stop-at", "sel stopping", x)
    p.wire("jam-state", 1, "stop-at")
    p.add("stop-steps", "t b b b", x)
    p.wire("stop-at", 0, "stop-steps")
    p.add("stop-origin", f"v {local(p, 'jamorigin')}", x)
    p.add("stop-beats", f"v {local(p, 'jambeats')}", x)
    p.add("stop-beat", "expr $f1 + $f2 * $f3", x)
    p.wire("stop-steps", 2, "stop-beats")
    p.wire("stop-beats", 0, "stop-beat", 2)
    p.wire("stop-steps", 1, "stop-bar")
    p.wire("stop-bar", 0, "stop-beat", 1)
    p.wire("stop-steps", 0, "stop-origin")
    p.wire("stop-origin", 0, "stop-beat", 0)
    p.add("stop-last", "t b f f", x)
    p.wire("stop-beat", 0, "stop-last")
    p.add("stop-last-set", f"v {local(p, 'jamlast')}", x)
    p.wire("stop-last", 2, "stop-last-set")
    p.add("stop-ready", f"v {local(p, 'jamready')}", x)
    p.add("stop-later", "expr $f1 > $f2", x)
    p.wire("stop-last", 1, "stop-later", 1)
    p.wire("stop-last", 0, "stop-ready")
    p.wire("stop-ready", 0, "stop-later", 0)
    p.add("stop-drop", "sel 1", x)
    p.add("stop-unready", "-1", x, "message")
    p.add("stop-unready-set", f"v {local(p, 'jamready')}", x)
    p.chain("stop-later", "stop-drop", "stop-unready", "stop-unready-set")
    p.add("jam-unstop", "1000000000", x, "message")
    p.add("jam-unstop-set", f"v {local(p, 'jamlast')}", x)
    p.wire("jam-go", 1, "jam-unstop")
    p.chain("jam-unstop", "jam-unstop-set")
    p.add("jam-poll-off", "0", x, "message")
    p.wire("jam-ended", 0, "jam-poll-off")
    p.wire("jam-ended", 1, "jam-poll-off")
    p.wire("jam-poll-off", 0, "jam-poll")
    p.add("jam-clock", "transport", x)
    p.wire("jam-poll", 0, "jam-clock")
    p.add("jam-metre", "unpack i i", x)
    p.wire("jam-clock", 5, "jam-metre")
    p.add("jam-beat", "expr ($i1 - 1) * $i2 + ($i3 - 1) + $f4 / $f5", x)
    p.add("jam-beat-tee", "t b f", x)
    p.add("jam-bpm", "f 120.", x)
    transport = request(p, "jam-transport", "/continuo/jam/transport", "120. 0. 1 4", x)
    p.wire("jam-clock", 4, "jam-bpm", 1)
    p.wire("jam-clock", 6, transport, 2)
    p.wire("jam-metre", 0, transport, 3)
    p.wire("jam-metre", 0, "jam-beat", 1)
    p.wire("jam-clock", 3, "jam-beat", 4)
    p.wire("jam-clock", 2, "jam-beat", 3)
    p.wire("jam-clock", 1, "jam-beat", 2)
    p.wire("jam-clock", 0, "jam-beat", 0)  # bars last: [transport] fires right to left
    p.chain("jam-beat", "jam-beat-tee")
    p.wire("jam-beat-tee", 1, transport, 1)
    p.wire("jam-beat-tee", 0, "jam-bpm")
    p.wire("jam-bpm", 0, transport, 0)
    # chunks of this jam: kept by start beat ("<start_beat> <path>")
    x = 2350
    p.add("chunk", "unpack s i f f f i i s s f i", x)
    p.wire("events", outlet["/continuo/jam/chunk"], "chunk")
    p.add("chunk-ours", "sel none", x)
    p.wire("jam-id-tee", 1, "chunk-ours", 1)
    p.add("chunk-start", "i", x)
    p.add("chunk-entry", "pack 0 none", x)
    p.wire("chunk", 7, "chunk-entry", 1)
    p.wire("chunk", 2, "chunk-start", 1)
    p.wire("chunk", 0, "chunk-ours")
    p.chain("chunk-ours", "chunk-start", "chunk-entry")
    # the jam's origin beat (bar 0's start beat) and bar length, for a stop's last bar (bar comes last)
    p.add("chunk-origin", "expr $f2 - $f1 * $f3", x)
    p.wire("chunk", 3, "chunk-origin", 2)
    p.wire("chunk", 2, "chunk-origin", 1)
    p.wire("chunk", 1, "chunk-origin", 0)
    p.add("chunk-origin-set", f"v {local(p, 'jamorigin')}", x)
    p.chain("chunk-origin", "chunk-origin-set")
    p.add("chunk-beats-set", f"v {local(p, 'jambeats')}", x)
    p.wire("chunk", 3, "chunk-beats-set")
    p.add("chunk-tee", "t b l", x)
    p.wire("chunk-entry", 0, "chunk-tee")
    p.add("queue", f"coll {local(p, 'jamq')}", x)
    p.wire("chunk-tee", 1, "queue")
    p.wire("jam-clear", 0, "queue")
    # what the device shows: the bar and the prompt that made it
    p.add("chunk-bar", "pack 0 0", x)
    p.wire("chunk", 5, "chunk-bar", 1)
    p.wire("chunk", 1, "chunk-bar", 0)
    show(p, "jam-bar", ("chunk-bar", 0), x, (452, 44, 104, 22), "set bar/prompt")
    # each bar line: play the bar loaded for it, then load the next bar line's
    x = 2550
    p.add("bar-line", "metro 1n @quantize 1n @active 1", x)
    p.add("bar-clock", "transport", x)
    p.chain("bar-line", "bar-clock")
    p.add("bar-first-beat", "expr ($i1 - 1) * $i2", x)
    p.add("bar-metre", "unpack i i", x)
    p.wire("bar-clock", 5, "bar-metre")
    p.wire("bar-metre", 0, "bar-first-beat", 1)
    p.wire("bar-clock", 0, "bar-first-beat", 0)
    p.add("bar", "t i i", x)
    p.wire("bar-first-beat", 0, "bar")
    p.add("bar-ready", "t i b", x)
    p.add("bar-ready-get", f"v {local(p, 'jamready')}", x)
    p.add("bar-is-ready", "==", x)
    p.add("bar-play", "sel 1", x)
    p.wire("bar", 1, "bar-ready")
    p.wire("bar-ready", 1, "bar-ready-get")
    p.wire("bar-ready-get", 0, "bar-is-ready", 1)
    p.wire("bar-ready", 0, "bar-is-ready")
    p.chain("bar-is-ready", "bar-play")
    p.add("bar-next", "+ 4", x)
    p.wire("bar-metre", 0, "bar-next", 1)
    p.wire("bar", 0, "bar-next")
    # play: the spare buffer starts; the other one becomes the spare
    p.add("play", "t b b", x)
    p.wire("bar-play", 0, "play")
    p.add("play-unready", "-1", x, "message")
    p.add("play-unready-set", f"v {local(p, 'jamready')}", x)
    p.wire("play", 1, "play-unready")
    p.chain("play-unready", "play-unready-set")
    p.add("play-spare", f"v {local(p, 'jamspare')}", x)
    p.add("play-tee", "t i i", x)
    p.add("play-flip", "== 0", x)
    p.add("play-flip-set", f"v {local(p, 'jamspare')}", x)
    p.add("play-which", "sel 0 1", x)
    p.wire("play", 0, "play-spare")
    p.chain("play-spare", "play-tee")
    p.wire("play-tee", 1, "play-flip")
    p.chain("play-flip", "play-flip-set")
    p.wire("play-tee", 0, "play-which")
    # load the next bar line's chunk, if it came, into the spare buffer; ready for that beat
    x = 2750
    # a bar line past the stop's last bar loads nothing (jamlast: its start beat; 1e9 until a stop)
    p.add("load-check", "t i i b", x)
    p.wire("bar-next", 0, "load-check")
    p.add("load-last", f"v {local(p, 'jamlast')}", x)
    p.add("load-allowed", "expr $f1 <= $f2", x)
    p.add("load-open", "gate 1", x)
    p.wire("load-check", 2, "load-last")
    p.wire("load-last", 0, "load-allowed", 1)
    p.wire("load-check", 1, "load-allowed", 0)
    p.wire("load-allowed", 0, "load-open", 0)
    p.wire("load-check", 0, "load-open", 1)
    p.add("load", "t i i i", x)
    p.wire("load-open", 0, "load")
    p.add("load-key", "i", x)
    p.wire("load", 2, "load-key", 1)
    p.add("load-remove", "prepend remove", x)
    p.wire("load", 0, "load-remove")
    p.wire("load-remove", 0, "queue")
    p.wire("load", 1, "queue")
    p.add("load-found", "t s b", x)
    p.wire("queue", 0, "load-found")
    p.wire("chunk-tee", 0, "load-retry")
    p.add("load-retry", "i", x)  # a chunk that comes after its bar line's predecessor: looked for again
    p.wire("bar-next", 0, "load-retry", 1)
    p.wire("load-retry", 0, "load-check")
    p.add("load-ready", f"v {local(p, 'jamready')}", x)
    p.wire("load-found", 1, "load-key")
    p.chain("load-key", "load-ready")
    p.add("load-spare", f"v {local(p, 'jamspare')}", x)
    p.add("load-gate-index", "+ 1", x)
    p.add("load-gate", "gate 2", x)
    p.add("load-which", "t s b", x)
    p.wire("load-found", 0, "load-which")
    p.wire("load-which", 1, "load-spare")
    p.chain("load-spare", "load-gate-index")
    p.wire("load-gate-index", 0, "load-gate", 0)
    p.wire("load-which", 0, "load-gate", 1)
    for index, name in enumerate(("A", "B")):
        p.add(f"load-{name}", "prepend replace", x + 200)
        p.add(f"buffer-{name}", f"buffer~ {local(p, 'jam' + name)}", x + 200)
        p.wire("load-gate", index, f"load-{name}")
        p.chain(f"load-{name}", f"buffer-{name}")
        p.add(f"start-{name}", "start", x + 200, "message")
        p.add(f"player-{name}", f"play~ {local(p, 'jam' + name)}", x + 200)
        p.wire("play-which", index, f"start-{name}")
        p.chain(f"start-{name}", f"player-{name}")
        out = ("plugout", (0, 1)) if p.device else ("dac", (0, 1))
        for inlet in out[1]:
            p.wire(f"player-{name}", 0, out[0], inlet)


def device(table: maxref.Table = TABLE) -> Patcher:
    """The Max for Live audio effect: audio passes through; Live's set drives the context."""
    p = Patcher(table, device=True)
    p.add("plugin", "plugin~", 20)
    p.add("plugout", "plugout~", 20)
    p.wire("plugin", 0, "plugout", 0)
    p.wire("plugin", 1, "plugout", 1)
    p.control("drop", "", 400, "live.drop", {"legend": "Drop audio: Continue, Variations, Stems"},
              (248, 4, 200, 58))
    p.add("queue-label", "Queue", 560, "live.comment", shown=(248, 66, 38, 18))
    p.add("seed-label", "Seed", 1150, "live.comment", shown=(330, 66, 30, 18))
    outlet = network(p)
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
    p.wire("output-path", 0, "first-output")
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
    jam(p, outlet, ("tempo", 0), ("observe-signature_numerator", 0))
    return p


def plain(table: maxref.Table = TABLE) -> Patcher:
    """The plain Max patch: the transport's tempo and metre, dropped files, outputs auditioned in buffer~."""
    p = Patcher(table)
    p.add("start", "loadbang", 150)
    p.wire("start", 0, "hello")
    p.add("drop", "", 400, "dropfile")
    outlet = network(p)
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
    p.wire("output-path", 0, "buffer-read")
    p.chain("buffer-read", "buffer")
    p.add("play-button", "Play", 1450, "textbutton", {"text": "Play"})
    p.add("play-start", "start", 1450, "message")
    p.add("player", "play~ continuo-out", 1450)
    p.add("dac", "ezdac~", 1450)
    p.chain("play-button", "play-start", "player")
    p.wire("player", 0, "dac", 0)
    p.wire("player", 0, "dac", 1)
    jam(p, outlet, ("tempo", 0), ("metre", 0))
    return p


def amxd(patcher: dict, device_type: bytes = AUDIO_EFFECT) -> bytes:
    """The .amxd container: 'ampf', a 4-byte little-endian 4, the device type ('aaaa' audio effect),
    a 'meta' chunk of 4 zero bytes, then a 'ptch' chunk holding the patcher JSON."""
    payload = json.dumps(patcher, indent=1).encode() + b"\n\x00"
    return (b"ampf" + struct.pack("<I", 4) + device_type + b"meta" + struct.pack("<I", 4) + b"\x00" * 4
            + b"ptch" + struct.pack("<I", len(payload)) + payload)


def render(table: maxref.Table = TABLE) -> dict[Path, bytes]:
    maxpat = json.dumps(plain(table).patcher(), indent=1) + "\n"
    return {MAXPAT: maxpat.encode(), AMXD: amxd(device(table).patcher())}


def problems(files: dict[Path, bytes], table: maxref.Table = TABLE) -> list[str]:
    """What maxref.py finds in the written files (errors and warnings alike)."""
    return [f"{finding}" for path, data in files.items()
            for label, patch in maxref.load_patches(data, path.name)
            for finding in maxref.check_patch(patch, table, label)[1]]


def vendor(objects_json: Path) -> Path:
    """Re-extract maxref.json: build both patches against the full harvest, keep the objects they use."""
    doc = json.loads(objects_json.read_text())
    full = maxref.Table(doc["objects"], doc.get("attribute_effects", {}), {})
    keys = {record.key for data in (plain(full).patcher(), device(full).patcher())
            for _, _, record in maxref.walk(data["patcher"])}
    table = maxref.extract(doc, keys, objects_json)
    objects = ",\n".join(f"  {json.dumps(key)}: {json.dumps(entry)}" for key, entry in table.pop("objects").items())
    head = ",\n".join(f" {json.dumps(key)}: " + json.dumps(value, indent=1).replace("\n", "\n ")
                      for key, value in table.items())
    maxref.TABLE_PATH.write_text(f"{{\n{head},\n \"objects\": {{\n{objects}\n }}\n}}\n")  # an object a line
    return maxref.TABLE_PATH


def main(argv: list[str]) -> int:
    if argv[:1] == ["--vendor"] and len(argv) == 2:
        print(f"wrote {vendor(Path(argv[1]))}")
        return 0
    files = render()
    found = problems(files)
    if "--check" in argv:
        stale = [path.name for path, data in files.items() if not path.exists() or path.read_bytes() != data]
        for line in found:
            print(line)
        if stale:
            print(f"stale: {', '.join(stale)}; run python clients/max/build.py")
        return 1 if stale or found else 0
    if found:
        print("\n".join(found + ["not written: the patches disagree with real Max (above)"]))
        return 1
    for path, data in files.items():
        path.write_bytes(data)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
