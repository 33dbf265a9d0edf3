"""MIDI control: a controller's keys, knobs and clock drive jobs through the callables it is given.

A **MIDI map** is a TOML preset in ``presets/midi/`` or ``<user_presets_dir>/midi/``
(its name is the file stem). Layout, every key optional::

    description = "Four pads, two knobs."
    channel = 0                 # 0..15: listen to this channel only; absent: all channels
    preset = "default"          # preset for notes that name none (program change replaces it)
    bars = 4.0                  # length for notes that give none
    follow_clock = true         # MIDI clock sets the tempo of MIDI-triggered jobs

    [[notes]]
    note = 36                   # 0..127
    action = "generate"         # generate | continue | variation | cancel
    slot = 1                    # 0..127: results are announced with /continuo/slot; a new trigger of
                                # the slot replaces its waiting job (the queue's rule for live jobs)
    preset = "lofi_tape"        # optional
    prompt = "dusty drums"      # optional (generate)
    bars = 2.0                  # optional, 0.25..256 (a request's bars range)
    velocity = "temperature"    # optional: velocity 1..127 -> that setting's schema range (or vmin..vmax)
    vmin = 0.7
    vmax = 1.3

    [[cc]]
    cc = 1                      # 0..127
    setting = "guidance_scale"  # a preset setting (bridge.audio.presets.PRESET_SETTINGS)
    min = 1.0                   # optional; default: the setting's range in osc_schema/continuo.json
    max = 6.0

    [programs]                  # program change -> preset
    0 = "default"
    1 = "lofi_tape"

Actions: ``generate`` renders the note's preset and prompt into its slot;
``continue`` continues the newest finished MIDI result; ``variation`` sends the
slot's last generate again with a new seed; ``cancel`` cancels the slot's
newest job. Every job goes in with ``Priority.LIVE`` and its slot.

**Clock.** MIDI clock's tempo and song position come from ``bridge.audio.clocks.MidiClock`` (24 ticks per
quarter note; the estimator, its window, gap and hysteresis are documented there; the jam's MIDI clock uses the
same one). With ``follow_clock`` the settled tempo is published to the session whenever it changes. MIDI clock
speaks of quarter notes; the map's tempo is set in the session's beat unit.

The input is injectable: ``MidiController.feed(message, now_s)`` takes mido
messages, so tests need no sound card. ``open_midi_input`` opens a real port
(or ``virtual:NAME``) and feeds it.

The controller knows no daemon: it is handed ``submit``, ``set_tempo``, ``cancel``
and ``result_path`` callables and the lock they share with the request handlers
(the daemon wires them in ``Daemon.start_midi``; tests pass recorders).
"""

from __future__ import annotations

import logging
import math
import secrets
import threading
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import mido

from bridge.audio.clocks import MidiClock
from bridge.audio.presets import NAME_PATTERN, PRESET_SETTINGS, PresetError
from bridge.errors import ConfigError
from bridge.jobs.journal import JobRecord
from bridge.jobs.queue import Priority
from bridge.protocol.destinations import Destination
from bridge.protocol.schema import load_schema

log = logging.getLogger("continuo.midi")

ACTIONS: tuple[str, ...] = ("generate", "continue", "variation", "cancel")
VIRTUAL_PREFIX = "virtual:"


@dataclass(frozen=True)
class NoteAction:
    note: int
    action: str
    slot: int = 0
    preset: str | None = None
    prompt: str = ""
    bars: float | None = None
    velocity: str | None = None
    vmin: float | None = None
    vmax: float | None = None


@dataclass(frozen=True)
class CcSetting:
    cc: int
    setting: str
    min: float
    max: float


@dataclass(frozen=True)
class MidiMap:
    name: str
    path: Path
    description: str = ""
    channel: int | None = None
    preset: str = "default"
    bars: float = 4.0
    follow_clock: bool = True
    notes: Mapping[int, NoteAction] = field(default_factory=dict)
    cc: Mapping[int, CcSetting] = field(default_factory=dict)
    programs: Mapping[int, str] = field(default_factory=dict)


# -- loading -------------------------------------------------------------------------------
def midi_map_dirs(preset_dirs: Sequence[Path]) -> list[Path]:
    """``<dir>/midi`` for each preset folder that has one."""
    return [Path(d) / "midi" for d in preset_dirs if (Path(d) / "midi").is_dir()]


