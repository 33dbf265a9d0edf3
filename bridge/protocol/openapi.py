"""The HTTP form of the OSC address space, generated from the schema: request bodies, event JSON, OpenAPI.

Every OSC request has an HTTP form. A JSON object names the request's arguments by the
schema's names and its settings in a "settings" object; `request_from_json` turns it into
the positional (address, args) an OSC message would carry, so `Schema.parse`, admission
and the error codes are the daemon's own. Job requests (generate, continue, variations,
stems) are `POST /api/jobs` with an "op"; `get` is `GET /api/jobs/{id}`, `cancel` is
`DELETE /api/jobs/{id}`, `status`, `presets`, `models` are GETs; every request, these
included, is also `POST /api/requests/{op}`. Events travel as JSON (`event_json`): the
event's name and its arguments by name. `build_openapi` writes the OpenAPI 3.1 document
(`python -m bridge.protocol.openapi` rewrites docs/openapi.json; a test fails while it is stale).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bridge.protocol.schema import ArgSpec, Event, MessageSpec, Schema, load_schema

DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
PREFIX = "/continuo/"

# The wire's error code -> the HTTP status of a refused request. A job that failed later is not a failed
# HTTP request: GET /api/jobs/{id} answers 200 with the job's error in it.
HTTP_STATUS = {"bad_request": 400, "not_found": 404, "busy": 503, "cancelled": 409, "out_of_memory": 507,
               "model_error": 500, "io_error": 500, "interrupted": 503, "audio_error": 500,
               "id_conflict": 409, "disk_full": 507}
UNKNOWN_CODE_STATUS = 500
UPLOAD_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,127}$"  # an uploaded input's name: no folders
CHUNK_PATTERN = r"^(variation-\d{1,2}/)?chunk-\d{4,6}\.wav$"  # a preview chunk under <job>/preview/


class FormError(ValueError):
    """An HTTP body that cannot be an OSC request (not an object, unknown names); answered as bad_request."""


def http_status(code: str) -> int:
    return HTTP_STATUS.get(code, UNKNOWN_CODE_STATUS)


def job_ops(schema: Schema) -> dict[str, MessageSpec]:
    """The requests that make a job (their replies include /continuo/queued), by op: POST /api/jobs."""
    return {spec.op: spec for spec in schema.requests.values()
            if "/continuo/queued" in spec.replies and spec.args and spec.args[0].name == "job_id"
            and spec.op != "get"}


def ops(schema: Schema) -> dict[str, MessageSpec]:
    return {spec.op: spec for spec in schema.requests.values()}


def event_name(address: str) -> str:
    """/continuo/queued -> queued, /continuo/presets/reload -> presets/reload."""
    return address[len(PREFIX):] if address.startswith(PREFIX) else address


def request_from_json(spec: MessageSpec, body: Any) -> list[Any]:
    """The positional OSC arguments (then setting name/value pairs) for a JSON body; FormError when it cannot be."""
    if not isinstance(body, Mapping):
        raise FormError(f"the body must be a JSON object naming the arguments: {spec.signature()}")
    settings = body.get("settings", {})
    if not isinstance(settings, Mapping):
        raise FormError('"settings" must be a JSON object of setting name -> value')
    if settings and not spec.settings:
        raise FormError(f"{event_name(spec.address)} takes no settings")
    args = {name: value for name, value in body.items() if name not in ("op", "settings")}
    for name, value in (*args.items(), *settings.items()):
        if not isinstance(value, (str, int, float)):  # booleans go on: the schema refuses them as OSC does
            raise FormError(f"{name}: {json.dumps(value)[:60]} is not a string or a number")
    positional, unknown = spec.positional(args, settings)
    if unknown:
        raise FormError(f"unknown argument(s) {', '.join(unknown)}; {spec.op} takes {spec.signature()}")
    return positional


def event_json(schema: Schema, event: Event) -> dict[str, Any]:
    """{"event": name, "args": {name: value}} from a checked Event's values (what every transport carries)."""
    spec = schema.events.get(event.address)
    names = [arg.name for arg in spec.args] if spec is not None else [f"arg{i}" for i in range(len(event.values))]
    return {"event": event_name(event.address), "args": dict(zip(names, event.values))}


