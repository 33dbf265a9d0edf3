"""The wire protocol: schema shape, request validation, event building, datagram parsing."""

from __future__ import annotations

import json
import math
import re
import struct
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pythonosc import osc_bundle, osc_bundle_builder, osc_message, osc_message_builder
from pythonosc.parsing import osc_types

from bridge import errors
from bridge.errors import BadRequest
from bridge.protocol.docs import DOCS_PATH, render_markdown
from bridge.protocol.schema import (
    ERROR_CODES,
    JOB_ID_ARGS,
    MAX_MESSAGE_BYTES,
    STAGES,
    Request,
    Schema,
    load_schema,
    parse_datagram,
)
from inference import errors as inference_errors
from osc_schema import SCHEMA_PATH

SCHEMA = load_schema()
RAW = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
ARG_KEYS = {"name", "type", "description", "min", "max", "enum", "pattern", "max_length", "allow_empty",
            "separator", "default", "truncate", "aliases", "example", "only_for", "number_text"}


def message(address: str, *args) -> bytes:
    builder = osc_message_builder.OscMessageBuilder(address=address)
    for arg in args:
        builder.add_arg(arg)
    return builder.build().dgram


def bundle(*contents: bytes, timestamp=osc_types.IMMEDIATELY) -> bytes:
    builder = osc_bundle_builder.OscBundleBuilder(timestamp)
    for content in contents:
        parse = osc_bundle.OscBundle if content.startswith(b"#bundle") else osc_message.OscMessage
        builder.add_content(parse(content))
    return builder.build().dgram


# -- the schema file -------------------------------------------------------------------------


def test_schema_is_json_with_every_section():
    for key in ("format", "version", "error_codes", "limits", "patterns", "enums", "settings", "requests", "events"):
        assert key in RAW, key
    assert re.fullmatch(r"\d+\.\d+", RAW["version"])
    assert RAW["limits"]["max_message_bytes"] == 1024 == MAX_MESSAGE_BYTES
    assert RAW["patterns"]["job_id"]["regex"] == "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
    assert RAW["patterns"]["preset"]["regex"] == "^[a-z0-9][a-z0-9_-]{0,47}$"


def test_error_codes_cover_both_error_trees():
    assert ERROR_CODES == ("bad_request", "not_found", "busy", "cancelled", "out_of_memory", "model_error",
                           "io_error", "interrupted", "audio_error", "id_conflict", "disk_full")
    assert all(RAW["error_codes"][code].strip() for code in ERROR_CODES)
    trees = [errors.BridgeError, inference_errors.InferenceError]
    classes = [c for tree in trees for c in (tree, *tree.__subclasses__())]
    assert {c.code for c in classes} <= set(ERROR_CODES)


def test_audio_error_is_its_own_code():
    assert errors.AudioError("plugin threw").code == "audio_error"
    assert not issubclass(errors.AudioError, errors.BadRequest)


def test_setting_lookup_resolves_aliases_and_checks_values_for_presets_and_maps():
    assert SCHEMA.setting("cfg") is SCHEMA.settings["guidance_scale"] and SCHEMA.setting("volume") is None
    temperature = SCHEMA.setting("temperature")
    assert (temperature.type, temperature.min, temperature.max) == ("f", 0.05, 4)
    assert temperature.check(4) == 4.0
    with pytest.raises(ValueError, match=r"^must be a float in 0.05..4, got 4.5$"):
        temperature.check(4.5)


def test_stages_are_the_documented_ones():
    assert STAGES == ("loading", "conditioning", "generating", "decoding", "preparing", "separating", "effects",
                      "transcribing", "writing", "training")


def _arg_specs():
    for table in ("requests", "events"):
        for address, spec in RAW[table].items():
            for arg in spec["args"]:
                yield f"{table}{address}.{arg.get('name')}", arg
    for name, spec in RAW["settings"].items():
        yield f"settings.{name}", {**spec, "name": name}


@pytest.mark.parametrize("where, arg", list(_arg_specs()), ids=lambda v: v if isinstance(v, str) else "")
def test_every_arg_spec_is_well_formed(where, arg):
    assert set(arg) <= ARG_KEYS, where
    assert re.fullmatch(r"[a-z][a-z0-9_]*", arg["name"]) and arg["description"].strip()
    assert arg["type"] in ("s", "i", "f")
    if "pattern" in arg:
        assert arg["type"] == "s" and arg["pattern"] in RAW["patterns"]
    if "enum" in arg:
        assert arg["enum"] in RAW["enums"] or arg["enum"] == "error_code"
    if "min" in arg or "max" in arg:
        assert arg["type"] in ("i", "f") and arg.get("min", -math.inf) <= arg.get("max", math.inf)