def load_midi_maps(dirs: Sequence[Path], presets: Sequence[str] | None = None) -> dict[str, MidiMap]:
    """Every ``*.toml`` in ``dirs`` by name (later dirs override); one ``PresetError`` lists all problems.

    With ``presets`` given, preset names in the maps must be among them.
    """
    maps: dict[str, MidiMap] = {}
    problems: list[str] = []
    for directory in map(Path, dirs):
        for path in sorted(directory.glob("*.toml")):
            found: list[tuple[str, str]] = []
            midi_map = _load_map(path, found, presets)
            problems.extend(f"{path}: {key}: {reason}" for key, reason in found)
            if midi_map is not None:
                maps[midi_map.name] = midi_map
    if problems:
        raise PresetError(problems)
    return maps


def _load_map(path: Path, problems: list, presets: Sequence[str] | None) -> MidiMap | None:
    if not NAME_PATTERN.match(path.stem):
        problems.append(("name", f"{path.stem!r} must match {NAME_PATTERN.pattern} (rename the file)"))
    try:
        with open(path, "rb") as handle:
            doc = tomllib.load(handle)
    except OSError as exc:
        problems.append(("file", f"cannot read: {exc}"))
        return None
    except tomllib.TOMLDecodeError as exc:
        problems.append(("toml", str(exc)))
        return None
    known = ("description", "channel", "preset", "bars", "follow_clock", "notes", "cc", "programs")
    for key in doc:
        if key not in known:
            problems.append((key, f"unknown key; valid: {', '.join(known)}"))
    fields: dict[str, Any] = {
        "description": _get(doc, "description", str, problems, default=""),
        "channel": _int(doc, "channel", 0, 15, problems, default=None),
        "preset": _preset(doc, "preset", problems, presets, default="default"),
        "bars": _bars(doc, "bars", problems, default=4.0),
        "follow_clock": _get(doc, "follow_clock", bool, problems, default=True),
        "notes": _notes(doc.get("notes", []), problems, presets),
        "cc": _ccs(doc.get("cc", []), problems),
        "programs": _programs(doc.get("programs", {}), problems, presets),
    }
    return None if problems else MidiMap(name=path.stem, path=path, **fields)


def _notes(tables: object, problems: list, presets: Sequence[str] | None) -> dict[int, NoteAction]:
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        problems.append(("notes", "must be an array of tables ([[notes]])"))
        return {}
    notes: dict[int, NoteAction] = {}
    fields = ("note", "action", "slot", "preset", "prompt", "bars", "velocity", "vmin", "vmax")
    for index, table in enumerate(tables):
        where = f"notes[{index}]"
        for key in table:
            if key not in fields:
                problems.append((f"{where}.{key}", f"unknown key; valid: {', '.join(fields)}"))
        note = _int(table, "note", 0, 127, problems, where=where)
        action = table.get("action")
        if action not in ACTIONS:
            problems.append((f"{where}.action", f"must be one of {', '.join(ACTIONS)}, got {action!r}"))
        velocity = _get(table, "velocity", str, problems, where=where, default=None)
        if velocity is not None and velocity not in PRESET_SETTINGS:
            problems.append((f"{where}.velocity", f"unknown setting {velocity!r}; valid: {', '.join(PRESET_SETTINGS)}"))
        entry = NoteAction(
            note=note if note is not None else 0, action=str(action),
            slot=_int(table, "slot", 0, 127, problems, where=where, default=0),
            preset=_preset(table, "preset", problems, presets, where=where, default=None),
            prompt=_get(table, "prompt", str, problems, where=where, default=""),
            bars=_bars(table, "bars", problems, where=where, default=None),
            velocity=velocity,
            vmin=_number(table, "vmin", problems, where=where), vmax=_number(table, "vmax", problems, where=where),
        )
        if velocity in PRESET_SETTINGS:
            _check_span(where, velocity, entry.vmin, entry.vmax, problems, ("vmin", "vmax"))
        if note is not None and note in notes:
            problems.append((f"{where}.note", f"note {note} is mapped twice"))
        if note is not None:
            notes[note] = entry
    return notes


