"""The Max for Live device (clients/max/Continuo.amxd) and the plain Max patch (clients/max/continuo.maxpat).

Max cannot run here, so these are structural checks: every box is a known object with the inlet and outlet
counts Max gives it (the table in clients/max/build.py, with its sources), every patch line joins an existing
outlet to an existing inlet, every OSC message the patch can send is a request of the schema with its argument
types in order, every event the daemon sends is routed to something, [udpreceive] listens on the port hello
names, and the .amxd container has the right header. Each check is shown failing on a broken copy.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import struct
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
def box_problems(patcher: dict) -> list[str]:
    """Each box: a known object, with the counts Max gives it."""
    problems = []
    for box_id, box in boxes_of(patcher).items():
        try:
            counts = build.box_counts(box["maxclass"], box.get("text", ""))
        except (KeyError, ValueError):
            problems.append(f"{box_id}: unknown object {box['maxclass']} {box.get('text', '')!r}")
            continue
        if (box["numinlets"], box["numoutlets"]) != counts:
            problems.append(f"{box_id} {box.get('text', box['maxclass'])!r}: {box['numinlets']} inlets and "
                            f"{box['numoutlets']} outlets in the file, Max makes {counts[0]} and {counts[1]}")
    return problems


def line_problems(patcher: dict) -> list[str]:
    """Each line: from an outlet that exists to an inlet that exists (counts from the table, not the file)."""
    boxes, problems = boxes_of(patcher), []
    for source, outlet, sink, inlet in lines_of(patcher):
        if source not in boxes or sink not in boxes:
            problems.append(f"line {source}:{outlet} -> {sink}:{inlet}: no such box")
            continue
        outlets = build.box_counts(boxes[source]["maxclass"], boxes[source].get("text", ""))[1]
        inlets = build.box_counts(boxes[sink]["maxclass"], boxes[sink].get("text", ""))[0]
        if not 0 <= outlet < outlets:
            problems.append(f"line from {source} outlet {outlet}: it has {outlets}")
        if not 0 <= inlet < inlets:
            problems.append(f"line into {sink} inlet {inlet}: it has {inlets}")
    return problems


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


def all_problems(patcher: dict) -> list[str]:
    return (box_problems(patcher) + line_problems(patcher) + send_problems(patcher) + routing_problems(patcher)
            + port_problems(patcher))


# -- the committed files ----------------------------------------------------------------------------------
FILES = {"continuo.maxpat": MAX_DIR / "continuo.maxpat", "Continuo.amxd": MAX_DIR / "Continuo.amxd"}


def test_committed_files_are_what_build_writes():
    for path, data in build.render().items():
        assert path.read_bytes() == data, f"{path.name} is stale: run python clients/max/build.py"


@pytest.mark.parametrize("name", FILES)
def test_patch_passes_every_structural_check(name):
    assert all_problems(patcher_of(FILES[name].read_bytes())) == []


@pytest.mark.parametrize("name", FILES)
def test_patch_sends_each_request_a_musician_needs(name):
    addresses = {address for address, _, _ in sent_messages(patcher_of(FILES[name].read_bytes()))}
    assert {"/continuo/hello", "/continuo/context", "/continuo/generate", "/continuo/continue",
            "/continuo/variations", "/continuo/stems", "/continuo/cancel", "/continuo/ack",
            "/continuo/presets"} <= addresses


def test_device_header():
    assert header_problems(FILES["Continuo.amxd"].read_bytes()) == []


def test_device_follows_live_and_puts_clips_in_slots():
    texts = [box.get("text", "") for box in boxes_of(patcher_of(FILES["Continuo.amxd"].read_bytes())).values()]
    for observed in ("tempo", "signature_numerator", "signature_denominator", "root_note", "scale_name"):
        assert f"live.observer {observed}" in texts
    assert "live.path live_set" in texts and "prepend call create_audio_clip" in texts
    classes = {box["maxclass"] for box in boxes_of(patcher_of(FILES["Continuo.amxd"].read_bytes())).values()}
    assert {"live.drop", "umenu"} <= classes


def test_plain_patch_uses_transport_dropfile_and_buffer():
    patcher = patcher_of(FILES["continuo.maxpat"].read_bytes())
    texts = {box.get("text", "").split(" ")[0] for box in boxes_of(patcher).values()}
    classes = {box["maxclass"] for box in boxes_of(patcher).values()}
    assert {"transport", "buffer~", "play~"} <= texts and "dropfile" in classes


# -- the checks fail on broken copies -------------------------------------------------------------------------
def broken(name: str, change) -> dict:
    patcher = copy.deepcopy(patcher_of(FILES[name].read_bytes()))
    change(patcher)
    return patcher


def box_with(patcher: dict, text: str) -> dict:
    return next(box for box in boxes_of(patcher).values() if box.get("text", "") == text)


@pytest.mark.parametrize("name", FILES)
def test_a_line_into_an_inlet_that_does_not_exist_fails(name):
    def change(patcher):
        udpsend = box_with(patcher, "udpsend 127.0.0.1 9000")["id"]
        line = next(entry for entry in patcher["lines"] if entry["patchline"]["destination"][0] == udpsend)
        line["patchline"]["destination"][1] = 1  # udpsend has one inlet
    assert line_problems(broken(name, change)) == ["line into obj-udpsend inlet 1: it has 1"]


@pytest.mark.parametrize("name", FILES)
def test_wrong_counts_and_unknown_objects_fail(name):
    def change(patcher):
        box_with(patcher, "unpack s i i f")["numoutlets"] = 3
        box_with(patcher, "tosymbol")["text"] = "tosymbolic"
    problems = box_problems(broken(name, change))
    assert len(problems) == 2 and "Max makes 1 and 4" in problems[0] + problems[1]
    assert any("unknown object newobj 'tosymbolic'" in problem for problem in problems)


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
        route = next(box for box in boxes_of(patcher).values() if box.get("text", "").startswith("route /continuo"))
        route["text"] = route["text"].replace(" /continuo/error", "")
        route["numoutlets"] -= 1
    assert routing_problems(broken(name, drop_error)) == ["/continuo/error: not matched by [route]"]

    def cut_done(patcher):
        route = next(box for box in boxes_of(patcher).values() if box.get("text", "").startswith("route /continuo"))
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