@pytest.mark.parametrize("name, pattern", RAW["patterns"].items())
def test_patterns_compile_and_match_their_example(name, pattern):
    assert re.compile(pattern["regex"]).fullmatch(pattern["example"]) and pattern["hint"]


def test_addresses_ops_and_replies_are_consistent():
    expected = {"/continuo/hello", "/continuo/ping", "/continuo/context", "/continuo/generate", "/continuo/continue",
                "/continuo/variations", "/continuo/stems", "/continuo/cancel", "/continuo/get", "/continuo/ack",
                "/continuo/status", "/continuo/presets", "/continuo/presets/reload", "/continuo/models",
                "/continuo/model/load", "/continuo/repaint", "/continuo/layer", "/continuo/extract", "/continuo/cover",
                "/continuo/prune", "/continuo/trash/restore", "/continuo/trash/empty", "/continuo/analyze",
                "/continuo/midi", "/continuo/train_style", "/continuo/jam/start", "/continuo/jam/control",
                "/continuo/jam/stop", "/continuo/jam/bank", "/continuo/jam/transport"}
    assert set(SCHEMA.request_addresses) == expected
    assert {"/continuo/welcome", "/continuo/pong", "/continuo/queued", "/continuo/progress", "/continuo/output",
            "/continuo/done", "/continuo/error", "/continuo/status", "/continuo/context",
            "/continuo/presets", "/continuo/models", "/continuo/adapters", "/continuo/slot", "/continuo/limits",
            "/continuo/partial", "/continuo/storage", "/continuo/session", "/continuo/trash/job",
            "/continuo/trash/result", "/continuo/analysis", "/continuo/beats", "/continuo/training",
            "/continuo/jam/chunk", "/continuo/jam/state", "/continuo/jam/scheduled"} == set(
        SCHEMA.event_addresses)
    ops = [spec.op for spec in SCHEMA.requests.values()]
    assert len(set(ops)) == len(ops) and all(re.fullmatch(r"[a-z_]+", op) for op in ops)
    for spec in SCHEMA.requests.values():
        assert set(spec.replies) <= set(SCHEMA.event_addresses), spec.address


@pytest.mark.parametrize("address", list(RAW["requests"]))
def test_every_request_example_parses(address):
    request = SCHEMA.parse(address, RAW["requests"][address]["example"])
    assert request.op == RAW["requests"][address]["op"]


@pytest.mark.parametrize("name", list(RAW["settings"]))
def test_every_setting_example_parses(name):
    address = (RAW["settings"][name].get("only_for") or ["/continuo/generate"])[0]
    example = RAW["requests"][address]["example"]
    spec = RAW["settings"][name]
    request = SCHEMA.parse(address, [*example, name, spec["example"]])
    assert request.settings == {name: tuple(spec["example"].split(spec["separator"])) if "separator" in spec
                                else spec["example"]}


def test_a_broken_schema_is_refused():
    broken = json.loads(json.dumps(RAW))
    broken["requests"]["/continuo/ping"]["args"][0]["type"] = "x"
    with pytest.raises(ValueError, match="type"):
        Schema(broken)
    broken = json.loads(json.dumps(RAW))
    broken["requests"]["/continuo/ping"]["replies"] = ["/continuo/nope"]
    with pytest.raises(ValueError, match="unknown events"):
        Schema(broken)
    broken = json.loads(json.dumps(RAW))
    broken["settings"]["top_k"]["example"] = 99999
    with pytest.raises(ValueError, match="example"):
        Schema(broken)


# Events that name a job in their first argument but are not about one job's run: a listing of the trash.
NOT_JOB_EVENTS = {"/continuo/trash/job"}


def test_job_events_are_the_events_about_one_job_or_jam():
    named = {address for address, spec in SCHEMA.events.items() if spec.args and spec.args[0].name in JOB_ID_ARGS}
    assert SCHEMA.job_events == named - NOT_JOB_EVENTS
    assert {"/continuo/done", "/continuo/error", "/continuo/training", "/continuo/jam/chunk"} <= SCHEMA.job_events
    assert "/continuo/pong" not in SCHEMA.job_events