def _ccs(tables: object, problems: list) -> dict[int, CcSetting]:
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        problems.append(("cc", "must be an array of tables ([[cc]])"))
        return {}
    ccs: dict[int, CcSetting] = {}
    for index, table in enumerate(tables):
        where = f"cc[{index}]"
        for key in table:
            if key not in ("cc", "setting", "min", "max"):
                problems.append((f"{where}.{key}", "unknown key; valid: cc, setting, min, max"))
        number = _int(table, "cc", 0, 127, problems, where=where)
        setting = table.get("setting")
        if setting not in PRESET_SETTINGS:
            problems.append((f"{where}.setting", f"unknown setting {setting!r}; valid: {', '.join(PRESET_SETTINGS)}"))
            continue
        lo, hi = _number(table, "min", problems, where=where), _number(table, "max", problems, where=where)
        _check_span(where, setting, lo, hi, problems, ("min", "max"))
        range_lo, range_hi = setting_range(setting)
        if number is not None:
            ccs[number] = CcSetting(number, setting, range_lo if lo is None else lo, range_hi if hi is None else hi)
    return ccs


def _programs(table: object, problems: list, presets: Sequence[str] | None) -> dict[int, str]:
    if not isinstance(table, dict):
        problems.append(("programs", "must be a table ([programs]) of program number = \"preset\""))
        return {}
    programs: dict[int, str] = {}
    for key, value in table.items():
        where = f"programs.{key}"
        if not key.isdigit() or not 0 <= int(key) <= 127:
            problems.append((where, "program numbers are 0..127"))
            continue
        name = _preset(table, key, problems, presets, where="programs", default=None)
        if name is not None:
            programs[int(key)] = name
    return programs


def _check_span(where: str, setting: str, lo: float | None, hi: float | None, problems: list,
                names: tuple[str, str]) -> None:
    range_lo, range_hi = setting_range(setting)
    for name, value in zip(names, (lo, hi)):
        if value is not None and not range_lo <= value <= range_hi:
            problems.append((f"{where}.{name}", f"must be within {setting}'s range {range_lo:g} to {range_hi:g}, "
                             f"got {value!r}"))


def setting_range(setting: str) -> tuple[float, float]:
    """(min, max) of a preset setting, from the schema: a knob reaches exactly what a request may send."""
    spec = load_schema().setting(setting)
    assert spec is not None and spec.min is not None and spec.max is not None, f"{setting} has no schema range"
    return float(spec.min), float(spec.max)


def _key(where: str | None, key: str) -> str:
    return f"{where}.{key}" if where else key


def _get(table: Mapping, key: str, kind: type, problems: list, *, where: str | None = None, default: Any = None):
    value = table.get(key, default)
    if value is not default and (not isinstance(value, kind) or (kind is not bool and isinstance(value, bool))):
        problems.append((_key(where, key), f"must be a {kind.__name__}, got {value!r}"))
        return default
    return value


def _int(table: Mapping, key: str, lo: int, hi: int, problems: list, *, where: str | None = None,
         default: Any = ...) -> int | None:
    if key not in table:
        if default is ...:
            problems.append((_key(where, key), f"is required: an integer from {lo} to {hi}"))
            return None
        return default
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        problems.append((_key(where, key), f"must be an integer from {lo} to {hi}, got {value!r}"))
        return None
    return value


def _number(table: Mapping, key: str, problems: list, *, where: str | None = None) -> float | None:
    value = table.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        problems.append((_key(where, key), f"must be a number, got {value!r}"))
        return None
    return float(value)


def _bars(table: Mapping, key: str, problems: list, *, where: str | None = None, default: Any) -> float | None:
    value = _number(table, key, problems, where=where)
    if value is None:
        return default
    bars = next(arg for arg in load_schema().requests["/continuo/generate"].args if arg.name == "bars")
    if not bars.min <= value <= bars.max:  # the range a request's bars argument has
        problems.append((_key(where, key), f"must be from {bars.min:g} to {bars.max:g} bars, got {value!r}"))
    return value


def _preset(table: Mapping, key: str, problems: list, presets: Sequence[str] | None, *, where: str | None = None,
            default: Any) -> str | None:
    value = _get(table, key, str, problems, where=where, default=default)
    if value is None or value is default:
        return value
    if not NAME_PATTERN.match(value):
        problems.append((_key(where, key), f"{value!r} is not a preset name ({NAME_PATTERN.pattern})"))
    elif presets is not None and value not in presets:
        problems.append((_key(where, key), f"unknown preset {value!r}; known: {', '.join(sorted(presets))}"))
    return value


