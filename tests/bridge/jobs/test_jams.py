"""The daemon's jams (bridge/jobs/jams.py) before anything plays: the id rules, the model's capability and speed,
job settings refused; and the clients' chunk event, checked against the schema."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bridge.audio.context import MusicalContext
from bridge.audio.playback import JamChunk
from bridge.audio.presets import Preset
from bridge.errors import BadRequest, IdConflict
from bridge.jobs.events import EventSink
from bridge.jobs.jams import ClientsSink, Jams
from bridge.jobs.journal import Journal
from bridge.protocol.schema import load_schema
from bridge.settings import load_settings
from inference.api import Capability, MeasuredSpeed, ModelInfo

INFO = ModelInfo(name="jam-model", source_kind="local", sample_rate=32000, channels=1, frame_rate=50.0,
                 max_duration_s=30.0, is_random=True, device="cpu", parameters=0,
                 capabilities=frozenset({Capability.TEXT, Capability.CODE_PROMPT}))


class Engine:
    def __init__(self, info: ModelInfo = INFO, rtf: float = 0.3) -> None:
        self.info, self.measured_speed = info, MeasuredSpeed(rtf=rtf, audio_s=1.0, source="warm-up")


@pytest.fixture
def sent() -> list:
    return []


@pytest.fixture
def jams(tmp_path, sent):
    def build(engine=None) -> Jams:
        settings = load_settings({"output_root": str(tmp_path / "renders")}, environ={})
        events = EventSink(load_schema(), lambda dest, event: sent.append(event))
        journal = Journal(tmp_path / "journal.sqlite3")
        return Jams(settings=settings, events=events, engine=lambda: engine or Engine(),
                    presets=lambda: {"default": Preset(name="default", path=Path())},
                    output_root=tmp_path / "renders", journal=journal)
    return build


def start(jams: Jams, jam_id: str = "jam-1", **settings):
    return jams.start(jam_id, "dark techno", settings, ("127.0.0.1", 9), MusicalContext())


def test_a_jam_id_a_job_or_folder_holds_is_refused(jams, tmp_path):
    daemon = jams()
    daemon.journal.insert_job("taken", "generate", {}, ("127.0.0.1", 9))
    with pytest.raises(IdConflict, match="'taken' is already used by a job.*new jam id"):
        start(daemon, "taken")
    (tmp_path / "renders" / "old-jam").mkdir(parents=True)
    with pytest.raises(IdConflict, match="'old-jam' is already used"):
        start(daemon, "old-jam")
    assert not (tmp_path / "renders" / "taken").exists()  # nothing was made for a refused jam


def test_a_slow_model_is_refused_before_the_jam_unless_behind_ok(jams, tmp_path):
    daemon = jams(Engine(rtf=1.7))
    with pytest.raises(BadRequest, match="cannot keep up .*behind_ok 1"):
        start(daemon)
    assert not (tmp_path / "renders" / "jam-1").exists()


def test_a_model_without_code_prompts_is_refused(jams):
    daemon = jams(Engine(ModelInfo(**{**INFO.__dict__, "capabilities": frozenset({Capability.TEXT})})))
    with pytest.raises(BadRequest, match="jam-model cannot jam"):
        start(daemon)


def test_job_settings_are_refused_by_name(jams):
    with pytest.raises(BadRequest, match="a jam takes no stems, lyrics"):
        start(jams(), stems="drums", lyrics="la")


def test_the_clients_chunk_event_is_the_schemas(sent):
    sink = ClientsSink(EventSink(load_schema(), lambda dest, event: sent.append(event)), ("127.0.0.1", 9))
    audio = np.zeros((1, 40421), np.float32)
    sink.play(JamChunk("jam-1", 3, 12.0, 4.0, 190.0, audio, 32000, prompt_id=2, held=True,
                       path=Path("/renders/jam-1/bars/bar-000003.wav")))
    (event,) = sent
    assert event.address == "/continuo/jam/chunk"
    assert event.values == ("jam-1", 3, 12.0, 4.0, 190.0, 2, 1, "/renders/jam-1/bars/bar-000003.wav",
                            "/api/jam/jam-1/bars/3", pytest.approx(40421 / 32000), 32000)


def test_the_speed_check_takes_the_best_figure_known(jams, tmp_path):
    """A noisy warm-up take (one 1 s take on a loaded machine) is not the last word: the daemon's figure from
    finished jobs, then the last jam's own, decide."""
    engine = Engine(rtf=2.75)  # the tiny model's warm-up at load 8.7 (its jam ran at 0.27)
    daemon = jams(engine)
    with pytest.raises(BadRequest, match="RTF 2.75 measured at warm-up"):
        start(daemon)
    daemon.speed = lambda: MeasuredSpeed(rtf=0.4, audio_s=16.0, source="2 finished jobs")
    assert daemon.known_speed(engine).rtf == 0.4
    from bridge.jobs.jam import JamStatus

    daemon.measured(engine, JamStatus("jam-0", state="stopped", bar=9, rtf=1.3), 2.0)  # a jam that fell behind
    assert daemon.known_speed(engine).source == "jam jam-0" and daemon.known_speed(engine).audio_s == 20.0
    assert daemon.known_speed(Engine()).rtf == 0.4  # another engine (a model switch): not the jam's figure


def test_the_daemons_midi_input_feeds_the_controller_then_the_jams_clock(jams):
    import mido

    from bridge.daemon import MidiFeed

    heard = []

    class Controller:
        def feed(self, message, now_s=None):
            heard.append(("controller", message.type, now_s))

    class Clock:
        def feed(self, message, now_s=None):
            heard.append(("jam clock", message.type, now_s))

    daemon = jams()
    feed = MidiFeed(Controller(), daemon.feed_midi)
    feed.feed(mido.Message("clock"), 1.5)  # no midi jam yet: the controller alone
    daemon.midi_clock = Clock()
    feed.feed(mido.Message("start"), 2.0)
    assert heard == [("controller", "clock", 1.5), ("controller", "start", 2.0), ("jam clock", "start", 2.0)]