def test_a_job_event_must_name_its_job_first_and_only_events_are_job_events():
    broken = json.loads(json.dumps(RAW))
    broken["events"]["/continuo/pong"]["job_event"] = True  # its first argument is seq, not a job id
    with pytest.raises(ValueError, match="job_event's first argument"):
        Schema(broken)
    broken = json.loads(json.dumps(RAW))
    broken["requests"]["/continuo/ping"]["job_event"] = True
    with pytest.raises(ValueError, match="only on events"):
        Schema(broken)
    unmarked = json.loads(json.dumps(RAW))
    del unmarked["events"]["/continuo/done"]["job_event"]
    assert "/continuo/done" not in Schema(unmarked).job_events  # the flag, not a list in code, decides


def test_load_schema_caches_the_default_and_reads_a_path(tmp_path):
    assert load_schema() is load_schema()
    path = tmp_path / "schema.json"
    path.write_text(json.dumps({**RAW, "version": "9.9"}))
    assert load_schema(path).version == "9.9"


def test_docs_match_the_generator():
    assert DOCS_PATH.read_text(encoding="utf-8") == render_markdown(SCHEMA), (
        "docs/osc.md is stale: run `python -m bridge.protocol.docs`")


# -- requests --------------------------------------------------------------------------------

GEN = ["job-1", "default", "warm piano"]

VALID = [
    ("/continuo/hello", ["max", 9001], {"client": "max", "reply_port": 9001}, {}),
    ("/continuo/hello", ["max"], {"client": "max", "reply_port": 0}, {}),
    ("/continuo/hello", ["max", 9001.0], {"client": "max", "reply_port": 9001}, {}),  # integral float -> int
    ("/continuo/ping", [7], {"seq": 7}, {}),
    ("/continuo/ping", [], {"seq": 0}, {}),
    ("/continuo/context", [120, 7, 8, "F# minor", 44100],
     {"bpm": 120.0, "beats_per_bar": 7, "beat_unit": 8, "key": "F# minor", "sample_rate": 44100}, {}),
    ("/continuo/context", [90.5, 4, 4, "", 48000],
     {"bpm": 90.5, "beats_per_bar": 4, "beat_unit": 4, "key": "", "sample_rate": 48000}, {}),
    ("/continuo/generate", [*GEN, 8],
     {"job_id": "job-1", "preset": "default", "prompt": "warm piano", "bars": 8.0}, {}),
    ("/continuo/generate", [*GEN, 0.25, "cfg", 3, "temperature", 0.7, "seed", 42.0, "key", "Bbm"],
     {"job_id": "job-1", "preset": "default", "prompt": "warm piano", "bars": 0.25},
     {"guidance_scale": 3.0, "temperature": 0.7, "seed": 42, "key": "Bbm"}),
    ("/continuo/generate", ["job-1", "default", "", 256.0, "top_k", 0, "top_p", 1],
     {"job_id": "job-1", "preset": "default", "prompt": "", "bars": 256.0}, {"top_k": 0, "top_p": 1.0}),
    ("/continuo/generate", [42, "default", 808, 4.0],  # Max sends numeric symbols as ints
     {"job_id": "42", "preset": "default", "prompt": "808", "bars": 4.0}, {}),
    ("/continuo/continue", ["c.2", "lofi_tape", "/Users/me/loop.wav", 4.0, "prompt_seconds", 5, "bpm", 96],
     {"job_id": "c.2", "preset": "lofi_tape", "input_path": "/Users/me/loop.wav", "bars": 4.0},
     {"prompt_seconds": 5.0, "bpm": 96.0}),
    ("/continuo/continue", ["c-3", "default", "C:/Music/loop.wav", 1.0, "sample_rate", 96000, "beat_unit", 8],
     {"job_id": "c-3", "preset": "default", "input_path": "C:/Music/loop.wav", "bars": 1.0},
     {"sample_rate": 96000, "beat_unit": 8}),
    ("/continuo/variations", ["v-1", "default", "", 4, 2.0, "target_lufs", -14, "true_peak_db", -1.0],
     {"job_id": "v-1", "preset": "default", "input_path": None, "count": 4, "bars": 2.0},
     {"target_lufs": -14.0, "true_peak_db": -1.0}),
    ("/continuo/variations", ["v-2", "default", "/a.wav", 1, 2.0],
     {"job_id": "v-2", "preset": "default", "input_path": "/a.wav", "count": 1, "bars": 2.0}, {}),
    ("/continuo/stems", ["s-1", "/mix.wav", "drums, vocals"],
     {"job_id": "s-1", "input_path": "/mix.wav", "stems": ("drums", "vocals"), "midi": 0}, {}),
    ("/continuo/stems", ["s-2", "/mix.wav"],
     {"job_id": "s-2", "input_path": "/mix.wav", "stems": ("drums", "bass", "other", "vocals"), "midi": 0}, {}),
    ("/continuo/stems", ["s-3", "/mix.wav", "bass", 1],
     {"job_id": "s-3", "input_path": "/mix.wav", "stems": ("bass",), "midi": 1}, {}),
    ("/continuo/midi", ["m-1", "/mix.wav", "mix"], {"job_id": "m-1", "input_path": "/mix.wav", "stems": ("mix",)}, {}),
    ("/continuo/midi", ["m-2", "/mix.wav", "bass,drums", "quantize", 16],
     {"job_id": "m-2", "input_path": "/mix.wav", "stems": ("bass", "drums")}, {"quantize": 16}),
    ("/continuo/analyze", ["/loop.wav"], {"input_path": "/loop.wav"}, {}),
    ("/continuo/cancel", ["*"], {"job_id": "*"}, {}),
    ("/continuo/cancel", ["job-1"], {"job_id": "job-1"}, {}),
    ("/continuo/get", ["job-1"], {"job_id": "job-1"}, {}),
    ("/continuo/ack", ["job-1"], {"job_id": "job-1"}, {}),
    ("/continuo/status", [], {}, {}),
    ("/continuo/presets", [], {}, {}),
    ("/continuo/models", [], {}, {}),
    ("/continuo/model/load", ["facebook/musicgen-small"], {"name": "facebook/musicgen-small", "job_id": None}, {}),
    ("/continuo/model/load", ["/models/ace", "load-1"], {"name": "/models/ace", "job_id": "load-1"}, {}),
]