# -- the controller ------------------------------------------------------------------------
class SubmitJob(Protocol):
    """Validate, journal and queue one job, or raise a BridgeError (the daemon's ``submit``)."""

    def __call__(self, op: str, job_id: str, args: Mapping[str, Any], settings: Mapping[str, Any],
                 sender: Destination, *, priority: Priority, slot: int | None) -> None: ...


@dataclass
class _SlotState:
    last_generate: tuple[dict, dict] | None = None  # (args, settings) of the slot's last generate
    last_job: str | None = None


class MidiController:
    """Turns MIDI messages into jobs and context changes; thread-safe, fed by a port or a test."""

    def __init__(
        self,
        midi_map: MidiMap,
        *,
        submit: SubmitJob,
        sender: Destination,
        set_tempo: Callable[[float], None] | None = None,
        cancel: Callable[[str], None] | None = None,
        result_path: Callable[[str], str | None] | None = None,
        lock: AbstractContextManager[Any] | None = None,
    ) -> None:
        """submit, set_tempo and cancel run holding ``lock`` (the one the request handlers hold, so MIDI
        takes turns with them); result_path (a journal read) runs without it."""
        self.map = midi_map
        self.sender = sender
        self.submit = _holding(lock, submit)
        self.set_tempo = None if set_tempo is None else _holding(lock, set_tempo)
        self.cancel = None if cancel is None else _holding(lock, cancel)
        self.result_path = result_path
        self.clock = MidiClock()
        self.preset = midi_map.preset
        self.settings: dict[str, float | int] = {}
        self.published_bpm: float | None = None
        self.jobs: list[str] = []  # MIDI job ids, oldest first
        self.slots: dict[int, _SlotState] = {}
        self._lock = threading.Lock()

    def feed(self, message: mido.Message, now_s: float | None = None) -> None:
        """Handle one message (``now_s``: its arrival time, monotonic seconds)."""
        now_s = time.monotonic() if now_s is None else now_s
        with self._lock:
            try:
                self._handle(message, now_s)
            except Exception as exc:  # a bad request from a key press must not stop the MIDI input
                log.warning("job=- midi %s ignored: %s: %s", message, type(exc).__name__,
                            getattr(exc, "message", exc))

    def _handle(self, message: mido.Message, now_s: float) -> None:
        if self.clock.handle(message, now_s):
            if message.type == "clock" and self.map.follow_clock:
                self._publish_tempo()
            return
        channel = getattr(message, "channel", None)
        if self.map.channel is not None and channel is not None and channel != self.map.channel:
            return
        if message.type == "note_on" and message.velocity > 0:
            self._note(message.note, message.velocity)
        elif message.type == "control_change" and message.control in self.map.cc:
            self._control(self.map.cc[message.control], message.value)
        elif message.type == "program_change" and message.program in self.map.programs:
            self.preset = self.map.programs[message.program]
            log.info("job=- midi program %d -> preset %s", message.program, self.preset)

    def _publish_tempo(self) -> None:
        bpm = self.clock.tempo_bpm
        if bpm is not None and bpm != self.published_bpm:
            self.published_bpm = bpm
            if self.set_tempo is not None:
                self.set_tempo(bpm)

    def _control(self, cc: CcSetting, value: int) -> None:
        self.settings[cc.setting] = _scale(cc.setting, value / 127, cc.min, cc.max)
        log.debug("job=- midi cc %d -> %s=%s", cc.cc, cc.setting, self.settings[cc.setting])

    def _note(self, note: int, velocity: int) -> None:
        entry = self.map.notes.get(note)
        if entry is None:
            return
        state = self.slots.setdefault(entry.slot, _SlotState())
        settings = dict(self.settings)
        if entry.velocity is not None:
            lo, hi = setting_range(entry.velocity)
            settings[entry.velocity] = _scale(entry.velocity, (velocity - 1) / 126,
                                              lo if entry.vmin is None else entry.vmin,
                                              hi if entry.vmax is None else entry.vmax)
        bars = entry.bars if entry.bars is not None else self.map.bars
        preset = entry.preset or self.preset
        if entry.action == "generate":
            args = {"preset": preset, "prompt": entry.prompt, "bars": bars}
            state.last_generate = (args, settings)
            self._submit("generate", entry.slot, args, settings, state)
        elif entry.action == "variation":
            if state.last_generate is None:
                log.info("job=- midi variation on slot %d: nothing generated in this slot yet", entry.slot)
                return
            args, previous = state.last_generate
            self._submit("generate", entry.slot, args, {k: v for k, v in previous.items() if k != "seed"}, state)
        elif entry.action == "continue":
            path = self._last_result()
            if path is None:
                log.info("job=- midi continue on slot %d: no finished MIDI result to continue yet", entry.slot)
                return
            self._submit("continue", entry.slot, {"preset": preset, "input_path": path, "bars": bars}, settings,
                         state)
        elif entry.action == "cancel" and state.last_job is not None and self.cancel is not None:
            self.cancel(state.last_job)

    def _submit(self, op: str, slot: int, args: dict, settings: dict, state: _SlotState) -> None:
        job_id = f"midi-{slot}-{secrets.token_hex(4)}"
        self.submit(op, job_id, dict(args), dict(settings), self.sender, priority=Priority.LIVE, slot=slot)
        state.last_job = job_id
        self.jobs.append(job_id)
        del self.jobs[:-64]

    def _last_result(self) -> str | None:
        if self.result_path is None:
            return None
        for job_id in reversed(self.jobs):
            path = self.result_path(job_id)
            if path:
                return path
        return None


