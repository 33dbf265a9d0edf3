"""The Max for Live device (clients/max/Continuo.amxd) and the plain Max patch (clients/max/continuo.maxpat).

Max cannot run here, so these are structural checks:
- against real Max: every box has the inlet and outlet counts and outlet types that Max itself saves for it, and
  every patch line joins an outlet and an inlet that exist (clients/max/maxref.py with the vendored maxref.json,
  from a harvest of 6,124 Max-saved patches); where ../shared/maxref is beside the checkout, the vendored table
  is its entries verbatim and the harvest's own check_counts.py says the same, word for word;
- against the schema: every OSC message the patch can send is a request with its argument types in order, every
  event the daemon sends is routed to something, [udpreceive] listens on the port hello names;
- the .amxd container's header, and the Max for Live production conventions (parameters, console, local names,
  dependencies, presentation).
Each check is shown failing on a broken copy.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import itertools
import json
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tests.clients.osc_signatures import SCHEMA, signature_problems

MAX_DIR = Path(__file__).resolve().parents[2] / "clients" / "max"


def load_build():
    spec = importlib.util.spec_from_file_location("continuo_max_build", MAX_DIR / "build.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


build = load_build()
maxref = build.maxref
TABLE = maxref.Table.load()
DEVICE_TYPES = {b"aaaa": "audio effect", b"mmmm": "MIDI effect", b"iiii": "instrument"}


# -- reading ----------------------------------------------------------------------------------------------
def header_problems(data: bytes, device_type: bytes = b"aaaa") -> list[str]:
    """'ampf', uint32 4, the device type, a 'meta' chunk, then a 'ptch' chunk whose length is the rest."""
    if len(data) < 32:
        return [f"{len(data)} bytes: shorter than the 32-byte header"]
    problems = []
    if data[:4] != b"ampf":
        problems.append(f"magic {data[:4]!r}, not b'ampf'")
    if struct.unpack("<I", data[4:8])[0] != 4:
        problems.append(f"format field {data[4:8]!r}, not 4")
    if data[8:12] != device_type:
        problems.append(f"device type {data[8:12]!r} ({DEVICE_TYPES.get(data[8:12], 'unknown')}), "
                        f"not {device_type!r} ({DEVICE_TYPES[device_type]})")
    if data[12:16] != b"meta":
        problems.append(f"{data[12:16]!r} where the meta chunk starts")
    meta_size = struct.unpack("<I", data[16:20])[0]
    at = 20 + meta_size
    if data[at:at + 4] != b"ptch":
        problems.append(f"{data[at:at + 4]!r} where the ptch chunk starts (offset {at})")
    elif struct.unpack("<I", data[at + 4:at + 8])[0] != len(data) - at - 8:
        problems.append(f"ptch length {struct.unpack('<I', data[at + 4:at + 8])[0]}, the chunk holds "
                        f"{len(data) - at - 8} bytes")
    return problems


def patcher_of(data: bytes) -> dict:
    """The patcher JSON of a .maxpat or an .amxd."""
    if data[:4] == b"ampf":
        at = 20 + struct.unpack("<I", data[16:20])[0]
        data = data[at + 8:]
    return json.loads(data.rstrip(b"\x00\n").decode())["patcher"]


def boxes_of(patcher: dict) -> dict[str, dict]:
    return {entry["box"]["id"]: entry["box"] for entry in patcher["boxes"]}


def lines_of(patcher: dict) -> list[tuple[str, int, str, int]]:
    return [(*entry["patchline"]["source"], *entry["patchline"]["destination"]) for entry in patcher["lines"]]


# -- the checks -------------------------------------------------------------------------------------------
def maxref_problems(patch: dict, label: str = "patch") -> list[str]:
    """Every box and cord against how real Max saves each object (clients/max/maxref.py with the vendored
    maxref.json): errors and warnings alike, so an unknown object fails too. `patch` is {"patcher": ...}."""
    return [str(finding) for finding in maxref.check_patch(patch, TABLE, label)[1]]


def literal(token: str) -> tuple[str, str]:
    """A word in a box as Max sends it: int, float (has a '.'), or symbol."""
    if re.fullmatch(r"-?\d+", token):
        return "i", token
    if re.fullmatch(r"-?\d*\.\d*(e-?\d+)?", token) and token not in (".", "-."):
        return "f", token
    return "s", token


def typed_outputs(patcher: dict, box_id: str, outlet: int) -> list[list[tuple[str, str | None]]]:
    """What a box's outlet sends, as (OSC type, the word in the box or None) per atom; one list per possible
    message. Typed sources: message boxes, [pack] (its arguments), [unpack] (its outlet's type), [prepend]."""
    box = boxes_of(patcher)[box_id]
    words = box.get("text", "").split()
    if box["maxclass"] == "message":
        return [[literal(word) for word in words]]
    name, args = (words[0], words[1:]) if words else ("", [])
    if name == "pack":
        return [[literal(arg) for arg in args]]  # each argument sets its inlet's type (0 int, 0. float, a word)
    if name == "unpack":
        return [[(args[outlet], None)]]
    if name == "prepend":
        sources = [(s, o) for s, o, d, _ in lines_of(patcher) if d == box_id]
        return [[literal(arg) for arg in args] + rest for s, o in sources for rest in typed_outputs(patcher, s, o)]
    raise ValueError(f"{box_id} {box.get('text')!r} feeds udpsend and cannot be typed statically")


def sent_messages(patcher: dict) -> list[tuple[str, str, tuple[str, ...]]]:
    """(address, types, setting names) of every message that can reach [udpsend]."""
    boxes = boxes_of(patcher)
    udpsend = [box_id for box_id, box in boxes.items() if box.get("text", "").startswith("udpsend")]
    found = []
    for source, outlet, sink, _ in lines_of(patcher):
        if sink not in udpsend:
            continue
        for atoms in typed_outputs(patcher, source, outlet):
            (_, address), rest = atoms[0], atoms[1:]
            request = SCHEMA["requests"].get(address, {"args": []})
            settings = rest[len(request["args"]):]
            found.append((address, "".join(kind for kind, _ in rest), tuple(str(v) for _, v in settings[::2])))
    return found


def send_problems(patcher: dict) -> list[str]:
    problems = []
    for address, types, names in sent_messages(patcher):
        problems += signature_problems(address, types, names)
    return problems


def routing_problems(patcher: dict) -> list[str]:
    """Every event of the schema matched by the [route] after [udpreceive], and that outlet connected."""
    boxes, lines = boxes_of(patcher), lines_of(patcher)
    receivers = [box_id for box_id, box in boxes.items() if box.get("text", "").startswith("udpreceive")]
    routes = [sink for source, _, sink, _ in lines if source in receivers]
    if len(routes) != 1 or not boxes[routes[0]].get("text", "").startswith("route "):
        return [f"udpreceive should feed one [route], it feeds {routes}"]
    route = routes[0]
    args = boxes[route]["text"].split()[1:]
    used = {outlet for source, outlet, _, _ in lines if source == route}
    problems = []
    for address in SCHEMA["events"]:
        if address not in args:
            problems.append(f"{address}: not matched by [route]")
        elif args.index(address) not in used:
            problems.append(f"{address}: its [route] outlet goes nowhere")
    return problems


def port_problems(patcher: dict) -> list[str]:
    """[udpreceive]'s port is the reply port in every hello the patch sends."""
    texts = [box.get("text", "") for box in boxes_of(patcher).values()]
    ports = {text.split()[1] for text in texts if text.startswith("udpreceive")}
    hellos = [box["text"].split() for box in boxes_of(patcher).values()
              if box.get("text", "").startswith("/continuo/hello")]
    if len(ports) != 1 or not hellos:
        return [f"one udpreceive port and a hello expected: ports {ports}, hellos {hellos}"]
    return [f"hello names reply port {hello[2] if len(hello) > 2 else 'none'}, udpreceive listens on {ports}"
            for hello in hellos if len(hello) < 3 or hello[2] not in ports]


# -- Max for Live production conventions (Ableton's Max for Live Production Guidelines) ------------------------
AUTOMATED_AND_STORED, STORED_ONLY, HIDDEN = 0, 1, 2  # parameter_invisible
NUMERIC, ENUM, BLOB, FILE = (0, 1), 2, 3, 4  # parameter_type
# Live recalls a parameter's value by its long name: renaming one loses every saved set's value. These are the
# released names and kinds; a change here is a change users lose settings over.
RELEASED_PARAMETERS = {
    "Prompt": (BLOB, STORED_ONLY), "Preset": (BLOB, STORED_ONLY), "Input Clip": (FILE, STORED_ONLY),
    "Bars": (1, AUTOMATED_AND_STORED), "Variation Count": (1, AUTOMATED_AND_STORED),
    "Generate": (ENUM, HIDDEN), "Continue": (ENUM, HIDDEN), "Variations": (ENUM, HIDDEN), "Stems": (ENUM, HIDDEN),
    "Cancel": (ENUM, HIDDEN), "MIDI": (ENUM, HIDDEN),
    "Jam": (ENUM, HIDDEN), "Jam Stop": (ENUM, HIDDEN), "Jam Prompt": (ENUM, HIDDEN),
}
LIVE_PARAMETER_CLASSES = {"live.dial", "live.numbox", "live.slider", "live.text", "live.toggle", "live.button",
                          "live.menu", "live.tab", "live.drop", "live.gain~"}
MAX_UI_CLASSES = {"number", "flonum", "umenu", "textedit", "textbutton", "toggle", "button", "slider", "dial",
                  "tab", "multislider", "kslider", "rslider", "matrixctrl", "pictctrl", "pictslider"}
CONSOLE_WRITERS = {"print", "error", "console", "post"}
# objects whose first argument is a name shared by every device in Live: local ones start with ---
GLOBAL_NAMERS = {"send", "s", "receive", "r", "value", "v", "buffer~", "coll", "table", "dict", "forward",
                 "send~", "receive~", "play~", "groove~", "wave~", "index~", "peek~", "poke~", "record~",
                 "buffir~", "info~", "polybuffer~", "mc.send~", "mc.receive~", "jit.matrix", "pv"}
FILE_BACKED = {"js", "jsui", "v8", "v8ui", "mxj", "mxj~", "node.script", "jweb", "bpatcher", "fpic", "pictctrl",
               "pictslider", "playlist~", "sfplay~", "imovie", "jit.movie"}
FILE_ATTRIBUTES = {"filename", "pictures", "bkgndpict", "knobpict", "cellpict", "pic", "name", "embed"}


def parameter_problems(patcher: dict) -> list[str]:
    """Parameters are live.* objects (or, for text and files, Stored Only values as Ableton's devices keep them),
    with the released long names and visibilities; other UI objects say they are not parameters; the patcher's
    parameter index names them all."""
    problems, found = [], {}
    for box_id, box in boxes_of(patcher).items():
        maxclass, value = box["maxclass"], box.get("saved_attribute_attributes", {}).get("valueof")
        enabled = box.get("parameter_enable", box.get("saved_object_attributes", {}).get("parameter_enable"))
        if maxclass in LIVE_PARAMETER_CLASSES and (enabled != 1 or not value):
            problems.append(f"{box_id} {maxclass}: a live.* object that is not a parameter")
        if maxclass in MAX_UI_CLASSES and enabled not in (0, None) and (value or {}).get("parameter_type") != BLOB:
            problems.append(f"{box_id} {maxclass}: a parameter that is not a live.* object")
        if maxclass in MAX_UI_CLASSES and enabled is None:
            problems.append(f"{box_id} {maxclass}: no parameter_enable (Max saves 0 for a UI object in a device)")
        if not value or enabled != 1:
            continue
        name, kind, visibility = value["parameter_longname"], value["parameter_type"], \
            value.get("parameter_invisible", AUTOMATED_AND_STORED)
        if name in found:
            problems.append(f"{box_id}: long name {name!r} also belongs to {found[name]}")
        found[name] = box_id
        object_name = box.get("text", "").split(" ")[0] if maxclass == "newobj" else maxclass
        if re.search(r"\[\d+\]$", name) or name == object_name:
            problems.append(f"{box_id}: generic long name {name!r}")
        if name not in RELEASED_PARAMETERS:
            problems.append(f"{box_id}: long name {name!r} is not a released parameter")
            continue
        want_kind, want_visibility = RELEASED_PARAMETERS[name]
        if kind not in (want_kind if isinstance(want_kind, tuple) else (want_kind,)) \
                or visibility != want_visibility:
            problems.append(f"{box_id} {name!r}: type {kind}, visibility {visibility}; released as "
                            f"{want_kind}, {want_visibility}")
        if maxclass not in LIVE_PARAMETER_CLASSES and kind != BLOB:
            problems.append(f"{box_id} {name!r}: type {kind} on a {maxclass}: only live.* objects hold such values")
        if maxclass == "live.text" and box.get("mode") != 0:
            problems.append(f"{box_id} {name!r}: a live.text that is not in button mode")
    if missing := sorted(set(RELEASED_PARAMETERS) - set(found)):
        problems.append(f"released parameters missing: {missing}")
    index = {key: value for key, value in patcher.get("parameters", {}).items() if key.startswith("obj-")}
    expected = {box_id: [boxes_of(patcher)[box_id]["saved_attribute_attributes"]["valueof"][k]
                         for k in ("parameter_longname", "parameter_shortname")] + [0] for box_id in found.values()}
    if index != expected:
        problems.append(f"the patcher's parameter index {index} does not match its parameters {expected}")
    return problems


def console_problems(patcher: dict) -> list[str]:
    """Nothing that writes to the Max console: no [print] or [error], no message box sending to ;max."""
    return [f"{box_id} {box.get('text')!r} writes to the Max console" for box_id, box in boxes_of(patcher).items()
            if (box["maxclass"] == "newobj" and box.get("text", "").split(" ")[0] in CONSOLE_WRITERS)
            or (box["maxclass"] == "message" and box.get("text", "").lstrip().startswith(";"))]


def local_name_problems(patcher: dict) -> list[str]:
    """A name every device shares (send, receive, value, buffer~, ...) starts with ---, local to the device."""
    problems = []
    for box_id, box in boxes_of(patcher).items():
        words = box.get("text", "").split() if box["maxclass"] == "newobj" else []
        if words and words[0] in GLOBAL_NAMERS and len(words) > 1 and not words[1].startswith("---"):
            problems.append(f"{box_id} {box['text']!r}: {words[1]!r} is global; name it ---{words[1]}")
    return problems


def dependency_problems(patcher: dict) -> list[str]:
    """What a frozen device would embed: nothing, so the device works unfrozen. No file in the dependency cache,
    no object that loads a file (script, abstraction, picture, audio file), every object one real Max saves."""
    problems = [f"dependency: {entry}" for entry in patcher.get("dependency_cache", [])]
    for box_id, box in boxes_of(patcher).items():
        name = box.get("text", "").split(" ")[0] if box["maxclass"] == "newobj" else box["maxclass"]
        if name in FILE_BACKED or (FILE_ATTRIBUTES & set(box) and box["maxclass"] != "newobj"):
            problems.append(f"{box_id} {box.get('text', box['maxclass'])!r} loads a file")
        if name and maxref.Box.of(box).key not in TABLE.objects:
            problems.append(f"{box_id} {name!r}: not in the vendored table of objects real Max saves (maxref.json): "
                            "an abstraction or an external?")
    return problems


def presentation_problems(patcher: dict) -> list[str]:
    """The device opens in presentation; every control and display is there, inside the device, on whole pixels,
    none on top of another."""
    width, height = patcher["openrect"][2], patcher["openrect"][3]
    problems = [] if patcher.get("openinpresentation") == 1 else ["the device does not open in presentation"]
    shown = {box_id: box["presentation_rect"] for box_id, box in boxes_of(patcher).items() if box.get("presentation")}
    for box_id, box in boxes_of(patcher).items():
        if box["maxclass"] in LIVE_PARAMETER_CLASSES | MAX_UI_CLASSES and box_id not in shown:
            problems.append(f"{box_id} {box['maxclass']}: not in the presentation")
    for box_id, (x, y, w, h) in shown.items():
        if any(v != int(v) for v in (x, y, w, h)):
            problems.append(f"{box_id}: presentation rect {[x, y, w, h]} is not on whole pixels")
        if x < 0 or y < 0 or x + w > width or y + h > height:
            problems.append(f"{box_id}: presentation rect {[x, y, w, h]} outside the {width}x{height} device")
    for (a, (ax, ay, aw, ah)), (b, (bx, by, bw, bh)) in itertools.combinations(shown.items(), 2):
        if ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah:
            problems.append(f"{a} and {b} overlap in the presentation")
    return problems


def convention_problems(patcher: dict) -> list[str]:
    return (parameter_problems(patcher) + console_problems(patcher) + local_name_problems(patcher)
            + dependency_problems(patcher) + presentation_problems(patcher))


def all_problems(patcher: dict) -> list[str]:
    return (maxref_problems({"patcher": patcher}) + send_problems(patcher) + routing_problems(patcher)
            + port_problems(patcher))


# -- the committed files ----------------------------------------------------------------------------------
FILES = {"continuo.maxpat": MAX_DIR / "continuo.maxpat", "Continuo.amxd": MAX_DIR / "Continuo.amxd"}


def test_committed_files_are_what_build_writes():
    for path, data in build.render().items():
        assert path.read_bytes() == data, f"{path.name} is stale: run python clients/max/build.py"


@pytest.mark.parametrize("name", FILES)
def test_patch_passes_every_structural_check(name):
    assert all_problems(patcher_of(FILES[name].read_bytes())) == []


def test_every_generated_patch_agrees_with_real_max():
    """The check CI runs: every file build.py writes, against the vendored table of what real Max saves, with
    neither an error nor a warning; and saved as a real Max (8.6.4), not a Max 5 guess."""
    for path, data in build.render().items():
        for label, patch in maxref.load_patches(data, path.name):
            assert maxref_problems(patch, label) == []
            assert patch["patcher"]["appversion"] == {"major": 8, "minor": 6, "revision": 4, "architecture": "x64",
                                                      "modernui": 1}


def test_the_build_stops_at_an_object_real_max_has_not_saved():
    """build.py never guesses counts: an object missing from the table stops it, naming the object and the fix."""
    table = maxref.Table({k: v for k, v in TABLE.objects.items() if k != "zl.reg"}, {}, {})
    with pytest.raises(maxref.UnknownObject, match="'zl.reg' is not in maxref.json.*--vendor"):
        build.render(table)
    assert build.problems(build.render()) == []


@pytest.mark.parametrize("name", FILES)
def test_patch_sends_each_request_a_musician_needs(name):
    addresses = {address for address, _, _ in sent_messages(patcher_of(FILES[name].read_bytes()))}
    assert {"/continuo/hello", "/continuo/context", "/continuo/generate", "/continuo/continue",
            "/continuo/variations", "/continuo/stems", "/continuo/cancel", "/continuo/ack",
            "/continuo/presets", "/continuo/midi"} <= addresses


@pytest.mark.parametrize("name", FILES)
def test_the_prompt_loses_textedit_s_text_selector(name):
    """textedit sends "text <words>" (Ableton's own devices follow it with [route text]); the prompt must not
    start with the word "text"."""
    patcher = patcher_of(FILES[name].read_bytes())
    prompt = next(box_id for box_id, box in boxes_of(patcher).items() if box["maxclass"] == "textedit")
    after = [boxes_of(patcher)[sink]["text"] for source, outlet, sink, _ in lines_of(patcher)
             if source == prompt and outlet == 0]
    assert after == ["route text"]


JOB_ID_FORMAT = "max-%04ld%02ld%02ld-%02ld%02ld%02ld-%06ld"


@pytest.mark.parametrize("name", FILES)
def test_each_job_gets_a_dated_random_id(name):
    """The ids of #21, max-<YYYYMMDD>-<HHMMSS>-<random>: [sprintf] fed the year (hot), month and day by [date],
    hour, minute and second by its time, and [random 1000000]; the id is the first argument of each job request."""
    patcher = patcher_of(FILES[name].read_bytes())
    boxes, lines = boxes_of(patcher), lines_of(patcher)
    text = {box_id: box.get("text", "") for box_id, box in boxes.items()}
    for job in ("generate", "continue", "variations", "stems", "midi"):
        sprintf = f"obj-{job}-id"
        assert text[sprintf] == f"sprintf symout {JOB_ID_FORMAT}"
        feeds = {inlet: text[source] for source, _, sink, inlet in lines if sink == sprintf}
        assert feeds == {0: "$3", 1: "unpack i i i", 2: "unpack i i i", 3: "unpack i i i", 4: "unpack i i i",
                         5: "unpack i i i", 6: "random 1000000"}
        assert (f"obj-{job}-id-tee", 0, f"obj-{job}-pack", 0) in lines
    example = JOB_ID_FORMAT.replace("%04ld", "2031").replace("%02ld", "07", 5).replace("%06ld", "999999")
    assert re.fullmatch(SCHEMA["patterns"]["job_id"]["regex"], example), example


def test_device_header():
    assert header_problems(FILES["Continuo.amxd"].read_bytes()) == []


def test_device_follows_live_and_puts_clips_in_slots():
    texts = [box.get("text", "") for box in boxes_of(patcher_of(FILES["Continuo.amxd"].read_bytes())).values()]
    for observed in ("tempo", "signature_numerator", "signature_denominator", "root_note", "scale_name"):
        assert f"live.observer {observed}" in texts
    assert "live.path live_set" in texts and "prepend call create_audio_clip" in texts
    classes = {box["maxclass"] for box in boxes_of(patcher_of(FILES["Continuo.amxd"].read_bytes())).values()}
    assert {"live.drop", "umenu"} <= classes


def test_device_follows_the_max_for_live_production_conventions():
    patcher = patcher_of(FILES["Continuo.amxd"].read_bytes())
    assert convention_problems(patcher) == []
    assert patcher["dependency_cache"] == [] and patcher["project"]["amxdtype"] == int.from_bytes(b"aaaa", "big")


def test_device_shows_the_model_so_a_smoke_model_is_seen_without_the_console():
    patcher = patcher_of(FILES["Continuo.amxd"].read_bytes())
    box = box_with(patcher, "prepend set model:")
    shown = [sink for source, _, sink, _ in lines_of(patcher) if source == box["id"]]
    assert [boxes_of(patcher)[sink].get("presentation") for sink in shown] == [1]


AUDIO_SINKS = ("prepend call create_audio_clip", "prepend replace")  # a Live clip slot, the plain patch's buffer~


def midi_path_problems(patcher: dict) -> list[str]:
    """The .mid of the MIDI button (output mix-midi) is listed in the menu but must never reach a clip slot or
    buffer~: a path from [unpack] reaches those only through a [zl.reg] (cold inlet: kept) that [sel mix-midi]'s
    no-match outlet bangs."""
    boxes, lines = boxes_of(patcher), lines_of(patcher)
    text = {box_id: box.get("text", "") for box_id, box in boxes.items()}
    unpack = next(box_id for box_id, t in text.items() if t == "unpack s s s i i f f f f")
    problems, seen, todo = [], set(), [(unpack, 2)]
    while todo:  # every box the path flows into hot (a cold inlet stores it)
        source, outlet = todo.pop()
        for start, out, sink, inlet in lines:
            if (start, out) != (source, outlet) or (sink, inlet) in seen:
                continue
            seen.add((sink, inlet))
            if text[sink] in AUDIO_SINKS:
                problems.append(f"every output's path reaches {text[sink]!r} (a .mid too)")
            elif inlet == 0 or not text[sink].startswith("zl.reg"):
                todo.extend((sink, n) for n in range(boxes[sink].get("numoutlets", 0)))
    gates = [sink for start, out, sink, _ in lines if (start, out) == (unpack, 1) and text[sink] == "sel mix-midi"]
    if not gates:
        problems.append("no [sel mix-midi] on the output's name")
    return problems


@pytest.mark.parametrize("name", FILES)
def test_the_midi_file_is_listed_and_kept_out_of_clips_and_buffer(name):
    patcher = patcher_of(FILES[name].read_bytes())
    assert midi_path_problems(patcher) == []
    # control: the path wired straight to the clip slot (or buffer~), as before the MIDI button, fails
    sink = next(box_id for box_id, box in boxes_of(patcher).items() if box.get("text") in AUDIO_SINKS)
    unpack = next(box_id for box_id, box in boxes_of(patcher).items() if box.get("text") == "unpack s s s i i f f f f")
    broken_copy = json.loads(json.dumps(patcher))
    broken_copy["lines"].append({"patchline": {"source": [unpack, 2], "destination": [sink, 0]}})
    assert any("reaches" in problem for problem in midi_path_problems(broken_copy))


def test_plain_patch_uses_transport_dropfile_and_buffer():
    patcher = patcher_of(FILES["continuo.maxpat"].read_bytes())
    texts = {box.get("text", "").split(" ")[0] for box in boxes_of(patcher).values()}
    classes = {box["maxclass"] for box in boxes_of(patcher).values()}
    assert {"transport", "buffer~", "play~"} <= texts and "dropfile" in classes


# -- jam mode ------------------------------------------------------------------------------------------------------
def reachable(patcher: dict, start: tuple[str, int], through_cold: bool = False) -> set[tuple[str, int]]:
    """Every (box, inlet) a message from start's (box, outlet) can reach: through each box it enters hot (inlet 0)
    and out of all its outlets; a cold inlet stores, it is reached but not passed (unless through_cold)."""
    boxes, lines = boxes_of(patcher), lines_of(patcher)
    seen: set[tuple[str, int]] = set()
    todo = [start]
    while todo:
        source, outlet = todo.pop()
        for start_box, out, sink, inlet in lines:
            if (start_box, out) != (source, outlet) or (sink, inlet) in seen:
                continue
            seen.add((sink, inlet))
            if inlet == 0 or through_cold:
                todo.extend((sink, n) for n in range(boxes[sink].get("numoutlets", 0)))
    return seen


def texts_reached(patcher: dict, start: tuple[str, int], **kwargs) -> set[str]:
    boxes = boxes_of(patcher)
    return {boxes[box_id].get("text", boxes[box_id]["maxclass"]) for box_id, _ in reachable(patcher, start, **kwargs)}


def jam_problems(patcher: dict) -> list[str]:
    """Jam mode, as wired: (1) each /continuo/jam/chunk's path (its unpack's outlet 7) is kept in a [coll] whose
    entries are read into two [buffer~]s (double-buffered); (2) a bar-line clock ([metro 1n @quantize 1n], Live's or
    Max's transport) starts [play~] on those same buffers, and they sound (plugout~ or ezdac~); (3) only the patch's
    own jam is played: the chunk's id goes through a [sel] whose right inlet the jam id sets; (4) [transport] feeds
    /continuo/jam/transport's tempo and beat."""
    boxes, lines = boxes_of(patcher), lines_of(patcher)
    text = {box_id: box.get("text", "") for box_id, box in boxes.items()}
    route = events_route(patcher)["id"]
    chunk_outlet = text[route].split()[1:].index("/continuo/jam/chunk")
    problems = []
    unpacks = [sink for source, outlet, sink, _ in lines if (source, outlet) == (route, chunk_outlet)
               and text[sink] == "unpack s i f f f i i s s f i"]
    if len(unpacks) != 1:
        return ["/continuo/jam/chunk is not unpacked as the schema's 11 arguments"]
    unpack = unpacks[0]
    colls = [box_id for box_id, _ in reachable(patcher, (unpack, 7), through_cold=True)
             if text[box_id].startswith("coll ")]
    if not colls:
        problems.append("the chunk's path is never kept in a [coll]")
    buffers = {text[box_id].split()[1] for coll in colls for box_id, _ in reachable(patcher, (coll, 0))
               if text[box_id].startswith("buffer~ ")}
    if len(buffers) != 2:
        problems.append(f"the kept paths are read into buffer~ {sorted(buffers)}, not two (double-buffered)")
    clocks = [box_id for box_id, t in text.items() if t.startswith("metro ") and "@quantize 1n" in t
              and t.split()[1] == "1n"]
    if len(clocks) != 1:
        problems.append(f"no bar-line clock ([metro 1n @quantize 1n]): {clocks}")
    else:
        players = {text[box_id].split()[1] for box_id, _ in reachable(patcher, (clocks[0], 0))
                   if text[box_id].startswith("play~ ")}
        if players != buffers:
            problems.append(f"the bar lines start play~ {sorted(players)}, the chunks are read into {sorted(buffers)}")
        for player in [box_id for box_id, t in text.items() if t.startswith("play~ ")]:
            if not texts_reached(patcher, (player, 0)) & {"plugout~", "ezdac~"}:
                problems.append(f"{text[player]} reaches neither plugout~ nor ezdac~")
    id_gates = [sink for source, outlet, sink, _ in lines if (source, outlet) == (unpack, 0)
                and text[sink].startswith("sel ")]
    if not id_gates or not any(sink == id_gates[0] and inlet == 1 and text[source].startswith("t s s")
                               for source, _, sink, inlet in lines):
        problems.append("the chunk's jam id is not checked against the jam this patch started")
    address = next((box_id for box_id, t in text.items() if t == "prepend /continuo/jam/transport"), None)
    packs = [source for source, _, sink, _ in lines if sink == address]
    reached = {(sink, inlet) for clock, t in text.items() if t == "transport"
               for outlet in range(boxes[clock]["numoutlets"]) for sink, inlet in reachable(patcher, (clock, outlet))}
    missing = [inlet for inlet in range(4) if not packs or (packs[0], inlet) not in reached]
    if missing:
        problems.append(f"[transport] does not feed /continuo/jam/transport's arguments {missing}")
    return problems


@pytest.mark.parametrize("name", FILES)
def test_jam_mode_sends_the_transport_and_plays_chunks_at_bar_lines(name):
    patcher = patcher_of(FILES[name].read_bytes())
    assert jam_problems(patcher) == []
    messages = {address: (types, names) for address, types, names in sent_messages(patcher)}
    assert messages["/continuo/jam/start"] == ("sssfsissss", ("bpm", "beats_per_bar", "clock", "preset"))
    assert messages["/continuo/jam/transport"][0] == "ffii"
    assert {"/continuo/jam/stop", "/continuo/jam/control"} <= set(messages)
    start = box_with(patcher, "pack max piano bpm 120. beats_per_bar 4 clock host preset default")["id"]  # host clock
    assert (start, 0, box_with(patcher, "prepend /continuo/jam/start")["id"], 0) in lines_of(patcher)


def stop_problems(patcher: dict) -> list[str]:
    """A stop lands at the end of the bar playing: /continuo/jam/state stopping's bar (the last bar to sound) sets
    jamlast and unreadies a later bar already loaded (jamready -1), and the next bar line's chunk is looked up in the
    [coll] only through a [gate] that jamlast closes."""
    boxes, lines = boxes_of(patcher), lines_of(patcher)
    text = {box_id: box.get("text", "") for box_id, box in boxes.items()}
    problems = []
    state = box_with(patcher, "unpack s s i f f i i i s")["id"]
    reached = texts_reached(patcher, (state, 1))
    if "sel stopping" not in reached or not any(t.startswith("v ") and t.endswith("jamlast") for t in reached):
        problems.append("a stopping state does not set the last bar to sound (jamlast)")
    if not any(t.startswith("v ") and t.endswith("jamlast")
               for t in texts_reached(patcher, (state, 2), through_cold=True)):
        problems.append("the stopping state's bar never reaches jamlast")
    unready = [box_id for box_id, _ in reachable(patcher, (state, 1)) if text[box_id] == "-1"]
    if not any("jamready" in t for u in unready for t in texts_reached(patcher, (u, 0))):
        problems.append("a later bar already loaded is not unreadied at a stop")
    colls = {box_id for box_id, t in text.items() if t.startswith("coll ")}
    loads = {source for source, _, sink, _ in lines if sink in colls and text[source] == "t i i i"}
    feeders = {source for source, _, sink, _ in lines if sink in loads}
    gated = [f for f in feeders if text[f].startswith("gate ") and any(
        t.startswith("v ") and t.endswith("jamlast") for t in
        {text[source] for source, _, sink, inlet in lines if (sink, inlet) == (f, 0)}
        | {text[b] for src, _, sink, inlet in lines if (sink, inlet) == (f, 0)
           for b, _, s2, _ in lines if s2 == src})]
    if not loads or not feeders or len(gated) != len(feeders):
        fed_by = sorted(text[f] for f in feeders)
        problems.append(f"bars past a stop are still loaded: the chunk lookup is fed by {fed_by}")
    return problems


def state_not_read_for_a_stop(patcher):
    state = box_with(patcher, "unpack s s i f f i i i s")["id"]
    stop = box_with(patcher, "sel stopping")["id"]
    patcher["lines"] = [entry for entry in patcher["lines"]
                        if (entry["patchline"]["source"], entry["patchline"]["destination"][0]) != ([state, 1], stop)]


def loads_ungated(patcher):
    gate = box_with(patcher, "gate 1")["id"]
    check = box_with(patcher, "t i i b")["id"]
    for entry in patcher["lines"]:
        if entry["patchline"]["source"] == [check, 0]:
            entry["patchline"]["source"] = [box_with(patcher, "+ 4")["id"], 0]
        if entry["patchline"]["source"][0] == gate:
            entry["patchline"]["source"] = [box_with(patcher, "+ 4")["id"], 0]


@pytest.mark.parametrize("name", FILES)
def test_jam_mode_drops_the_bars_past_a_stops_last_bar(name):
    assert stop_problems(patcher_of(FILES[name].read_bytes())) == []
    assert any("jamlast" in p for p in stop_problems(broken(name, state_not_read_for_a_stop)))
    assert any("still loaded" in p for p in stop_problems(broken(name, loads_ungated)))


def transport_unplugged(patcher):
    clock = box_with(patcher, "expr ($i1 - 1) * $i2 + ($i3 - 1) + $f4 / $f5")["id"]
    patcher["lines"] = [entry for entry in patcher["lines"] if entry["patchline"]["source"][0] != clock]


def metro_on_a_timer(patcher):
    box_with(patcher, "metro 1n @quantize 1n @active 1")["text"] = "metro 500"


def players_of_other_buffers(patcher):
    for box in boxes_of(patcher).values():
        if box.get("text", "").startswith("play~ "):
            box["text"] = box["text"].replace("jam", "other")


def path_not_kept(patcher):
    unpack = box_with(patcher, "unpack s i f f f i i s s f i")["id"]
    patcher["lines"] = [entry for entry in patcher["lines"] if entry["patchline"]["source"] != [unpack, 7]]


def any_jam_played(patcher):
    unpack = box_with(patcher, "unpack s i f f f i i s s f i")["id"]
    gate = next(entry["patchline"]["destination"][0] for entry in patcher["lines"]
                if entry["patchline"]["source"] == [unpack, 0])
    patcher["lines"] = [entry for entry in patcher["lines"] if entry["patchline"]["destination"] != [gate, 1]]


JAM_BREAKAGES = {
    "metro_on_a_timer": (metro_on_a_timer, "no bar-line clock"),
    "players_of_other_buffers": (players_of_other_buffers, "the bar lines start play~"),
    "path_not_kept": (path_not_kept, "never kept in a [coll]"),
    "any_jam_played": (any_jam_played, "jam id is not checked"),
    "transport_unplugged": (transport_unplugged, "does not feed /continuo/jam/transport's arguments [0, 1]"),
}


@pytest.mark.parametrize("breakage", JAM_BREAKAGES)
@pytest.mark.parametrize("name", FILES)
def test_the_jam_check_fails_on_a_broken_copy(name, breakage):
    change, words = JAM_BREAKAGES[breakage]
    problems = jam_problems(broken(name, change))
    assert any(words in problem for problem in problems), problems


# -- the checks fail on broken copies -------------------------------------------------------------------------
def broken(name: str, change) -> dict:
    patcher = copy.deepcopy(patcher_of(FILES[name].read_bytes()))
    change(patcher)
    return patcher


def box_with(patcher: dict, text: str) -> dict:
    return next(box for box in boxes_of(patcher).values() if box.get("text", "") == text)


def events_route(patcher: dict) -> dict:
    return next(box for box in boxes_of(patcher).values() if box.get("text", "").startswith("route /continuo"))


def route_with_two_inlets(patcher):
    events_route(patcher)["numinlets"] = 2  # Max 5's count: Max 6 and later give route N+1 inlets


def cord_to_missing_inlet(patcher):
    udpsend = box_with(patcher, "udpsend 127.0.0.1 9000")["id"]
    line = next(entry for entry in patcher["lines"] if entry["patchline"]["destination"][0] == udpsend)
    line["patchline"]["destination"][1] = 1  # udpsend has one inlet


def cord_from_missing_outlet(patcher):
    patcher["lines"].append({"patchline": {"source": [events_route(patcher)["id"], 40],
                                           "destination": [box_with(patcher, "zl.reg")["id"], 0]}})


def typo_object(patcher):
    box_with(patcher, "tosymbol")["text"] = "tosymbolic"


def untyped_outlets(patcher):
    box_with(patcher, "unpack s i i f")["outlettype"] = ["", "", "", ""]  # Max types unpack's outlets


def no_appversion(patcher):
    del patcher["appversion"]  # then every count is checked as Max 5's (a builder that does not say its Max)


ROUTE_OUTLETS = len(SCHEMA["events"]) + 1  # one per event, and the unmatched
BREAKAGES = {
    "route_with_two_inlets": (route_with_two_inlets, ["ERROR", f"counts 2 in / {ROUTE_OUTLETS} out disagree with "
                                                               f"rule {{'in': 'max(n, 1) + 1'"]),
    "cord_to_missing_inlet": (cord_to_missing_inlet, ["ERROR", "inlet 1, box has 1 inlets"]),
    "cord_from_missing_outlet": (cord_from_missing_outlet, ["ERROR", f"outlet 40, box has {ROUTE_OUTLETS} outlets"]),
    "typo_object": (typo_object, ["WARN", "'tosymbolic': object never observed in the corpus"]),
    "untyped_outlets": (untyped_outlets, ["ERROR", 'outlettype ["", "", "", ""] disagrees']),
    "no_appversion": (no_appversion, ["WARN", "no appversion, checked as Max 5"]),
}


@pytest.mark.parametrize("breakage", BREAKAGES)
@pytest.mark.parametrize("name", FILES)
def test_the_real_max_check_fails_on_a_wrong_copy(name, breakage):
    change, (level, words) = BREAKAGES[breakage]
    problems = maxref_problems({"patcher": broken(name, change)}, name)
    assert any(problem.startswith(level) and words in problem for problem in problems), problems
    assert maxref_problems({"patcher": patcher_of(FILES[name].read_bytes())}, name) == []


def test_play_tilde_outlets_are_signal_and_bang():
    """The plain patch's play~ as Max 6+ saves it; the check refuses the old guess (two untyped outlets)."""
    patcher = patcher_of(FILES["continuo.maxpat"].read_bytes())
    assert box_with(patcher, "play~ continuo-out")["outlettype"] == ["signal", "bang"]

    def guess(patcher):
        box_with(patcher, "play~ continuo-out")["outlettype"] = ["", ""]
    assert any("play~" in problem and problem.startswith("ERROR")
               for problem in maxref_problems({"patcher": broken("continuo.maxpat", guess)}))


@pytest.mark.parametrize("name", FILES)
def test_an_unknown_address_or_wrong_type_fails(name):
    def rename(patcher):
        box_with(patcher, "prepend /continuo/generate")["text"] = "prepend /continuo/generat"
    assert send_problems(broken(name, rename)) == ["/continuo/generat: no such request in the schema"]

    def int_bars(patcher):
        box_with(patcher, "pack max default piano 4.")["text"] = "pack max default piano 4"
    assert send_problems(broken(name, int_bars)) == [
        "/continuo/generate: bars is 'f' in the schema, the patch sends 'i'"]


@pytest.mark.parametrize("name", FILES)
def test_an_unrouted_event_fails(name):
    def drop_error(patcher):
        route = events_route(patcher)
        route["text"] = route["text"].replace(" /continuo/error", "")
        route["numoutlets"] -= 1
    assert routing_problems(broken(name, drop_error)) == ["/continuo/error: not matched by [route]"]

    def cut_done(patcher):
        route = events_route(patcher)
        done = route["text"].split()[1:].index("/continuo/done")
        patcher["lines"] = [entry for entry in patcher["lines"]
                            if entry["patchline"]["source"] != [route["id"], done]]
    assert routing_problems(broken(name, cut_done)) == ["/continuo/done: its [route] outlet goes nowhere"]


@pytest.mark.parametrize("name", FILES)
def test_a_reply_port_other_than_the_one_in_hello_fails(name):
    def change(patcher):
        box_with(patcher, f"udpreceive {build.REPLY_PORT}")["text"] = "udpreceive 9999"
    assert port_problems(broken(name, change)) == [f"hello names reply port {build.REPLY_PORT}, udpreceive "
                                                   "listens on {'9999'}"]


@pytest.mark.parametrize("damage, expected", [
    (lambda data: b"ampx" + data[4:], "magic b'ampx'"),
    (lambda data: data[:8] + b"mmmm" + data[12:], "device type b'mmmm' (MIDI effect)"),
    (lambda data: data[:12] + b"mate" + data[16:], "where the meta chunk starts"),
    (lambda data: data[:-10], "ptch length"),
])
def test_a_bad_amxd_header_fails(damage, expected):
    problems = header_problems(damage(FILES["Continuo.amxd"].read_bytes()))
    assert len(problems) == 1 and expected in problems[0]


# -- each Max for Live convention fails on a broken device ------------------------------------------------------
def device_box(patcher: dict, box_id: str) -> dict:
    return boxes_of(patcher)[box_id]


def renamed_parameter(patcher):
    device_box(patcher, "obj-bars")["saved_attribute_attributes"]["valueof"]["parameter_longname"] = "live.numbox[1]"


def hidden_bars(patcher):
    device_box(patcher, "obj-bars")["saved_attribute_attributes"]["valueof"]["parameter_invisible"] = HIDDEN


def bars_as_a_number_box(patcher):
    device_box(patcher, "obj-bars")["maxclass"] = "number"


def stored_button(patcher):
    del device_box(patcher, "obj-generate-button")["saved_attribute_attributes"]["valueof"]["parameter_invisible"]


def stale_parameter_index(patcher):
    patcher["parameters"]["obj-count"] = ["Count", "Count", 0]


def adding(text: str, dependency: dict | None = None):
    """A change that adds an object box with this text (and a dependency_cache entry)."""
    def change(patcher):
        outlets = 0 if text.split()[0] in ("print", "s") else 1
        patcher["boxes"].append({"box": {"id": "obj-added", "maxclass": "newobj", "text": text, "numinlets": 1,
                                         "numoutlets": outlets, "outlettype": [""] * outlets}})
        patcher["dependency_cache"] += [dependency] if dependency else []
    return change


a_print, a_global_send, an_abstraction = adding("print debug"), adding("s continuo-jobs"), adding("continuo.helper")
a_script = adding("js helper.js", {"name": "helper.js", "bootpath": "~/Documents", "type": "TEXT"})


def overlapping_controls(patcher):
    device_box(patcher, "obj-count")["presentation_rect"] = device_box(patcher, "obj-bars")["presentation_rect"]


def a_control_off_the_device(patcher):
    device_box(patcher, "obj-output-menu")["presentation_rect"] = [248.0, 160.0, 200.0, 20.0]


def a_blurry_control(patcher):
    device_box(patcher, "obj-bars")["presentation_rect"] = [40.5, 67.0, 40.0, 15.0]


def a_hidden_control(patcher):
    del device_box(patcher, "obj-preset-menu")["presentation"]


CONVENTION_BREAKAGES = {
    "renamed_parameter": (renamed_parameter, "generic long name 'live.numbox[1]'"),
    "hidden_bars": (hidden_bars, "'Bars': type 1, visibility 2; released as 1, 0"),
    "bars_as_a_number_box": (bars_as_a_number_box, "a parameter that is not a live.* object"),
    "stored_button": (stored_button, "'Generate': type 2, visibility 0; released as 2, 2"),
    "stale_parameter_index": (stale_parameter_index, "the patcher's parameter index"),
    "a_print": (a_print, "'print debug' writes to the Max console"),
    "a_global_send": (a_global_send, "'continuo-jobs' is global; name it ---continuo-jobs"),
    "a_script": (a_script, "'js helper.js' loads a file"),
    "an_abstraction": (an_abstraction, "'continuo.helper': not in the vendored table of objects real Max saves"),
    "overlapping_controls": (overlapping_controls, "obj-bars and obj-count overlap"),
    "a_control_off_the_device": (a_control_off_the_device,
                                 "outside the {:.1f}x{:.1f} device".format(*build.DEVICE_SIZE)),
    "a_blurry_control": (a_blurry_control, "is not on whole pixels"),
    "a_hidden_control": (a_hidden_control, "obj-preset-menu umenu: not in the presentation"),
}


@pytest.mark.parametrize("breakage", CONVENTION_BREAKAGES)
def test_each_max_for_live_convention_fails_on_a_broken_device(breakage):
    change, words = CONVENTION_BREAKAGES[breakage]
    problems = convention_problems(broken("Continuo.amxd", change))
    assert any(words in problem for problem in problems), problems


def test_a_local_name_passes():
    assert local_name_problems(broken("Continuo.amxd", adding("s ---continuo-jobs"))) == []


# -- the vendored table against the full harvest, where it is here --------------------------------------------------
def shared_maxref() -> Path | None:
    """../shared/maxref beside this checkout (or $CONTINUO_MAXREF): the full harvest and its check_counts.py."""
    candidates = [Path(os.environ["CONTINUO_MAXREF"])] if os.environ.get("CONTINUO_MAXREF") else \
        [parent / "shared" / "maxref" for parent in MAX_DIR.parents]
    return next((path for path in candidates if (path / "objects.json").exists()
                 and (path / "check_counts.py").exists()), None)


SHARED = shared_maxref()
needs_shared = pytest.mark.skipif(
    SHARED is None, reason="../shared/maxref (the full harvest and its check_counts.py) is not beside this "
    "checkout: CI checks against the vendored clients/max/maxref.json alone")


@needs_shared
def test_vendored_table_is_the_harvest_s_entries_for_the_objects_we_use():
    doc = json.loads((SHARED / "objects.json").read_text())
    vendored = json.loads(maxref.TABLE_PATH.read_text())
    assert vendored["objects"] == {key: doc["objects"][key] for key in vendored["objects"]}
    assert vendored["attribute_effects"] == {key: value for key, value in doc["attribute_effects"].items()
                                             if key in vendored["objects"]}
    assert vendored["provenance"]["source_sha256"] == \
        hashlib.sha256((SHARED / "objects.json").read_bytes()).hexdigest(), \
        "the harvest changed: python clients/max/build.py --vendor ../shared/maxref/objects.json"
    used = {record.key for data in build.render().values() for _, patch in maxref.load_patches(data)
            for _, _, record in maxref.walk(patch["patcher"])}
    assert used == set(vendored["objects"])


def run_shared_checker(paths: list[Path]) -> tuple[int, list[str]]:
    result = subprocess.run([sys.executable, str(SHARED / "check_counts.py"), *map(str, paths)],
                            capture_output=True, text=True, timeout=120)
    return result.returncode, result.stdout.splitlines()


@needs_shared
def test_shared_check_counts_passes_every_generated_patch(tmp_path):
    paths = []
    for path, data in build.render().items():
        (tmp_path / path.name).write_bytes(data)
        paths.append(tmp_path / path.name)
    returncode, lines = run_shared_checker(paths)
    assert returncode == 0 and lines == [f"ok: {path} (Max 8.6.4): 0 error(s), 0 warning(s)" for path in paths]


@needs_shared
@pytest.mark.parametrize("breakage", BREAKAGES)
@pytest.mark.parametrize("name", FILES)
def test_shared_and_vendored_checks_say_the_same_of_a_wrong_copy(tmp_path, name, breakage):
    """maxref.py is a port of check_counts.py: on each broken copy both print the same lines, word for word."""
    change, path = BREAKAGES[breakage][0], tmp_path / name
    patcher = broken(name, change)
    data = build.amxd({"patcher": patcher}) if name.endswith(".amxd") else json.dumps({"patcher": patcher}).encode()
    path.write_bytes(data)
    returncode, lines = run_shared_checker([path])
    version, found = maxref.check_patch(maxref.load_patches(path.read_bytes(), str(path))[0][1], TABLE, str(path))
    errors = sum(finding.level == "ERROR" for finding in found)
    assert lines == [str(finding) for finding in found] + [
        f"{'FAIL' if errors else 'ok'}: {path} (Max {version}): {errors} error(s), {len(found) - errors} warning(s)"]
    assert returncode == (1 if errors else 0)