@pytest.mark.parametrize("address, args, expected_args, expected_settings", VALID,
                         ids=[f"{v[0]}-{i}" for i, v in enumerate(VALID)])
def test_valid_messages_parse(address, args, expected_args, expected_settings):
    request = SCHEMA.parse(address, args)
    assert isinstance(request, Request) and request.address == address
    assert request.op == SCHEMA.requests[address].op
    assert dict(request.args) == expected_args and dict(request.settings) == expected_settings
    for name, value in request.args.items():  # types exactly as declared, not just equal
        assert type(value) is type(expected_args[name]), name
    job_id = expected_args.get("job_id") or ""  # an optional job id left out (None) is the request's ""
    assert request.job_id == ("" if job_id == "*" else job_id)


def test_request_is_immutable():
    request = SCHEMA.parse("/continuo/ping", [1])
    with pytest.raises(TypeError):
        request.args["seq"] = 2  # type: ignore[index]


def test_float32_values_from_the_wire_come_out_tidy():
    (address, args), = parse_datagram(message("/continuo/generate", *GEN, 8.0, "temperature", 0.7, "top_p", 0.95))
    assert args[-1] != 0.95  # float32 on the wire
    request = SCHEMA.parse(address, args)
    assert request.settings == {"temperature": 0.7, "top_p": 0.95}


def test_float32_rounding_at_a_range_edge_is_accepted():
    edge = struct.unpack(">f", struct.pack(">f", 0.05))[0]
    assert SCHEMA.parse("/continuo/generate", [*GEN, 1.0, "temperature", edge]).settings["temperature"] == 0.05


