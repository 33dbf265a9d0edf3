"""Client sessions (bridge/sessions.py): the cap on senders, and where the daemon answers (in process, no
sockets): hello's reply port, the default_reply_port setting for senders that never say hello, a job request's
reply_port setting. tests/e2e/test_reply_port.py drives the same with liblo's oscsend and oscdump."""

from __future__ import annotations

import pytest

import bridge.sessions
from bridge.errors import ConfigError
from bridge.sessions import ClientSession, Sessions
from bridge.settings import load_settings
from bridge.transports.peers import Peer
from tests.daemons import JOB_TIMEOUT_S

SENDER = ("127.0.0.1", 40001)


def test_sessions_are_capped_by_forgetting_the_longest_silent(monkeypatch):
    monkeypatch.setattr(bridge.sessions, "MAX_SESSIONS", 3)
    sessions = Sessions(load_settings({}, environ={}))
    for port in (50001, 50002, 50003):
        sessions.hello(("127.0.0.1", port), "client", port)
    sessions.session(("127.0.0.1", 50001)).context = sessions[("127.0.0.1", 50001)].context.replace(bpm=87.0)
    sessions.hello(("127.0.0.1", 50004), "newcomer", 50004)  # 50001 spoke again: 50002 is now the oldest
    assert set(sessions) == {("127.0.0.1", port) for port in (50001, 50003, 50004)}
    assert sessions[("127.0.0.1", 50001)].context.bpm == 87.0  # a kept session keeps its context


def test_a_sessions_job_list_drops_finished_jobs_only_past_its_cap(monkeypatch):
    monkeypatch.setattr(bridge.sessions, "MAX_SESSION_JOBS", 2)
    session = ClientSession(name="", reply_to=SENDER, context=Sessions(load_settings({}, environ={})).session(
        SENDER).context)
    asked = []
    for job_id in ("a", "b"):
        session.add_job(job_id, lambda: asked.append(True) or set())
    assert session.jobs == {"a", "b"} and not asked  # under the cap: nothing asked, nothing dropped
    session.add_job("c", lambda: {"b", "c"})
    assert session.jobs == {"b", "c"}


def test_hello_names_the_reply_port_on_the_senders_host_and_keeps_a_connection():
    sessions = Sessions(load_settings({}, environ={}))
    assert sessions.hello(SENDER, "patch", 9200).reply_to == ("127.0.0.1", 9200)
    assert sessions.hello(("127.0.0.1", 40002), "other", 0).reply_to == ("127.0.0.1", 40002)
    peer = Peer("127.0.0.1", 40005, "tcp", 7)
    assert sessions.hello(peer, "tcp client", 9300).reply_to is peer
    assert sessions[SENDER].name == "patch" and sessions.reply_to(("10.0.0.9", 1)) == ("10.0.0.9", 1)


def record_destinations(daemon) -> list[tuple[object, str, list]]:
    sent: list[tuple[object, str, list]] = []
    daemon.events._send = lambda dest, event: sent.append((dest, event.address, list(event.values)))
    return sent


def wait_terminal(sent, job_id: str) -> None:
    import time

    deadline = time.monotonic() + JOB_TIMEOUT_S
    while time.monotonic() < deadline:
        if any(a in ("/continuo/done", "/continuo/error") and v[:1] == [job_id] for _, a, v in list(sent)):
            return
        time.sleep(0.02)
    raise AssertionError(f"{job_id} did not end: {sent}")


def test_without_hello_replies_go_to_the_source_port(make_daemon_in_process):
    daemon = make_daemon_in_process()
    sent = record_destinations(daemon)
    daemon.on_message("/continuo/ping", [1], SENDER)
    assert sent == [(SENDER, "/continuo/pong", [1])]


def test_default_reply_port_answers_senders_that_never_said_hello(make_daemon_in_process):
    daemon = make_daemon_in_process(default_reply_port=9123)
    sent = record_destinations(daemon)
    daemon.on_message("/continuo/ping", [1], SENDER)
    daemon.on_message("/continuo/bogus", [], ("127.0.0.1", 40002))  # an error too
    assert [(dest, address) for dest, address, _ in sent] == [
        (("127.0.0.1", 9123), "/continuo/pong"), (("127.0.0.1", 9123), "/continuo/error")]
    # hello still decides: its reply port, or 0 for the source port
    daemon.on_message("/continuo/hello", ["patch", 9200], SENDER)
    daemon.on_message("/continuo/hello", ["other", 0], ("127.0.0.1", 40003))
    assert [dest for dest, *_ in sent[2:]] == [("127.0.0.1", 9200), ("127.0.0.1", 40003)]


def test_default_reply_port_leaves_connections_alone(make_daemon_in_process):
    daemon = make_daemon_in_process(default_reply_port=9123)
    peer = Peer("127.0.0.1", 40005, "tcp", 7)
    assert daemon.sessions.default_reply_to(peer) is peer


def test_a_job_reply_port_sends_that_jobs_events_there(make_daemon_in_process):
    daemon = make_daemon_in_process()
    sent = record_destinations(daemon)
    daemon.on_message("/continuo/generate", ["rp-1", "default", "x", 0.25, "reply_port", 9300], SENDER)
    wait_terminal(sent, "rp-1")
    assert {dest for dest, _, values in sent if values[:1] == ["rp-1"]} == {("127.0.0.1", 9300)}
    assert daemon.journal.get("rp-1").reply_to == ("127.0.0.1", 9300)
    # a refused request with a reply port is answered there
    daemon.on_message("/continuo/generate", ["rp-2", "nope", "x", 0.25, "reply_port", 9301], SENDER)
    assert sent[-1][0] == ("127.0.0.1", 9301) and sent[-1][2][:2] == ["rp-2", "not_found"]
    # the session is not changed: a later ping goes to the source port
    daemon.on_message("/continuo/ping", [5], SENDER)
    assert sent[-1] == (SENDER, "/continuo/pong", [5])


def test_default_reply_port_is_checked():
    with pytest.raises(ConfigError, match="default_reply_port"):
        load_settings({"default_reply_port": "70000"}, environ={})
