"""The daemon's jams: /continuo/jam/start, control, stop, bank and transport, each jam a JamSession (jam.py).

A start is checked before anything plays: the jam id follows the job-id rules (a running or finished jam, a
journalled job or a folder of that name in the output root: id_conflict, never the old jam), the model must continue
codes (Capability.CODE_PROMPT), and a model whose measured speed cannot keep up is refused with the figures unless
the request says behind_ok 1 (`bridge/jobs/jam.py:check_speed`). The clock comes from
bridge/audio/clocks.py:make_clock (one host clock, fed by /continuo/jam/transport, serves every host jam); the
outputs are the recording (always: a chunk event names its bar's WAV), the clients (`ClientsSink`: a
/continuo/jam/chunk event per bar to whoever started the jam; HTTP's event stream sees every jam's events; over
ZeroMQ each carries the bar's PCM inline, bridge/transports/zmq.py) and the local audio device
(bridge/audio/playback.py:DeviceOutput). A stop tells every output the last bar to sound (`JamSink.stop_after`);
clients hear it in /continuo/jam/state stopping, whose bar is that last bar.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.audio.clocks import make_clock
from bridge.audio.playback import DeviceOutput, JamChunk, JamSink, PlaybackSettings
from bridge.audio.presets import Preset
from bridge.errors import BadRequest, IdConflict, NotFound
from bridge.jobs.events import EventSink
from bridge.jobs.jam import JamRecording, JamSession, JamSettings, JamStatus, check_speed
from bridge.jobs.job_ids import find_job
from bridge.jobs.journal import Journal
from bridge.protocol.destinations import Destination
from bridge.settings import Settings
from inference.api import Capability, Engine, MeasuredSpeed

log = logging.getLogger("continuo.jam")


def load_1min() -> float:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return 0.0

JOB_ONLY_SETTINGS = ("stems", "loop", "hard_cut", "stream", "melody", "lyrics", "vocal_language", "instrumental",
                     "lora", "lora_weight", "midi", "quantize", "heard_key", "beats", "style", "style_weight",
                     "priority", "slot", "retries", "prompt_seconds", "target_lufs", "true_peak_db", "sample_rate",
                     "beat_unit")
DEFAULT_OUTPUTS = ("clients", "record")


def bar_url(jam_id: str, bar: int) -> str:
    """Where the HTTP API serves a jam's bar (bridge/transports/http.py)."""
    return f"/api/jam/{jam_id}/bars/{bar}"


@dataclass
class ClientsSink:
    """Bars to the client that started the jam: a /continuo/jam/chunk event each (OSC, ZeroMQ, HTTP's stream)."""

    events: EventSink
    dest: Destination
    name: str = "clients"

    def play(self, chunk: JamChunk) -> None:
        path = "" if chunk.path is None else Path(chunk.path).as_posix()
        self.events.emit(self.dest, "/continuo/jam/chunk", chunk.jam_id, chunk.bar, float(chunk.start_beat),
                         float(chunk.beats), float(chunk.bpm), chunk.prompt_id, int(chunk.held), path,
                         bar_url(chunk.jam_id, chunk.bar), chunk.audio.shape[-1] / chunk.sample_rate,
                         chunk.sample_rate)

    def stop_after(self, bar: int) -> None:
        """Nothing to send here: the jam's /continuo/jam/state 'stopping' (to the same client) names `bar` as the last
        to sound, and the client drops any later bar it already holds."""

    def close(self) -> None:
        pass