INVALID = [
    # address, args, words the message must contain, job_id recovered
    ("/continuo/nope", ["job-1"], ["unknown address", "/continuo/generate"], "job-1"),
    ("/continuo/generat", ["job-1", "default", "x", 1.0], ["did you mean /continuo/generate"], "job-1"),
    ("/continuo/generate", ["job-1", "default", "x"], ["missing bars", "0.25..256"], "job-1"),
    ("/continuo/generate", [], ["missing job_id"], ""),
    ("/continuo/ping", [1, 2], ["too many arguments", "seq"], ""),
    ("/continuo/ack", ["job-1", "extra"], ["too many arguments", "job_id"], "job-1"),
    ("/continuo/status", [1], ["too many arguments", "no arguments"], ""),
    ("/continuo/generate", ["job-1", "default", "x", "eight"], ["bars must be a float", '"eight"'], "job-1"),
    ("/continuo/generate", ["job-1", "default", "x", -2.0], ["bars must be a float in 0.25..256, got -2.0"], "job-1"),
    ("/continuo/generate", ["job-1", "default", "x", math.nan], ["bars", "got nan"], "job-1"),
    ("/continuo/generate", ["job-1", "default", "x", math.inf], ["bars", "got inf"], "job-1"),
    ("/continuo/generate", ["job-1", "default", "x", True], ["bars", "boolean"], "job-1"),
    ("/continuo/generate", ["job-1", "default", "x", None], ["bars", "nil"], "job-1"),
    ("/continuo/generate", ["job-1", "default", "x", b"\x00\x01"], ["bars", "blob"], "job-1"),
    ("/continuo/generate", ["job-1", "default", 1.5, 4.0], ["prompt must be", "1.5"], "job-1"),
    ("/continuo/generate", ["job-1", "default", "x" * 600, 4.0], ["prompt", "512 bytes"], "job-1"),
    ("/continuo/context", [9000.0, 4, 4, "C", 48000], ["bpm must be a float in 20..400", "9000.0"], ""),
    ("/continuo/context", [120.0, 4, 3, "C", 48000], ["beat_unit", "1, 2, 4, 8, 16, 32", "got 3"], ""),
    ("/continuo/context", [120.0, 4, 4, "H minor", 48000], ["key must be a musical key"], ""),
    ("/continuo/context", [120.0, 4.5, 4, "C", 48000], ["beats_per_bar must be an integer", "4.5"], ""),
    ("/continuo/context", [120.0, 4, 4, "C", 12345], ["sample_rate", "48000", "12345"], ""),
    ("/continuo/generate", ["bad id!", "default", "x", 1.0], ["job_id must be", '"bad id!"'], ""),
    ("/continuo/generate", ["j" * 65, "default", "x", 1.0], ["job_id must be"], ""),
    ("/continuo/generate", ["job-1", "Warm Piano", "x", 1.0], ["preset must be", "lower-case"], "job-1"),
    ("/continuo/generate", ["job-1", "default", "x", 1.0, "temperature"],
     ["name value pairs", '"temperature"', "temperature 1.0"], "job-1"),
    ("/continuo/generate", ["job-1", "default", "x", 1.0, "temp", 1.0],
     ["unknown setting", '"temp"', "did you mean temperature"], "job-1"),
    ("/continuo/generate", ["job-1", "default", "x", 1.0, 3, 1.0], ["setting name must be a string"], "job-1"),
    ("/continuo/generate", ["job-1", "default", "x", 1.0, "cfg", 3.0, "guidance_scale", 2.0],
     ["guidance_scale given twice", "cfg"], "job-1"),
    ("/continuo/generate", ["job-1", "default", "x", 1.0, "bpm", 9000.0], ["setting bpm", "20..400"], "job-1"),
    ("/continuo/generate", ["job-1", "default", "x", 1.0, "top_k", 2.5], ["setting top_k", "integer"], "job-1"),
    ("/continuo/generate", ["job-1", "default", "x", 1.0, "seed", -1], ["setting seed", "0..2147483647"], "job-1"),
    ("/continuo/continue", ["c-1", "default", "relative/clip.wav", 1.0], ["input_path", "absolute path"], "c-1"),
    ("/continuo/continue", ["c-1", "default", "", 1.0], ["input_path", "absolute path"], "c-1"),
    ("/continuo/variations", ["v-1", "default", "", 0, 1.0], ["count must be an integer in 1..16"], "v-1"),
    ("/continuo/stems", ["s-1", "/mix.wav", "drums,piano"], ["stems must be", "drums, bass"], "s-1"),
    ("/continuo/stems", ["s-1", "/mix.wav", "drums,drums"], ["stems must be"], "s-1"),
    ("/continuo/midi", ["m-1", "/mix.wav", "piano"], ["stems must be", "mix, drums"], "m-1"),
    ("/continuo/hello", ["max", 70000], ["reply_port", "0..65535"], ""),
    ("/continuo/cancel", ["**"], ["job_id", "or *"], ""),
    ("/continuo/model/load", [" spaced"], ["name must be", "model name"], ""),
]


