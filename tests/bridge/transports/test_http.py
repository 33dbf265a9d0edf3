"""The HTTP transport: every route and error code, SSE resume, uploads, downloads, and each security rule.

Against a real in-process daemon on the tiny model (its HTTP server on a free loopback port, a real socket:
the socket is the point), and against the bare HttpServer with a scripted on_message for the error-code table.
"""

from __future__ import annotations

import http.client
import io
import json
import re
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf
from anyio import open_file  # noqa: F401  see below

from bridge.daemon import Daemon
from bridge.errors import ConfigError
from bridge.protocol import openapi
from bridge.protocol.schema import load_schema
from bridge.settings import load_settings
from bridge.transports.http import HttpServer
from tests.daemons import daemon_settings

# anyio imports open_file lazily, on the first download: on uvicorn's thread, where pytest (anyio is one of its
# plugins, so its modules are rewritten) parses the module while other threads run. Python 3.11's AST builder then
# failed now and again ("SystemError: AST constructor recursion depth mismatch"): a download that ended without its
# body, in full runs only. Imported above, on the main thread, before any server starts.

SCHEMA = load_schema()


@pytest.fixture(scope="module")
def daemon(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("http")
    (root / "inbox").mkdir()
    (root / "loras").mkdir()
    (root / "loras" / "tape.safetensors").write_bytes(b"listed by name; never loaded here")
    settings = daemon_settings(tiny_model_dir, root, http_port=0, cpu_threads=1, lora_dir=root / "loras",
                               input_roots=f"{root / 'renders'}:{root / 'inbox'}",
                               max_batch=1)  # one job at a time: a held job keeps the next one queued
    d = Daemon(settings)
    d.startup()
    yield d
    d.request_stop()
    d.shutdown()


@pytest.fixture
def client(daemon):
    with httpx.Client(base_url=daemon.transports.http.url, timeout=30) as c:
        yield c


def wav_bytes(seconds: float = 1.0, rate: int = 32000, channels: int = 1, value: float | None = None) -> bytes:
    frames = int(seconds * rate)
    audio = np.sin(np.linspace(0, 440 * 2 * np.pi * seconds, frames, dtype=np.float32))[:, None] * 0.3
    audio = np.repeat(audio, channels, axis=1)
    if value is not None:
        audio[frames // 2] = value
    out = io.BytesIO()
    sf.write(out, audio, rate, format="WAV", subtype="FLOAT")
    return out.getvalue()


def wait_job(client, job_id: str, timeout_s: float = 120) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        reply = client.get(f"/api/jobs/{job_id}").json()
        if reply["job"]["status"] not in ("queued", "running"):
            return reply
        time.sleep(0.1)
    raise AssertionError(f"{job_id} did not end: {reply}")


# -- the OpenAPI document ---------------------------------------------------------------------------------
def test_openapi_doc_is_current():
    assert openapi.DOC_PATH.read_text() == openapi.render_openapi(), \
        "docs/openapi.json is stale: run python -m bridge.protocol.openapi"


def test_openapi_follows_the_schema(tmp_path):
    data = json.loads(openapi.DOC_PATH.read_text())
    job_bodies = data["paths"]["/api/jobs"]["post"]["requestBody"]["content"]["application/json"]["schema"]["oneOf"]
    built = {"generate", "continue", "variations", "stems", "repaint", "extract", "layer", "cover", "midi",
             "train_style"}  # jobs
    assert {ref["$ref"].rsplit(".", 1)[1] for ref in job_bodies} == built
    assert set(data["paths"]) >= {f"/api/requests/{spec.op}" for spec in SCHEMA.requests.values()}
    bars = data["components"]["schemas"]["request.generate"]["properties"]["bars"]
    assert (bars["minimum"], bars["maximum"]) == (0.25, 256)
    # A schema with one more job request and another range gives another document: the staleness test would fail.
    raw = json.loads(json.dumps(SCHEMA.raw))
    raw["requests"]["/continuo/remix"] = {**raw["requests"]["/continuo/generate"], "op": "remix"}
    raw["requests"]["/continuo/generate"]["args"][3]["max"] = 64
    from bridge.protocol.schema import Schema

    changed = openapi.render_openapi(Schema(raw))
    assert changed != openapi.render_openapi()
    assert "request.remix" in json.loads(changed)["paths"]["/api/jobs"]["post"]["requestBody"]["content"][
        "application/json"]["schema"]["oneOf"][-1]["$ref"]
    assert openapi.main(["--check"]) == 0


def test_served_openapi_is_the_document(client):
    assert client.get("/api/openapi.json").json() == json.loads(openapi.DOC_PATH.read_text())


# -- jobs ---------------------------------------------------------------------------------------------------
def test_generate_download_and_replay(client, daemon):
    reply = client.post("/api/jobs", json={"op": "generate", "job_id": "h-gen", "preset": "default",
                                           "prompt": "test", "bars": 1, "settings": {"bpm": 120, "seed": 7}})
    assert reply.status_code == 202, reply.text
    assert reply.json()["events"][0]["event"] == "queued"
    job = wait_job(client, "h-gen")
    assert job["job"]["status"] == "done" and job["job"]["seed"] == 7
    assert [e["event"] for e in job["events"]] == ["output", "done"]
    output = job["events"][0]["args"]
    assert output["url"] == "/api/jobs/h-gen/files/mix" and output["seconds"] == pytest.approx(2.0)
    whole = client.get(output["url"])
    assert whole.status_code == 200 and whole.headers["content-type"] == "audio/wav"
    assert whole.headers["accept-ranges"] == "bytes"
    audio, rate = sf.read(io.BytesIO(whole.content))
    assert rate == 48000 and len(audio) == 96000  # one bar at 120 BPM in 4/4
    part = client.get(output["url"], headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == whole.content[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(whole.content)}"
    assert client.get(output["url"], headers={"Range": f"bytes={len(whole.content) + 10}-"}).status_code == 416
    body = {"op": "generate", "job_id": "h-gen", "preset": "default", "prompt": "test", "bars": 1,
            "settings": {"bpm": 120, "seed": 7}}
    again = client.post("/api/jobs", json=body)  # a resend: replayed
    assert again.status_code == 200 and [e["event"] for e in again.json()["events"]] == ["output", "done"]
    other = client.post("/api/jobs", json={**body, "prompt": "another idea"})  # the id is taken: 409
    assert other.status_code == 409 and other.json()["error"]["code"] == "id_conflict"
    history = client.get("/api/jobs").json()["jobs"]
    assert history[0]["job_id"] == "h-gen" and history[0]["outputs"][0]["url"] == output["url"]


@pytest.mark.parametrize("body, status, code, words", [
    ({"op": "generate", "job_id": "h-b1", "preset": "default", "prompt": "", "bars": 0}, 400, "bad_request",
     "bars must be a number in 0.25..64, got 0.0"),  # the daemon's max_bars, in plain words
    ({"op": "generate", "job_id": "h-b2", "preset": "nope", "prompt": "", "bars": 1}, 404, "not_found",
     "unknown preset 'nope'"),
    ({"op": "continue", "job_id": "h-b3", "preset": "default", "input_path": "/nowhere/clip.wav", "bars": 1}, 400,
     "bad_request", "outside the allowed input folders"),
    ({"op": "generate", "job_id": "../etc", "preset": "default", "prompt": "", "bars": 1}, 400, "bad_request",
     "job_id must be"),
    ({"op": "generate", "job_id": "h-b4", "preset": "default", "prompt": "", "bars": 1, "settings": {"loop": True}},
     400, "bad_request", "loop must be"),
    ({"op": "render", "job_id": "h-b5"}, 400, "bad_request", "op must be one of generate, continue, variations, stems"),
    ({"op": "generate", "job_id": "h-b6", "preset": "default", "prompt": "", "bars": 1, "colour": "red"}, 400,
     "bad_request", "unknown argument(s) colour"),
    ({"op": "generate", "job_id": "h-b7", "preset": "default", "prompt": ["x"], "bars": 1}, 400, "bad_request",
     "is not a string or a number"),
])
def test_refused_jobs_carry_the_daemons_code_and_message(client, body, status, code, words):
    reply = client.post("/api/jobs", json=body)
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert error["code"] == code and words in error["message"]
    assert reply.json()["events"][-1]["event"] == "error"


def test_the_osc_refusal_in_https_terms(client, daemon):
    """The same refusal as OSC's, from the same schema, without the OSC example (an HTTP client sends JSON), with
    the field, the rule and the value for the page to word beside its control; the event keeps OSC's words."""
    from bridge.errors import BadRequest

    with pytest.raises(BadRequest) as osc:
        SCHEMA.parse("/continuo/generate", ["h-same", "default", "", 300.0], limits=daemon.settings.request_limits)
    reply = client.post("/api/jobs", json={"op": "generate", "job_id": "h-same", "preset": "default", "prompt": "",
                                           "bars": 300})
    error = reply.json()["error"]
    assert osc.value.message.startswith("bars must be a float in 0.25..64, got 300.0; send e.g. /continuo/generate")
    assert error["message"] == "bars must be a number in 0.25..64, got 300.0" and "/continuo" not in str(error)
    assert (error["field"], error["rule"], error["got"]) == ("bars", "a number in 0.25..64", "300.0")
    assert reply.json()["events"][-1]["args"]["message"] == osc.value.message


def test_a_missing_input_file_under_the_inbox_is_not_found(client, daemon):
    inbox = daemon.input_roots[1]
    reply = client.post("/api/jobs", json={"op": "continue", "job_id": "h-missing", "preset": "default",
                                           "input_path": (inbox / "missing.wav").as_posix(), "bars": 1})
    assert reply.status_code == 404 and reply.json()["error"]["code"] == "not_found"


def test_body_must_be_json(client):
    reply = client.post("/api/jobs", content=b"op=generate", headers={"content-type": "text/plain"})
    assert reply.status_code == 400 and "application/json" in reply.json()["error"]["message"]
    reply = client.post("/api/jobs", content=b"{not json", headers={"content-type": "application/json"})
    assert reply.status_code == 400 and "not valid JSON" in reply.json()["error"]["message"]


def test_get_and_cancel_errors(client):
    missing = client.get("/api/jobs/h-never")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert client.get("/api/jobs/bad%20id").status_code == 400
    cancel = client.delete("/api/jobs/h-never")
    assert cancel.status_code == 400 and "no job 'h-never' to cancel" in cancel.json()["error"]["message"]
    assert client.delete("/api/jobs/*").status_code == 202  # nothing of this client's is waiting


def test_cancel_a_queued_job(client, daemon):
    daemon.pool.workers[0].stopping.clear()
    started = threading.Event()
    release = threading.Event()
    original = daemon.pool.workers[0].run_job

    def slow(job):  # hold the worker so the next job waits in the queue
        started.set()
        release.wait(30)
        return original(job)

    daemon.pool.workers[0].run_job = slow
    try:
        first = {"op": "generate", "job_id": "h-hold", "preset": "default", "prompt": "", "bars": 1}
        assert client.post("/api/jobs", json=first).status_code == 202
        assert started.wait(30)
        second = {**first, "job_id": "h-cancel"}
        assert client.post("/api/jobs", json=second).status_code == 202
        reply = client.delete("/api/jobs/h-cancel")
        assert reply.status_code == 200, reply.text
        assert reply.json()["events"][0]["args"]["code"] == "cancelled"
    finally:
        daemon.pool.workers[0].run_job = original
        release.set()
    assert wait_job(client, "h-cancel")["job"]["status"] == "cancelled"
    wait_job(client, "h-hold")


def test_status_presets_models_and_requests(client, daemon):
    status = client.get("/api/status").json()
    assert [e["event"] for e in status["events"]] == ["status", "limits", "storage", "session"]
    assert status["events"][3]["args"]["page_url"] == daemon.transports.http.url  # the page names itself
    assert status["daemon"]["smoke_model"] is True and status["daemon"]["device"] == "cpu"
    presets = client.get("/api/presets").json()
    assert "default" in [e["args"]["name"] for e in presets["events"]]
    assert "default" in [m["name"] for m in presets["midi_maps"]]
    models = client.get("/api/models").json()
    assert models["events"][0]["args"]["name"] == daemon.engine.info.name
    assert models["lora_adapters"] == ["tape"]  # HTTP lists the adapters the OSC listing gives, one source
    assert [e["event"] for e in models["events"]] == ["models", "adapters"]
    assert models["events"][0]["args"]["family"] == "musicgen" and models["events"][0]["args"]["adapters"] == 1
    assert "repaint" not in models["events"][0]["args"]["capabilities"].split(",")
    assert models["events"][1]["args"] == {"name": "tape"}
    storage = status["events"][2]["args"]  # where renders live, their space and what is free
    assert storage["output_root"] == daemon.output_root.as_posix() and storage["free_mb"] > 0
    dry = client.post("/api/requests/prune", json={"older_than_days": 3650})  # the HTTP form of /continuo/prune
    assert dry.status_code == 200 and [e["event"] for e in dry.json()["events"]][-2:] == ["trash/result", "storage"]
    assert dry.json()["events"][-2]["args"]["action"] == "would_move"
    refused = client.post("/api/requests/prune", json={"apply": 1})  # no rule: refused, nothing moved
    assert refused.status_code == 400 and "say which renders" in refused.json()["error"]["message"]
    pong = client.post("/api/requests/ping", json={"seq": 5}).json()
    assert pong["events"] == [{"event": "pong", "args": {"seq": 5}}]
    context = client.post("/api/requests/context", json={"bpm": 90, "beats_per_bar": 3, "beat_unit": 4,
                                                         "key": "C minor", "sample_rate": 44100}).json()
    assert context["events"][0]["args"].get("bpm") == 90.0, context
    assert client.post("/api/requests/nothing", json={}).status_code == 404
    switching = client.post("/api/requests/load_model", json={"name": "/no/such/model"})
    assert switching.status_code == 200 and switching.json()["events"][0]["args"]["state"] == "loading"
    deadline = time.monotonic() + 30
    while daemon.switch.active and time.monotonic() < deadline:  # the switch fails: no such directory
        time.sleep(0.05)
    assert not daemon.switch.active and client.get("/api/models").json()["events"][0]["args"]["name"] == \
        daemon.engine.info.name
    client.post("/api/requests/context", json={"bpm": 120, "beats_per_bar": 4, "beat_unit": 4, "key": "C minor",
                                               "sample_rate": 48000})


# -- the error-code table, with a scripted daemon ------------------------------------------------------------
@pytest.mark.parametrize("code", list(SCHEMA.error_codes))
def test_every_error_code_has_its_status(tmp_path, code):
    server = None

    def on_message(address, args, sender):
        server.send(sender, SCHEMA.check_event("/continuo/error", args[0], code, f"scripted {code}"))

    settings = load_settings({"http_port": "0", "output_root": str(tmp_path / "renders")}, environ={})
    server = HttpServer(settings, on_message, inbox=tmp_path / "inbox")
    server.start()
    try:
        reply = httpx.post(server.url + "api/jobs", json={"op": "generate", "job_id": "x", "preset": "default",
                                                           "prompt": "", "bars": 1})
    finally:
        server.stop()
    assert reply.status_code == openapi.HTTP_STATUS[code]
    assert reply.json()["error"] == {"job_id": "x", "code": code, "message": f"scripted {code}"}


# -- live events ----------------------------------------------------------------------------------------------
def read_sse(url: str, headers: dict, until: str, timeout_s: float = 120) -> list[tuple[str, str, dict]]:
    """(id, event, data) until an event named `until` (or a reset)."""
    out = []
    with httpx.stream("GET", url, headers=headers, timeout=timeout_s) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        event_id, name = "", ""
        for line in response.iter_lines():
            if line.startswith("id: "):
                event_id = line[4:]
            elif line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                out.append((event_id, name, json.loads(line[6:])))
                if name in (until, "reset"):
                    return out
    return out


def test_sse_carries_job_events_and_resumes(client, daemon):
    url = daemon.transports.http.url + "api/events?job=h-sse"
    got: list = []
    reader = threading.Thread(target=lambda: got.extend(read_sse(url, {}, "done")))
    reader.start()
    time.sleep(0.5)
    client.post("/api/jobs", json={"op": "generate", "job_id": "h-sse", "preset": "default", "prompt": "",
                                   "bars": 1, "settings": {"stream": 1}})
    reader.join(120)
    names = [name for _, name, _ in got]
    assert names[0] == "queued" and names[-1] == "done" and "progress" in names and "output" in names
    assert "partial" in names
    partial = next(data for _, name, data in got if name == "partial")["args"]
    chunk = client.get(partial["url"])
    assert chunk.status_code == 200 and chunk.headers["content-type"] == "audio/wav"
    # Resume: from the id of the first event, the rest again, in order.
    resumed = read_sse(url, {"Last-Event-ID": got[0][0]}, "done")
    assert [name for _, name, _ in resumed] == names[1:]
    # An id from another run (or long gone) asks the client to reload the history.
    reset = read_sse(url, {"Last-Event-ID": "deadbeef-3"}, "done")
    assert reset[0][1] == "reset"


def test_the_history_s_event_id_lets_a_page_miss_nothing_before_its_stream_opens(client, daemon):
    """GET /api/jobs carries the newest event's id, taken before the history is read. A stream opened after a job
    began and ended (a page loads its history first, then subscribes) with ?last_event_id= gets that job's
    events from its queued on. The control: the same stream without it starts at its own opening and sees none."""
    history = client.get("/api/jobs?limit=5").json()
    assert history["event_id"].startswith(daemon.transports.http.bus.boot + "-")
    url = daemon.transports.http.url + "api/events?job=h-gap"
    watcher: list = []
    reader = threading.Thread(target=lambda: watcher.extend(read_sse(url, {}, "done")))
    reader.start()
    time.sleep(0.5)
    client.post("/api/jobs", json={"op": "generate", "job_id": "h-gap", "preset": "default", "prompt": "", "bars": 1})
    reader.join(120)
    assert watcher[-1][1] == "done"  # the job is over before the late stream opens
    late = read_sse(url + "&last_event_id=" + history["event_id"], {}, "done")
    assert [name for _, name, _ in late] == [name for _, name, _ in watcher]
    without: list = []
    with pytest.raises(httpx.ReadTimeout):  # nothing comes: the stream waits for new events (heartbeats later)
        without.extend(read_sse(url, {}, "done", timeout_s=1.5))
    assert without == []


def test_sse_sees_jobs_of_other_transports(daemon):
    from bridge.clients.osc import OscClient

    url = daemon.transports.http.url + "api/events?job=h-osc"
    got: list = []
    reader = threading.Thread(target=lambda: got.extend(read_sse(url, {}, "done")))
    reader.start()
    time.sleep(0.5)
    host, port = daemon.transports.udp.address
    with OscClient(host, port) as osc:
        osc.hello()
        osc.send("/continuo/generate", "h-osc", "default", "", 1.0)
        reader.join(120)
    assert [name for _, name, _ in got][-1] == "done"


# -- uploads ----------------------------------------------------------------------------------------------------
def test_upload_lands_in_the_inbox_and_continues(client, daemon):
    reply = client.post("/api/inputs?name=my clip.wav", content=wav_bytes(2.0))
    assert reply.status_code == 201, reply.text
    path = Path(reply.json()["path"])
    assert path.parent == daemon.input_roots[1] and path.is_file() and path.name.endswith("my_clip.wav")
    assert reply.json()["seconds"] == pytest.approx(2.0)
    assert not list(path.parent.glob(".*.partial"))
    job = client.post("/api/jobs", json={"op": "continue", "job_id": "h-cont", "preset": "default",
                                         "input_path": path.as_posix(), "bars": 1})
    assert job.status_code == 202, job.text
    assert wait_job(client, "h-cont")["job"]["status"] == "done"


@pytest.mark.parametrize("name, body, status, words", [
    ("../escape.wav", wav_bytes(), 400, "plain file name"),
    ("a/b.wav", wav_bytes(), 400, "plain file name"),
    ("noise.wav", b"RIFF not really a wave file", 400, "not a readable audio file"),
    ("nan.wav", wav_bytes(value=float("nan")), 400, "NaN"),
    ("empty.wav", b"", 400, "empty"),
])
def test_bad_uploads_are_refused(client, daemon, name, body, status, words):
    before = set(daemon.input_roots[1].iterdir())
    reply = client.post("/api/inputs", params={"name": name}, content=body)
    assert reply.status_code == status and words in reply.json()["error"]["message"]
    assert set(daemon.input_roots[1].iterdir()) == before  # nothing left behind, partial or whole


def test_upload_size_and_length_limits(tmp_path):
    settings = load_settings({"http_port": "0", "output_root": str(tmp_path / "renders"), "max_input_bytes": "50000",
                              "max_input_s": "0.5"}, environ={})
    server = HttpServer(settings, lambda *a: None, inbox=tmp_path / "inbox")
    server.start()
    try:
        big = httpx.post(server.url + "api/inputs", content=b"\0" * 60000)
        assert big.status_code == 413 and "max_input_bytes" in big.json()["error"]["message"]

        def chunks():  # no Content-Length: the limit is counted while streaming
            for _ in range(8):
                yield b"\0" * 10000

        streamed = httpx.post(server.url + "api/inputs", content=chunks())
        assert streamed.status_code == 413
        long = httpx.post(server.url + "api/inputs", content=wav_bytes(1.0, rate=8000))
        assert long.status_code == 413 and "max_input_s" in long.json()["error"]["message"]
        assert not [p for p in (tmp_path / "inbox").iterdir()]
    finally:
        server.stop()


# -- path traversal --------------------------------------------------------------------------------------------
def raw_get(url: str, path: str) -> tuple[int, bytes]:
    """A GET with the path sent exactly as written (httpx would normalise dot segments)."""
    host, port = httpx.URL(url).host, httpx.URL(url).port
    conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.putrequest("GET", path, skip_accept_encoding=True)
    conn.endheaders()
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, body


@pytest.mark.parametrize("path", [
    "/api/jobs/h-gen/files/..%2F..%2Fjournal.sqlite3",
    "/api/jobs/h-gen/files/../../journal.sqlite3",
    "/api/jobs/..%2Fh-gen/files/mix",
    "/api/jobs/h-gen/preview/../../journal.sqlite3",
    "/api/jobs/h-gen/preview/..%2F..%2Fjournal.sqlite3",
    "/api/jobs/h-gen/preview/chunk-0001.wav%00.txt",
    "/api/jobs/h-gen/files/mix.wav",
    "/static/../../../daemon.py",
    "/static/..%2F..%2Fhttp.py",
])
def test_path_traversal_is_refused(daemon, client, path):
    status, body = raw_get(daemon.transports.http.url, path)
    assert status in (400, 404), (status, body[:200])
    assert b"SQLite" not in body and b"import" not in body


def test_a_symlinked_output_outside_the_root_is_refused(client, daemon, tmp_path):
    """Even a journal row pointing outside the output root is not served."""
    from bridge.jobs.journal import OutputRecord

    secret = tmp_path / "secret.wav"
    secret.write_bytes(wav_bytes())
    daemon.journal.insert_job("h-outside", "generate", {"preset": "default"}, ("127.0.0.1", 1))
    daemon.journal.add_output("h-outside", OutputRecord("mix", secret.as_posix(), 48000, 1, 1.0, 0.5, -14.0, -1.0))
    assert client.get("/api/jobs/h-outside/files/mix").status_code == 404


# -- security --------------------------------------------------------------------------------------------------
def test_foreign_host_header_is_refused_on_loopback(client):
    """DNS rebinding: a page on evil.example that resolves to 127.0.0.1 still sends Host: evil.example."""
    assert client.get("/api/status", headers={"host": "evil.example:9080"}).status_code == 403
    assert client.get("/api/status", headers={"host": "localhost:9080"}).status_code == 200


def test_cross_origin_writes_are_refused_and_no_cors(client, daemon):
    body = {"op": "generate", "job_id": "h-csrf", "preset": "default", "prompt": "", "bars": 1}
    reply = client.post("/api/jobs", json=body, headers={"origin": "http://evil.example"})
    assert reply.status_code == 403 and daemon.journal.get("h-csrf") is None
    upload = client.post("/api/inputs", content=wav_bytes(), headers={"origin": "http://evil.example"})
    assert upload.status_code == 403
    own = daemon.transports.http.url.rstrip("/")
    assert client.post("/api/requests/ping", json={}, headers={"origin": own}).status_code == 200
    read = client.get("/api/status", headers={"origin": "http://evil.example"})
    preflight = client.options("/api/jobs", headers={"origin": "http://evil.example",
                                                     "access-control-request-method": "POST"})
    for response in (read, preflight):
        assert not [h for h in response.headers if h.lower().startswith("access-control-")]


def test_non_loopback_needs_a_token():
    with pytest.raises(ConfigError, match="http_token_file"):
        load_settings({"http_host": "0.0.0.0"}, environ={})
    assert load_settings({"http_host": "0.0.0.0", "http_port": "-1"}, environ={}).http_port == -1


def test_bearer_token(tmp_path):
    token_file = tmp_path / "http.token"
    token_file.write_text("s3cret-token-0123456789\n")
    settings = load_settings({"http_port": "0", "http_token_file": str(token_file),
                              "output_root": str(tmp_path / "renders")}, environ={})
    server = HttpServer(settings, lambda *a: None, inbox=None)
    server.start()
    try:
        url = server.url
        assert httpx.get(url + "api/jobs").status_code == 401
        assert httpx.get(url + "api/jobs").headers["www-authenticate"] == "Bearer"
        wrong = httpx.get(url + "api/jobs", headers={"authorization": "Bearer wrong-token-0123456789"})
        right = httpx.get(url + "api/jobs", headers={"authorization": "Bearer s3cret-token-0123456789"})
        assert (wrong.status_code, right.status_code) == (401, 200)
        assert httpx.get(url).status_code == 200  # the page itself; its API calls need the cookie
        with httpx.Client(base_url=url, follow_redirects=True) as browser:
            assert browser.get("/?token=s3cret-token-0123456789").status_code == 200  # redirect followed
            assert browser.get("/api/jobs").status_code == 200  # the cookie carries it
    finally:
        server.stop()
    token_file.write_text("short")
    with pytest.raises(RuntimeError, match="16 or more"):
        HttpServer(settings, lambda *a: None, inbox=None)


def test_http_off_and_the_ready_line(tiny_model_dir, tmp_path, capsys):
    settings = daemon_settings(tiny_model_dir, tmp_path, http_port=-1)
    d = Daemon(settings)
    d.startup()
    try:
        assert d.transports.http is None
    finally:
        d.request_stop()
        d.shutdown()
    assert " http=" not in capsys.readouterr().out


def test_continuo_keys_writes_a_usable_token(tmp_path):
    from bridge.tools.keys import make_keys

    made = make_keys(tmp_path / "keys")
    token = made["http_token"].read_text().strip()
    assert oct(made["http_token"].stat().st_mode)[-3:] == "600"
    settings = load_settings({"http_host": "0.0.0.0", "http_port": "0", "http_token_file": str(made["http_token"]),
                              "output_root": str(tmp_path / "renders")}, environ={})
    server = HttpServer(settings, lambda *a: None, inbox=None)
    assert server._token == token
    assert make_keys(tmp_path / "keys", client="other")["http_token"].read_text().strip() == token  # kept


def test_a_taken_port_names_the_setting(tmp_path):
    first = HttpServer(load_settings({"http_port": "0", "output_root": str(tmp_path / "r")}, environ={}),
                       lambda *a: None, inbox=None)
    first.start()
    try:
        taken = load_settings({"http_port": str(first.address[1]), "output_root": str(tmp_path / "r")}, environ={})
        with pytest.raises(RuntimeError, match="--http-port"):
            HttpServer(taken, lambda *a: None, inbox=None).start()
    finally:
        first.stop()


def test_analyze_answers_in_the_reply_and_a_midi_output_downloads_as_midi(client, daemon):
    from bridge.tools.listen_truth import drum_pattern, melody

    inbox = daemon.input_roots[1]
    beat = drum_pattern(90.0, "4/4", bars=4)
    sf.write(inbox / "beat.wav", beat.audio.T, beat.sample_rate)
    reply = client.post("/api/requests/analyze", json={"input_path": (inbox / "beat.wav").as_posix()})
    assert reply.status_code == 200, reply.text
    events = reply.json()["events"]
    assert [e["event"] for e in events] == ["analysis", "beats", "beats"]
    assert events[0]["args"]["job_id"] == "" and events[0]["args"]["bpm"] == pytest.approx(90.0, rel=0.02)
    assert {e["args"]["kind"] for e in events[1:]} == {"beat", "downbeat"}
    missing = client.post("/api/requests/analyze", json={"input_path": (inbox / "nope.wav").as_posix()})
    assert missing.status_code == 404  # control: a file that is not there is refused, not analysed
    line = melody(seed=4, count=6)
    sf.write(inbox / "line.wav", line.audio.T, line.sample_rate)
    posted = client.post("/api/jobs", json={"op": "midi", "job_id": "h-midi", "stems": "mix",
                                            "input_path": (inbox / "line.wav").as_posix(), "settings": {}})
    assert posted.status_code == 202, posted.text
    job = wait_job(client, "h-midi")
    (output,) = [e["args"] for e in job["events"] if e["event"] == "output"]
    assert output["name"] == "mix-midi" and output["url"] == "/api/jobs/h-midi/files/mix-midi"
    midi = client.get(output["url"])
    assert midi.status_code == 200 and midi.headers["content-type"] == "audio/midi"
    assert midi.content[:4] == b"MThd" and re.search(r'filename="line_[0-9.]+bars_[0-9.]+bpm[^"]*\.mid"',
                                                     midi.headers["content-disposition"])  # its DAW name