class Jams:
    """Every jam of this daemon run, by id, and the host clock the transport messages feed."""

    def __init__(self, *, settings: Settings, events: EventSink, engine: Callable[[], Engine],
                 presets: Callable[[], Mapping[str, Preset]], output_root: Path, journal: Journal,
                 speed: Callable[[], MeasuredSpeed | None] = lambda: None) -> None:
        self.settings, self.events, self.engine, self.presets = settings, events, engine, presets
        self.speed = speed  # the daemon's figure from finished jobs, when it has one (bridge/jobs/pool.py:RealTime)
        self.jam_speed: MeasuredSpeed | None = None  # the last jam's own RTF on jam_engine
        self.jam_engine: Engine | None = None
        self.output_root, self.journal = output_root, journal
        self.jams: dict[str, JamSession] = {}
        self.host_clock: Any = None  # make_clock("host"), fed by /continuo/jam/transport
        self.midi_clock: Any = None  # make_clock("midi"), fed by the daemon's MIDI input (feed_midi)
        self.lock = threading.Lock()

    # ---- requests ------------------------------------------------------------------------------------------

    def start(self, jam_id: str, prompt: str, settings: Mapping[str, Any], reply_to: Destination,
              context: Any) -> JamSession:
        """A new jam (checked, then started); its events go to reply_to."""
        self.check_id(jam_id)
        refused = [name for name in settings if name in JOB_ONLY_SETTINGS]
        if refused:
            raise BadRequest(f"a jam takes no {', '.join(refused)} (job settings); drop them", job_id=jam_id)
        engine = self.engine()
        if not engine.info.supports(Capability.CODE_PROMPT):
            raise BadRequest(f"{engine.info.name} cannot jam: a jam continues the model's own codes bar after bar; "
                             "serve a MusicGen model with our engine (backend 'engine')", job_id=jam_id)
        preset = self.preset(str(settings.get("preset", "default")), jam_id)
        overrides = {k: settings[k] for k in ("temperature", "top_k", "top_p", "guidance_scale", "seed")
                     if k in settings}
        preset = preset.with_overrides(overrides)
        bpm = float(settings.get("bpm", context.bpm))
        beats_per_bar = int(settings.get("beats_per_bar", context.beats_per_bar))
        slow = check_speed(engine, bpm, beats_per_bar, self.known_speed(engine))
        if slow and not settings.get("behind_ok"):
            raise BadRequest(slow, job_id=jam_id)
        jam_settings = JamSettings(
            jam_id=jam_id, prompt=prompt, preset=preset, bpm=bpm, beats_per_bar=beats_per_bar,
            key=str(settings.get("key", context.key) or ""),
            seed=int(preset.seed) if preset.seed is not None else secrets.randbelow(2**24),
            context_bars=int(settings.get("context_bars", JamSettings.context_bars)),
            lookahead_bars=int(settings.get("lookahead_bars", 0)))
        clock = self.clock(str(settings.get("clock", "internal")), bpm, beats_per_bar, jam_id)
        outputs = tuple(settings.get("outputs", DEFAULT_OUTPUTS))
        sinks: list[JamSink] = []
        if "device" in outputs:
            sinks.append(self.device_output(settings, clock, jam_id))
        if "clients" in outputs:
            sinks.append(ClientsSink(self.events, reply_to))
        recording = JamRecording(self.output_root / jam_id, engine.info.sample_rate, engine.info.channels)
        session = JamSession(jam_settings, engine, clock, sinks, presets=lambda: dict(self.presets()),
                             recording=recording, on_state=lambda status: self.on_state(
                                 reply_to, engine, status, 60.0 * beats_per_bar / bpm))
        with self.lock:
            self.jams[jam_id] = session
        log.info("job=%s jam starting: %r at %g BPM, %s clock, outputs %s%s", jam_id, prompt, bpm, clock.kind,
                 ",".join(outputs), f"; {slow}" if slow else "")
        self.tell(reply_to, session.status())
        session.start()
        return session

    def control(self, jam_id: str, name: str, value: str, reply_to: Destination) -> None:
        """A control for the next bar line, answered with the bar it lands on (to whoever sent it)."""
        bar = self.running(jam_id).control(name, value)
        self.events.emit(reply_to, "/continuo/jam/scheduled", jam_id, name, value if name != "stop" else "", bar)

    def stop(self, jam_id: str, reply_to: Destination) -> None:
        bar = self.running(jam_id).stop()
        self.events.emit(reply_to, "/continuo/jam/scheduled", jam_id, "stop", "", bar)

    def bank(self, jam_id: str, action: str, slot: int, reply_to: Destination) -> None:
        bar = self.running(jam_id).bank(action, slot)
        self.events.emit(reply_to, "/continuo/jam/scheduled", jam_id, f"bank_{action}", str(slot), bar)

    def transport(self, bpm: float, beat: float, playing: bool, beats_per_bar: int, at_s: float) -> None:
        """/continuo/jam/transport: the host's clock moves (every host jam follows it)."""
        clock = self.host()
        clock.update(bpm=bpm, beat=beat, playing=playing, beats_per_bar=beats_per_bar, at_s=at_s)

    def close(self) -> None:
        """The daemon stops: every jam stops now and writes its take."""
        with self.lock:
            sessions = list(self.jams.values())
        for session in sessions:
            session.close()

    # ---- parts -------------------------------------------------------------------------------------------

    def known_speed(self, engine: Engine) -> MeasuredSpeed | None:
        """The best figure for a jam on engine: the last jam's own (bars made on this engine), else the daemon's
        from finished jobs, else None (check_speed takes the engine's warm-up take: one 1 s take, noisy on a
        loaded machine: 2.75 there against 0.27 in the jam that followed, tiny model, load 8.7)."""
        if self.jam_speed is not None and self.jam_engine is engine:
            return self.jam_speed
        return self.speed()

    def measured(self, engine: Engine, status: JamStatus, bar_s: float) -> None:
        """A jam ended: its RTF (bars made over their audio) is the next jam's figure on this engine."""
        if status.rtf > 0 and status.bar >= 3:
            self.jam_speed = MeasuredSpeed(rtf=status.rtf, audio_s=round((status.bar + 1) * bar_s, 1),
                                           source=f"jam {status.jam_id}",
                                           load_1min=load_1min())
            self.jam_engine = engine

    def check_id(self, jam_id: str) -> None:
        with self.lock:
            known = jam_id in self.jams
        record = None if known else find_job(self.journal, self.output_root, jam_id)  # a job, its folder, the trash
        if known or record is not None or (self.output_root / jam_id).exists():
            what = "a jam of this daemon" if known else "a job or a folder in the output root (or its trash)"
            raise IdConflict(f"jam id {jam_id!r} is already used by {what}; nothing was started and its files are not "
                             "this jam's: start again with a new jam id", job_id=jam_id)

    def running(self, jam_id: str) -> JamSession:
        with self.lock:
            session = self.jams.get(jam_id)
        if session is None:
            raise NotFound(f"no jam {jam_id!r} in this daemon; start one with /continuo/jam/start", job_id=jam_id)
        return session

    def preset(self, name: str, jam_id: str) -> Preset:
        presets = self.presets()
        if name not in presets:
            raise NotFound(f"unknown preset {name!r}; known: {', '.join(sorted(presets))}", job_id=jam_id)
        return presets[name]

    def clock(self, kind: str, bpm: float, beats_per_bar: int, jam_id: str):
        """internal and link: the jam's own; host and midi: the daemon's one, fed by the transport or MIDI input."""
        if kind == "host":
            return self.host()
        if kind == "midi":
            if not self.settings.midi:
                raise BadRequest("clock midi follows the daemon's MIDI input: serve with --midi PORT, or choose "
                                 "clock internal, host or link", job_id=jam_id)
            with self.lock:
                if self.midi_clock is None:
                    self.midi_clock = make_clock("midi", bpm=bpm, beats_per_bar=beats_per_bar)
                return self.midi_clock
        return make_clock(kind, bpm=bpm, beats_per_bar=beats_per_bar)

    def host(self):
        with self.lock:
            if self.host_clock is None:
                self.host_clock = make_clock("host")
            return self.host_clock

    def feed_midi(self, message: Any, now_s: float | None = None) -> None:
        """A message from the daemon's MIDI input (clock, start, stop, continue, song position) for midi jams."""
        clock = self.midi_clock
        if clock is not None:
            clock.feed(message, now_s)

    def device_output(self, settings: Mapping[str, Any], clock: Any, jam_id: str) -> JamSink:
        """The local audio device (bridge/audio/playback.py:DeviceOutput) with the request's device, block, latency."""
        latency = float(settings.get("latency", 0.0))
        chosen = PlaybackSettings.from_wire(device=str(settings.get("device") or ""),
                                            block=int(settings.get("block", 0)), latency=latency if latency > 0 else "")
        return DeviceOutput(clock, chosen)

    def on_state(self, dest: Destination, engine: Engine, status: JamStatus, bar_s: float) -> None:
        self.tell(dest, status)
        if status.state == "stopped":
            self.measured(engine, status, bar_s)

    def tell(self, dest: Destination, status: JamStatus) -> None:
        self.events.emit(dest, "/continuo/jam/state", status.jam_id, status.state, status.bar, float(status.lead_s),
                         float(status.rtf), status.lookahead_bars, status.underruns, status.held_bars, status.message)