@pytest.mark.parametrize("address, args, words, job_id", INVALID, ids=[f"{v[0]}-{i}" for i, v in enumerate(INVALID)])
def test_invalid_messages_raise_bad_request(address, args, words, job_id):
    with pytest.raises(BadRequest) as caught:
        SCHEMA.parse(address, args)
    error = caught.value
    assert error.code == "bad_request" and error.job_id == job_id
    for word in words:
        assert word in error.message, (word, error.message)
    if address in SCHEMA.requests:
        assert f"send e.g. {address}" in error.message  # says what to send instead


def test_error_message_shows_a_complete_valid_example():
    with pytest.raises(BadRequest) as caught:
        SCHEMA.parse("/continuo/generate", ["job-1", "default", "warm piano", -2.0])
    assert caught.value.message == ('bars must be a float in 0.25..256, got -2.0; '
                                    'send e.g. /continuo/generate job-1 default "warm piano" 8.0')


# -- events ----------------------------------------------------------------------------------


@pytest.mark.parametrize("address", list(RAW["events"]))
def test_event_examples_round_trip(address):
    example = RAW["events"][address]["example"]
    dgram = SCHEMA.build_event(address, *example)
    assert len(dgram) < MAX_MESSAGE_BYTES
    [(parsed_address, args)] = parse_datagram(dgram)
    assert parsed_address == address
    assert args == pytest.approx(example)
    types = [a["type"] for a in RAW["events"][address]["args"]]
    assert [{"s": str, "i": int, "f": float}[t] for t in types] == [type(a) for a in args]


@pytest.mark.parametrize("address, args", [
    *((address, tuple(spec["example"])) for address, spec in RAW["events"].items()),
    ("/continuo/error", ("job-1", "model_error", "é" * 2000)),  # truncated to fit
    ("/continuo/progress", ("job-1", 0.1, "decoding")),  # 0.1 is no float32
])
def test_check_event_carries_the_datagram_it_checked_and_the_values_read_back_from_it(address, args):
    event = SCHEMA.check_event(address, *args)
    assert event.address == address and event.osc == SCHEMA.build_event(address, *args)
    assert len(event.osc) < MAX_MESSAGE_BYTES
    assert parse_datagram(event.osc) == [(address, list(event.values))]
    assert isinstance(event.values, tuple)
    with pytest.raises(AttributeError):
        event.osc = b""  # frozen: a stored event is re-sent as it was checked


def test_build_event_coerces_numbers_as_declared():
    [(_, args)] = parse_datagram(SCHEMA.build_event("/continuo/done", "job-1", 2.0, 7, 3))
    assert args == ["job-1", 2, 7, 3.0] and type(args[1]) is int and type(args[3]) is float


@pytest.mark.parametrize("address, args, words", [
    ("/continuo/nope", [], "unknown event"),
    ("/continuo/pong", [], "takes seq"),
    ("/continuo/progress", ["job-1", 1.5, "generating"], "fraction"),
    ("/continuo/progress", ["job-1", 0.5, "dreaming"], "stage"),
    ("/continuo/error", ["job-1", "oops", "x"], "code"),
    ("/continuo/done", ["job-1", 1, 2.5, 1.0], "seed"),
    ("/continuo/output", ["job-1", "mix", "/a.wav", 48000, 2, 1.0, 1.0, math.nan, -1.0], "lufs"),
    ("/continuo/queued", ["job-1", True, 1.0], "position"),
    ("/continuo/error", ["job-1", "bad_request", "x\x00y"], "NUL"),
])
def test_build_event_refuses_args_that_break_the_schema(address, args, words):
    with pytest.raises(ValueError, match=words):
        SCHEMA.build_event(address, *args)


@pytest.mark.parametrize("text", ["x" * 5000, "é" * 3000, "🎹" * 2000, "a" * 1000])
def test_oversized_error_messages_are_truncated(text):
    dgram = SCHEMA.build_event("/continuo/error", "j" * 64, "model_error", text)
    assert len(dgram) < MAX_MESSAGE_BYTES
    [(_, (job_id, code, message_text))] = parse_datagram(dgram)
    assert message_text.endswith("…") and text.startswith(message_text[:-1])
    assert len(dgram) > MAX_MESSAGE_BYTES - 16  # truncated no more than needed


def test_a_message_that_fits_is_not_touched():
    text = "y" * 900
    [(_, args)] = parse_datagram(SCHEMA.build_event("/continuo/error", "job-1", "io_error", text))
    assert args[2] == text