def _scale(setting: str, fraction: float, lo: float, hi: float) -> float | int:
    """``fraction`` 0..1 of the span lo..hi, as the setting's schema type; 1 gives exactly ``hi``."""
    fraction = min(max(fraction, 0.0), 1.0)
    value = hi if fraction == 1.0 else lo + (hi - lo) * fraction
    return int(round(value)) if load_schema().settings[setting].type == "i" else round(value, 4)


# -- ports ---------------------------------------------------------------------------------
class MidiFeed(Protocol):
    """What a port feeds: the controller, or the jam's MIDI clock (bridge.audio.clocks.MidiClockSource)."""

    def feed(self, message: mido.Message, now_s: float | None = None) -> None: ...


def open_midi_input(name: str, controller: MidiFeed) -> Any:
    """Open port ``name`` (or ``virtual:NAME``) and feed ``controller``; ``ConfigError`` says what exists."""
    try:
        if name.startswith(VIRTUAL_PREFIX):
            return mido.open_input(name[len(VIRTUAL_PREFIX):], virtual=True, callback=controller.feed)
        available = mido.get_input_names()
    except Exception as exc:  # rtmidi raises its own SystemError types without ALSA/CoreMIDI/WinMM
        raise ConfigError(f"midi: no MIDI backend is usable here ({type(exc).__name__}: {exc}); on Linux the ALSA "
                          "sequencer (/dev/snd/seq) must exist; start without --midi") from exc
    if name not in available:
        listed = ", ".join(repr(n) for n in available) or "none"
        raise ConfigError(f"midi: no input port named {name!r}; ports here: {listed} "
                          f"(or {VIRTUAL_PREFIX}NAME for a virtual port where the platform allows)")
    try:
        return mido.open_input(name, callback=controller.feed)
    except Exception as exc:  # the port vanished or is exclusive
        raise ConfigError(f"midi: cannot open input port {name!r}: {exc}") from exc


# -- wiring ------------------------------------------------------------------------------
def pick_midi_map(maps: Mapping[str, MidiMap], name: str) -> MidiMap:
    """The map called ``name``; ``ConfigError`` lists the known ones."""
    if name not in maps:
        raise ConfigError(f"midi_map: no MIDI map named {name!r}; known: {', '.join(sorted(maps)) or 'none'} "
                          "(presets/midi/*.toml or <user_presets_dir>/midi/)")
    return maps[name]


def mix_path(record: JobRecord | None) -> str | None:
    """The mix of a finished journal record, else None."""
    if record is None or getattr(record.status, "value", record.status) != "done":
        return None
    return next((output.path for output in record.outputs if output.name == "mix"), None)


def _holding(lock: AbstractContextManager[Any] | None, function: Callable[..., Any]) -> Callable[..., Any]:
    """function, called with lock held (as it is, without one)."""
    if lock is None:
        return function

    def call(*args: Any, **kwargs: Any) -> Any:
        with lock:
            return function(*args, **kwargs)

    return call