# -- OpenAPI ---------------------------------------------------------------------------------------------
def json_schema(arg: ArgSpec, schema: Schema) -> dict[str, Any]:
    """A JSON Schema for one argument or setting, from its spec (what Schema.parse accepts)."""
    out: dict[str, Any] = {"description": arg.description} if arg.description else {}
    if arg.type == "s":
        out["type"] = "string"
        if arg.separator:
            out["description"] = f"{arg.description} ({arg.constraint_text()})".strip()
        elif arg.enum is not None:
            out["enum"] = list(arg.enum)
        elif arg.pattern is not None:
            out["pattern"] = arg.pattern.pattern
        if arg.max_length is not None:
            out["maxLength"] = arg.max_length  # UTF-8 bytes on the wire; JSON Schema counts characters
    else:
        out["type"] = "integer" if arg.type == "i" else "number"
        if arg.enum is not None:
            out["enum"] = list(arg.enum)
        if arg.min is not None:
            out["minimum"] = arg.min
        if arg.max is not None:
            out["maximum"] = arg.max
    if arg.optional and arg.default is not None:
        out["default"] = arg.default
    if arg.example is not None:
        out["examples"] = [arg.example]
    return out


def _body_schema(spec: MessageSpec, schema: Schema, *, with_op: bool) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    if with_op:
        properties["op"] = {"const": spec.op}
    properties.update({arg.name: json_schema(arg, schema) for arg in spec.args})
    if spec.settings:
        properties["settings"] = {"$ref": "#/components/schemas/Settings"}
    required = (["op"] if with_op else []) + [arg.name for arg in spec.args if not arg.optional]
    body: dict[str, Any] = {"type": "object", "description": spec.description, "properties": properties,
                            "additionalProperties": False}
    if required:
        body["required"] = required
    example = {arg.name: value for arg, value in zip(spec.args, spec.example)}
    body["examples"] = [{"op": spec.op, **example} if with_op else example]
    return body


def _event_schema(address: str, spec: MessageSpec, schema: Schema) -> dict[str, Any]:
    args = {arg.name: json_schema(arg, schema) for arg in spec.args}
    if address in ("/continuo/output", "/continuo/partial"):
        args["url"] = {"type": "string", "description": "Where this daemon serves the file over HTTP (Range works)."}
    return {"type": "object", "description": spec.description,
            "properties": {"event": {"const": event_name(address)},
                           "args": {"type": "object", "properties": args, "required": [a.name for a in spec.args]}},
            "required": ["event", "args"]}


def _replies(description: str, schema_ref: str = "#/components/schemas/Reply") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": schema_ref}}}}


def _errors(*codes: str) -> dict[str, Any]:
    statuses: dict[str, list[str]] = {}
    for code in codes:
        statuses.setdefault(str(http_status(code)), []).append(code)
    return {status: _replies("Refused: /continuo/error with code " + " or ".join(names))
            for status, names in sorted(statuses.items())}