def test_long_paths_are_refused_not_truncated():
    with pytest.raises(ValueError, match="path"):
        SCHEMA.build_event("/continuo/output", "job-1", "mix", "/" + "p" * 1000, 48000, 2, 1.0, 1.0, -14.0, -1.0)


def test_long_preset_descriptions_are_truncated():
    dgram = SCHEMA.build_event("/continuo/presets", "default", "d" * 2000)
    assert len(dgram) < MAX_MESSAGE_BYTES
    assert parse_datagram(dgram)[0][1][1].endswith("…")


# -- datagrams -------------------------------------------------------------------------------


def test_parse_datagram_reads_one_message():
    assert parse_datagram(message("/continuo/ping", 3)) == [("/continuo/ping", [3])]
    assert parse_datagram(b"/continuo/status\x00\x00\x00\x00") == [("/continuo/status", [])]


def test_bundles_are_flattened_in_order_even_with_a_future_timestamp():
    inner = bundle(message("/b", 2), bundle(message("/c", 3)), timestamp=time.time() + 3600)
    outer = bundle(message("/a", 1), inner, message("/d", 4))
    assert parse_datagram(outer) == [("/a", [1]), ("/b", [2]), ("/c", [3]), ("/d", [4])]
    assert parse_datagram(bundle()) == []


def test_bundles_nested_too_deep_are_refused():
    dgram = message("/x")
    for _ in range(SCHEMA.max_bundle_depth):
        dgram = bundle(dgram)
    assert parse_datagram(dgram) == [("/x", [])]
    with pytest.raises(BadRequest, match="nested"):
        parse_datagram(bundle(dgram))


@pytest.mark.parametrize("data, words", [
    (b"", "empty"),
    (b"hello", "not OSC"),
    (b"/continuo/ping\x00\x00,i\x00\x00\x00", "malformed"),  # int cut short
    (b"/continuo/ping\x00\x00i\x00\x00\x00", "must start with"),
    (b"/x\x00\x00,c\x00\x00abcd", "unsupported"),
    (b"/\xff\xfe\x00", "malformed"),  # not UTF-8
    (b"#bundle\x00", "malformed"),  # no timetag
    (b"#bundle\x00" + b"\x00" * 8 + struct.pack(">i", 400) + b"/x\x00\x00", "overruns"),
    (b"#bundle\x00" + b"\x00" * 8 + struct.pack(">i", -4), "overruns"),
    (b"#bundle\x00" + b"\x00" * 8 + struct.pack(">i", 4) + b"zzzz", "not OSC"),
    (b"/x\x00\x00,[\x00\x00", "malformed"),  # unclosed array
])
def test_malformed_datagrams_raise_bad_request(data, words):
    with pytest.raises(BadRequest, match=words) as caught:
        parse_datagram(data)
    assert caught.value.code == "bad_request" and caught.value.job_id == ""


_fuzz = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _only_bad_request(data: bytes) -> None:
    try:
        result = parse_datagram(data)
    except BadRequest:
        return
    assert isinstance(result, list)
    for address, args in result:
        assert isinstance(address, str) and isinstance(args, list)


@_fuzz
@given(st.binary(max_size=256))
def test_random_bytes_only_ever_raise_bad_request(data):
    _only_bad_request(data)


@_fuzz
@given(st.sampled_from([b"/", b"/continuo/generate\x00\x00,", b"#bundle\x00", b"#bundle\x00" + b"\x00" * 7 + b"\x01"]),
       st.binary(max_size=256))
def test_osc_looking_garbage_only_ever_raises_bad_request(prefix, data):
    _only_bad_request(prefix + data)


@_fuzz
@given(st.data())
def test_mutated_valid_datagrams_only_ever_raise_bad_request(data):
    valid = bundle(message("/continuo/generate", "job-1", "default", "warm piano", 8.0, "cfg", 3),
                   bundle(message("/continuo/ping", 1)))
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(valid) - 1), st.integers(0, 255)), max_size=6))
    mutated = bytearray(valid)
    for index, value in flips:
        mutated[index] = value
    cut = data.draw(st.integers(0, len(mutated)))
    _only_bad_request(bytes(mutated[:cut]))


@_fuzz
@given(st.lists(st.one_of(st.integers(-2**31, 2**31 - 1), st.floats(width=32), st.text(max_size=20),
                          st.booleans(), st.none(), st.binary(min_size=1, max_size=8)), max_size=12),
       st.sampled_from(sorted(RAW["requests"])))
def test_parse_never_raises_anything_but_bad_request(args, address):
    try:
        request = SCHEMA.parse(address, args)
    except BadRequest as exc:
        assert exc.message and ("send e.g." in exc.message)
    else:
        assert request.address == address


def test_a_float_near_the_float32_maximum_is_refused_by_range_not_by_a_crash():
    """3.4025e38 fits a float32, but its 4-digit decimal (3.403e38) does not: tidying it must not overflow."""
    with pytest.raises(BadRequest, match="bpm"):
        SCHEMA.parse("/continuo/context", [3.4025001647762064e38, 4, 4, "C", 48000])


def test_named_arguments_skip_optional_ones_without_shifting_the_rest():
    """HTTP and ZeroMQ name arguments: naming a later optional one gives the earlier ones their defaults (before,
    {"older_than_days": 30} for /continuo/prune landed in apply's place)."""
    spec = SCHEMA.requests["/continuo/prune"]
    values, unknown = spec.positional({"older_than_days": 30.0}, {})
    assert values == [0, 30.0] and unknown == []
    assert SCHEMA.parse("/continuo/prune", values).args == {"apply": 0, "older_than_days": 30.0, "keep_newest": 0,
                                                            "max_total_gb": 0.0, "keep_used_days": 7.0}
    assert spec.positional({"keep_used_days": 1.0, "apply": 1}, {})[0] == [1, 0.0, 0, 0.0, 1.0]
    assert spec.positional({}, {})[0] == []


def test_a_refusal_reads_back_for_each_front_end_with_the_daemons_limits():
    """parse with a daemon's limits states that daemon's range (max_bars 64, not the schema's 256); read_refusal
    gets the field, the rule in plain words and the value back from the one wording, for the CLI and the page to
    say in theirs; a message that is no value refusal reads as None, and loses only its OSC example."""
    from bridge.errors import BadRequest
    from bridge.protocol.schema import read_refusal, without_osc_example

    with pytest.raises(BadRequest) as caught:
        SCHEMA.parse("/continuo/generate", ["j", "default", "x", 100.0], limits={"bars": 64.0})
    refusal = read_refusal(caught.value.message)
    assert (refusal.field, refusal.rule, refusal.got) == ("bars", "a number in 0.25..64", "100.0")
    SCHEMA.parse("/continuo/generate", ["j", "default", "x", 100.0])  # without limits: the schema's range
    with pytest.raises(BadRequest) as caught:
        SCHEMA.parse("/continuo/generate", ["j", "default", "x", 4.0, "seed", -1])
    assert read_refusal(caught.value.message).rule == "a whole number in 0..2147483647"
    with pytest.raises(BadRequest) as caught:
        SCHEMA.parse("/continuo/generate", ["j", "default", "x", 4.0, "colour", "red"])
    assert read_refusal(caught.value.message) is None
    assert "send e.g." in caught.value.message and "send e.g." not in without_osc_example(caught.value.message)


def test_a_jam_setting_is_refused_on_a_job_and_taken_by_a_jam():
    """only_for: the jam's own settings belong to /continuo/jam/start; a generate naming one is told so."""
    start = SCHEMA.parse("/continuo/jam/start", ["jam-1", "dark techno", "clock", "host", "lookahead_bars", 2])
    assert start.job_id == "jam-1" and dict(start.settings) == {"clock": "host", "lookahead_bars": 2}
    with pytest.raises(BadRequest, match="setting clock belongs to /continuo/jam/start only"):
        SCHEMA.parse("/continuo/generate", ["job-1", "default", "x", 1.0, "clock", "host"])


def test_a_jam_control_takes_a_number_as_its_text():
    """Max and Pd send 0.5 as a float: number_text makes it "0.5"; elsewhere a float for a string stays refused."""
    control = SCHEMA.parse("/continuo/jam/control", ["jam-1", "temperature", 0.7])
    assert control.args["value"] == "0.7" and SCHEMA.parse("/continuo/jam/control", ["jam-1", "mute", 1.0]).args[
        "value"] == "1"
    with pytest.raises(BadRequest, match="prompt"):
        SCHEMA.parse("/continuo/generate", ["job-1", "default", 0.7, 1.0])  # control: no number_text there