def build_openapi(schema: Schema, version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the HTTP API, every body and event from the schema."""
    jobs = job_ops(schema)
    all_ops = ops(schema)
    codes = list(schema.error_codes)
    components: dict[str, Any] = {
        "Settings": {"type": "object", "description": "Request settings by name (aliases accepted), as the OSC "
                     "name/value pairs after the positional arguments.",
                     "properties": {name: json_schema(spec, schema) for name, spec in schema.settings.items()},
                     "additionalProperties": False},
        "Event": {"oneOf": [{"$ref": f"#/components/schemas/event.{event_name(a)}"} for a in schema.events]},
        "Reply": {"type": "object", "description": "The events the daemon answered the request with, in order "
                  "(the same events an OSC client gets); a refused request has an error event and `error`.",
                  "properties": {"events": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}},
                                 "error": {"type": "object", "properties": {
                                     "job_id": {"type": "string"}, "code": {"enum": codes},
                                     "message": {"type": "string", "description": "The daemon's words, without "
                                                 "the OSC example an OSC client gets"},
                                     "field": {"type": "string", "description": "A refused value's argument or "
                                               "setting name (with rule and got), for a form to word its way"},
                                     "rule": {"type": "string", "description": "What the field must be, e.g. "
                                              "'a number in 0.25..64' (this daemon's limits)"},
                                     "got": {"type": "string", "description": "The value refused"}}}},
                  "required": ["events"]},
    }
    for address, spec in schema.events.items():
        components[f"event.{event_name(address)}"] = _event_schema(address, spec, schema)
    for op, spec in all_ops.items():
        components[f"request.{op}"] = _body_schema(spec, schema, with_op=op in jobs)
    job_id = {"name": "job_id", "in": "path", "required": True,
              "schema": {"type": "string", "pattern": schema.patterns["job_id"][0].pattern}}
    paths: dict[str, Any] = {
        "/api/jobs": {
            "get": {"summary": "Recent jobs from the journal, newest first (history; survives restarts).",
                    "parameters": [{"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                                                  "maximum": 500, "default": 50}}],
                    "responses": {"200": {"description": "{jobs: [...], event_id}: event_id is the newest event's "
                                                         "id when the history was read; /api/events with "
                                                         "?last_event_id= it sends every event after it"}}},
            "post": {"summary": "Start a job: " + ", ".join(jobs) + " (the OSC request of that name).",
                     "requestBody": {"required": True, "content": {"application/json": {"schema": {
                         "oneOf": [{"$ref": f"#/components/schemas/request.{op}"} for op in jobs],
                         "discriminator": {"propertyName": "op"}}}}},
                     "responses": {"202": _replies("Accepted: the queued event (position, eta_s)"),
                                   "200": _replies("The job id was known: its state is replayed"),
                                   **_errors(*codes)}},
        },
        "/api/jobs/{job_id}": {
            "get": {"summary": all_ops["get"].description, "parameters": [job_id],
                    "responses": {"200": _replies("The job (from the journal) and its replayed events"),
                                  **_errors("bad_request", "not_found")}},
            "delete": {"summary": all_ops["cancel"].description, "parameters": [job_id],
                       "responses": {"202": _replies("Cancel requested (a running job stops after its step)"),
                                     "200": _replies("Already finished: its state is replayed"),
                                     **_errors("bad_request")}},
        },
        "/api/jobs/{job_id}/files/{name}": {
            "get": {"summary": "Download one output or stem (audio/wav; Range requests for seeking).",
                    "parameters": [job_id, {"name": "name", "in": "path", "required": True, "schema": {
                        "type": "string", "pattern": schema.patterns["output_name"][0].pattern}}],
                    "responses": {"200": {"description": "The WAV file", "content": {"audio/wav": {}}},
                                  "206": {"description": "The requested byte range"},
                                  "404": _replies("No such job or output")}},
        },
        "/api/jobs/{job_id}/peaks/{name}": {
            "get": {"summary": "One output's waveform, measured at its full rate: 512 (min, max) pairs of int8 "
                               "(-127..127 is -1..1), 1024 bytes whatever its length; what the page draws instead "
                               "of downloading the audio.",
                    "parameters": [job_id, {"name": "name", "in": "path", "required": True, "schema": {
                        "type": "string", "pattern": schema.patterns["output_name"][0].pattern}}],
                    "responses": {"200": {"description": "The peaks", "content": {"application/octet-stream": {}}},
                                  "404": _replies("No such job or output")}},
        },
        "/api/jobs/{job_id}/join": {
            "get": {"summary": "Hear a finished continuation's seam: its input's last 2 bars, the silence up to the "
                               "next downbeat (where the continuation starts), then the new mix's first 2 bars, as "
                               "a 16-bit WAV made on request (not kept).",
                    "parameters": [job_id],
                    "responses": {"200": {"description": "The join", "content": {"audio/wav": {}}},
                                  "404": _replies("No such finished continuation, or its input is gone")}},
        },
        "/api/jobs/{job_id}/preview/{chunk}": {
            "get": {"summary": "A streamed preview chunk (stream 1), as named by its partial event's url.",
                    "parameters": [job_id, {"name": "chunk", "in": "path", "required": True, "schema": {
                        "type": "string", "pattern": CHUNK_PATTERN}}],
                    "responses": {"200": {"description": "The WAV chunk", "content": {"audio/wav": {}}},
                                  "404": _replies("No such chunk")}},
        },
        "/api/inputs": {
            "post": {"summary": "Upload an input clip (the raw file as the body); it is written atomically to the "
                                "inbox and checked (size, duration, readable audio). Use the returned path as an "
                                "input_path.",
                     "parameters": [{"name": "name", "in": "query", "schema": {"type": "string",
                                                                                "pattern": UPLOAD_NAME_PATTERN}}],
                     "requestBody": {"required": True, "content": {"application/octet-stream": {}}},
                     "responses": {"201": {"description": "{path, seconds, sample_rate, channels}"},
                                   "400": _replies("Not audio, or a name with a path in it"),
                                   "413": _replies("Over max_input_bytes or max_input_s")}},
        },
        "/api/events": {
            "get": {"summary": "Server-Sent Events: every job event (queued, progress, partial, output, done, "
                               "error) as JSON, `event:` its name, `id:` for resuming with Last-Event-ID; a "
                               "`reset` event asks the client to reload /api/jobs (its id is older than the "
                               "daemon's memory, or the daemon restarted).",
                    "parameters": [{"name": "job", "in": "query", "schema": {"type": "string"}},
                                   {"name": "last_event_id", "in": "query", "schema": {"type": "string"}},
                                   {"name": "Last-Event-ID", "in": "header", "schema": {"type": "string"}}],
                    "responses": {"200": {"description": "text/event-stream",
                                          "content": {"text/event-stream": {}}}}},
        },
        "/api/status": {"get": {"summary": all_ops["status"].description + " Plus this daemon's model, device and "
                                "smoke-model flag, why stems cannot run here (`daemon.stems_unavailable`, empty when "
                                "they can), and `form`: each number field's min and max (the schema's, capped by "
                                "max_bars and max_variations) and its rule in words.",
                                "responses": {"200": _replies("status, limits, storage and session events")}}},
        "/api/presets": {"get": {"summary": all_ops["presets"].description + " Plus the MIDI maps.",
                                 "responses": {"200": _replies("one presets event per preset")}}},
        "/api/models": {"get": {"summary": all_ops["models"].description + " Plus lora_adapters: the names of "
                                "the LoRA adapters in the daemon's lora_dir (the lora setting takes one).",
                                "responses": {"200": _replies("one models event per model")}}},
    }
    for op, spec in all_ops.items():
        paths[f"/api/requests/{op}"] = {"post": {
            "summary": f"{spec.address}: {spec.description}",
            "requestBody": {"content": {"application/json": {
                "schema": {"$ref": f"#/components/schemas/request.{op}"}}}},
            "responses": {"200": _replies(f"The replies: {', '.join(map(event_name, spec.replies)) or 'none'}"),
                          **_errors(*codes)}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Continuo HTTP API", "version": version,
                 "description": f"Generated from osc_schema/continuo.json (protocol {schema.version}) by "
                                "bridge/protocol/openapi.py; do not edit. Loopback needs no token; any other bind "
                                "needs `Authorization: Bearer <token>`."},
        "components": {"schemas": components,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{}, {"bearer": []}],
        "paths": paths,
    }


def render_openapi(schema: Schema | None = None) -> str:
    from bridge import __version__

    return json.dumps(build_openapi(schema or load_schema(), __version__), indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """`python -m bridge.protocol.openapi [--check]`: rewrite docs/openapi.json, or fail while it is stale."""
    argv = sys.argv[1:] if argv is None else argv
    text = render_openapi()
    if "--check" in argv:
        if not DOC_PATH.exists() or DOC_PATH.read_text() != text:
            print(f"{DOC_PATH} is stale; run python -m bridge.protocol.openapi", file=sys.stderr)
            return 1
        return 0
    DOC_PATH.write_text(text)
    print(f"wrote {DOC_PATH}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
