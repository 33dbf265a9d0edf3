"""Continuo's OSC wire protocol, read from osc_schema/continuo.json.

`Schema.parse` turns a received message into a validated `Request` (or raises
BadRequest saying what is wrong and what to send instead); `Schema.check_event`
turns event arguments into an `Event` (its values and its datagram, under the size
limit; `Schema.build_event` is the datagram alone); `parse_datagram` splits one UDP
datagram into its messages. Transports use only these.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import math
import re
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pythonosc import osc_bundle, osc_message, osc_message_builder
from pythonosc.parsing import osc_types

from bridge.errors import BadRequest
from osc_schema import SCHEMA_PATH

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
FLOAT32_MAX = 3.4028234663852886e38
ELLIPSIS = "…"
_BUNDLE_PREFIX = b"#bundle\x00"
_OSC_TYPE_TAGS = frozenset("ihfdsbrmtTFN[]")
_ARG_KEYS = frozenset(
    "name type description min max enum pattern max_length allow_empty separator "
    "default truncate aliases example only_for number_text".split()
)
_TYPE_NOUNS = {"s": "a string", "i": "an integer", "f": "a float"}
_REQUIRED = object()
JOB_ID_ARGS = ("job_id", "jam_id")  # a request's first argument naming what it is about (errors carry it)


class _Invalid(Exception):
    """One value broke its spec; str() is the 'got ...' part of the message."""


class InvalidValue(ValueError):
    """A value broke its spec outside a request (a preset file, a MIDI map): 'must be ..., got ...'."""


class _Reject(Exception):
    """A request broke the schema; `setting` names the setting to show in the example."""

    def __init__(self, message: str, setting: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting


@dataclass(frozen=True)
class Request:
    """A validated request: `args` by name (defaults filled in), `settings` by canonical name.

    `job_id` is the job the request is about, "" when none (and for `cancel *`).
    """

    address: str
    op: str
    job_id: str
    args: Mapping[str, Any]
    settings: Mapping[str, Any]


@dataclass(frozen=True)
class Event:
    """One event checked against the schema, as every transport sends it.

    `values` are what a receiver reads back from `osc`: floats as the float32 the datagram holds
    (0.1 -> 0.10000000149011612), a `truncate` string cut to fit. `osc` is the datagram the size check
    built (< max_message_bytes); UDP and TCP send it, ZeroMQ encodes `address` and `values`.
    """

    address: str
    values: tuple[Any, ...]
    osc: bytes


@dataclass(frozen=True)
class ArgSpec:
    """One argument or setting as the schema declares it."""

    name: str
    type: str
    description: str = ""
    min: float | None = None
    max: float | None = None
    enum: tuple[Any, ...] | None = None
    pattern: re.Pattern[str] | None = None
    hint: str = ""
    max_length: int | None = None
    allow_empty: bool = False
    separator: str | None = None
    default: Any = _REQUIRED
    truncate: bool = False
    aliases: tuple[str, ...] = ()
    example: Any = None
    only_for: tuple[str, ...] = ()  # settings: the only requests that take it (empty: every request with settings)
    number_text: bool = False  # strings: a number sent (Max and Pd send 0.5 as a float) is taken as its text

    @property
    def optional(self) -> bool:
        return self.default is not _REQUIRED

    def constraint_text(self) -> str:
        """The valid values in a few words, e.g. '0.25..256' or '1, 2, 4'."""
        if self.separator:
            return f"{', '.join(map(str, self.enum or ()))} joined by '{self.separator}'"
        parts = []
        if self.enum is not None:
            parts.append(", ".join(map(str, self.enum)))
        elif self.min is not None and self.max is not None:
            parts.append(f"{_fmt_num(self.min)}..{_fmt_num(self.max)}")
        elif self.min is not None:
            parts.append(f">= {_fmt_num(self.min)}")
        elif self.max is not None:
            parts.append(f"<= {_fmt_num(self.max)}")
        if self.hint:
            parts.append(self.hint)
        if self.max_length is not None:
            parts.append(f"at most {self.max_length} bytes")
        if self.allow_empty:
            parts.append("or empty for none")
        return "; ".join(parts) or "any"

    def describe(self) -> str:
        """What a valid value is, for error messages: 'a float in 0.25..256'."""
        if self.type == "s":
            if self.separator:
                text = f"a list of {', '.join(self.enum or ())} joined by '{self.separator}'"
            elif self.enum is not None:
                text = f"one of {', '.join(self.enum)}"
            else:
                text = self.hint or "a string"
            if self.max_length is not None:
                limit = f"at most {self.max_length} bytes"
                text += f" of {limit}" if text == "a string" else f" ({limit})"
            return text + (", or an empty string" if self.allow_empty else "")
        noun = _TYPE_NOUNS[self.type]
        if self.enum is not None:
            return f"{noun}, one of {', '.join(map(str, self.enum))}"
        if self.min is not None or self.max is not None:
            joiner = " in " if self.min is not None and self.max is not None else " "
            return noun + joiner + self.constraint_text()
        return noun

    def coerce(self, value: Any) -> Any:
        """The value converted to this spec's type and checked; raises _Invalid."""
        if self.type == "s":
            if self.number_text and isinstance(value, Real) and not isinstance(value, bool):
                value = _number_text(value)
            return self._check_string(_as_string(value))
        number = _as_int(value) if self.type == "i" else _as_float(value)
        return self._check_number(number)

    def check(self, value: Any) -> Any:
        """``coerce`` for callers outside this module: raises InvalidValue 'must be <describe>, got <value>'."""
        try:
            return self.coerce(value)
        except _Invalid as exc:
            raise InvalidValue(f"must be {self.describe()}, got {exc}") from None

    def _check_number(self, value: int | float) -> int | float:
        if self.enum is not None and value not in self.enum:
            raise _Invalid(_show(value))
        low, high = self.min, self.max
        if low is not None and value < low:
            if self.type == "f" and value >= low - 1e-6 * max(1.0, abs(low)):
                return float(low)  # float32 rounding on the wire
            raise _Invalid(_show(value))
        if high is not None and value > high:
            if self.type == "f" and value <= high + 1e-6 * max(1.0, abs(high)):
                return float(high)
            raise _Invalid(_show(value))
        return value

    def _check_string(self, value: str) -> Any:
        if "\x00" in value:
            raise _Invalid(f"{_show(value)} (contains a NUL character)")
        if self.allow_empty and value == "":
            return None
        if self.max_length is not None and len(value.encode("utf-8")) > self.max_length:
            raise _Invalid(f"{len(value.encode('utf-8'))} bytes")
        if self.separator:
            items = [item.strip() for item in value.split(self.separator)]
            if any(item not in (self.enum or ()) for item in items) or len(set(items)) < len(items):
                raise _Invalid(_show(value))
            return tuple(items)
        if self.enum is not None and value not in self.enum:
            raise _Invalid(_show(value))
        if self.pattern is not None and not self.pattern.fullmatch(value):
            raise _Invalid(_show(value))
        return value


@dataclass(frozen=True)
class MessageSpec:
    """One request or event address."""

    address: str
    op: str
    description: str
    args: tuple[ArgSpec, ...]
    settings: bool
    replies: tuple[str, ...]
    example: tuple[Any, ...]
    job_event: bool = False  # events: the first argument names the job or jam it is about (routed by that id)

    @property
    def required_count(self) -> int:
        return sum(1 for arg in self.args if not arg.optional)

    def signature(self) -> str:
        """The argument names, e.g. 'job_id preset prompt bars [name value]...'."""
        names = [f"[{a.name}]" if a.optional else a.name for a in self.args]
        if self.settings:
            names.append("[name value]...")
        return " ".join(names) or "no arguments"

    def positional(self, args: Mapping[str, Any], settings: Mapping[str, Any]) -> tuple[list[Any], list[str]]:
        """Named arguments and settings (ZeroMQ's and HTTP's JSON forms) as the OSC argument list: the args in this
        message's order up to the first missing required one (parse names what is missing; a missing optional one
        before a named one takes its default, so the named one keeps its place), then the settings as name/value
        pairs; and the names this message does not take, for the caller to refuse in its own words."""
        remaining = dict(args)
        values: list[Any] = []
        for index, arg in enumerate(self.args):
            if arg.name in remaining:
                values.append(remaining.pop(arg.name))
            elif not arg.optional:
                break
            elif any(later.name in remaining for later in self.args[index + 1:]):
                values.append(arg.default)
        for name, value in settings.items():
            values += [name, value]
        return values, sorted(map(str, remaining))

    def example_text(self, extra: Sequence[Any] = ()) -> str:
        return " ".join([self.address, *(_fmt_example(v) for v in (*self.example, *extra))])


class Schema:
    """The OSC address space: validates requests, builds events."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.raw = data
        self.version: str = data["version"]
        self.error_codes: dict[str, str] = dict(data["error_codes"])
        self.max_message_bytes: int = data["limits"]["max_message_bytes"]
        self.max_bundle_depth: int = data["limits"]["max_bundle_depth"]
        self.patterns = {name: (re.compile(p["regex"]), p["hint"]) for name, p in data["patterns"].items()}
        self.enums: dict[str, tuple[Any, ...]] = {name: tuple(v) for name, v in data["enums"].items()}
        self.enums["error_code"] = tuple(self.error_codes)
        self.stages: tuple[str, ...] = self.enums["stage"]
        self.settings = {
            name: self._arg_spec({**spec, "name": name}, "settings") for name, spec in data["settings"].items()
        }
        self._first_setting = next(iter(self.settings), None)
        self._setting_names = {alias: s.name for s in self.settings.values() for alias in (s.name, *s.aliases)}
        self.requests = {a: self._message_spec(a, spec, "requests") for a, spec in data["requests"].items()}
        self.events = {a: self._message_spec(a, spec, "events") for a, spec in data["events"].items()}
        # The events about one job or jam: the one list every transport routes by id and every client waits on.
        self.job_events: frozenset[str] = frozenset(a for a, spec in self.events.items() if spec.job_event)
        self._check_references()

    def setting(self, name: str) -> ArgSpec | None:
        """The request setting ``name`` (or an alias of it), None when there is none: its type and range,
        the one source of both for requests, presets and MIDI maps."""
        canonical = self._setting_names.get(name)
        return None if canonical is None else self.settings[canonical]

    def ranges(self, names: Sequence[str], limits: Mapping[str, float]) -> dict[str, ArgSpec]:
        """The numeric arguments and settings ``names`` (each the first request argument, else the setting, of that
        name) with their maxima capped by ``limits``: what a form may offer (the control room's min and max)."""
        found: dict[str, ArgSpec] = {}
        for name in names:
            arg = next((a for spec in self.requests.values() for a in spec.args if a.name == name), None)
            arg = arg or self.setting(name)
            if arg is not None:
                found[name] = capped(arg, limits.get(name))
        return found

    @property
    def request_addresses(self) -> tuple[str, ...]:
        return tuple(self.requests)

    @property
    def event_addresses(self) -> tuple[str, ...]:
        return tuple(self.events)

    # -- requests --------------------------------------------------------------------

    def parse(self, address: str, args: Sequence[Any], *, limits: Mapping[str, float] | None = None) -> Request:
        """Validate one received message; raises BadRequest naming the argument at fault. ``limits`` lowers the
        schema's maximum of the arguments it names to a daemon's own (bars: max_bars, count: max_variations), so a
        refusal states the range that daemon takes, not a wider one it would refuse anyway."""
        args = list(args)
        spec = self.requests.get(address)
        if spec is None:
            raise BadRequest(self._unknown_address(address), job_id=self._guess_job_id(args))
        job_id = self._guess_job_id(args) if spec.args and spec.args[0].name in JOB_ID_ARGS else ""
        if limits:
            spec = dataclasses.replace(spec, args=tuple(capped(arg, limits.get(arg.name)) for arg in spec.args))
        try:
            values = self._parse_positional(spec, args)
            settings = self._parse_settings(spec, args[len(spec.args):]) if spec.settings else {}
        except _Reject as exc:
            extra = () if exc.setting is None else (exc.setting, self.settings[exc.setting].example)
            raise BadRequest(f"{exc}{SEND_EXAMPLE}{spec.example_text(extra)}", job_id=job_id) from None
        job_id = values.get("job_id") or values.get("jam_id") or ""
        return Request(
            address=address,
            op=spec.op,
            job_id="" if job_id == "*" else job_id,
            args=MappingProxyType(values),
            settings=MappingProxyType(settings),
        )

    def _parse_positional(self, spec: MessageSpec, args: list[Any]) -> dict[str, Any]:
        if len(args) < spec.required_count:
            missing = spec.args[len(args)]
            raise _Reject(
                f"missing {missing.name} ({missing.describe()}): {spec.address} takes "
                f"{spec.signature()}, got {_count(len(args))}"
            )
        if not spec.settings and len(args) > len(spec.args):
            raise _Reject(f"too many arguments: {spec.address} takes {spec.signature()}, got {_count(len(args))}")
        values = {}
        for index, arg in enumerate(spec.args):
            value = args[index] if index < len(args) else arg.default
            try:
                values[arg.name] = arg.coerce(value)
            except _Invalid as exc:
                raise _Reject(f"{arg.name} must be {arg.describe()}, got {exc}") from None
        return values

    def _parse_settings(self, spec: MessageSpec, items: list[Any]) -> dict[str, Any]:
        last = spec.args[-1].name if spec.args else spec.address
        if len(items) % 2:
            raise _Reject(
                f"settings must be name value pairs, got {_count(len(items), 'item')} after {last} "
                f"(the last, {_show(items[-1])}, has no value)",
                setting=self._first_setting,
            )
        settings: dict[str, Any] = {}
        sent_as: dict[str, str] = {}
        for index in range(0, len(items), 2):
            name, value = items[index], items[index + 1]
            if not isinstance(name, str):
                raise _Reject(
                    f"a setting name must be a string, got {_show(name)} after {last}", setting=self._first_setting
                )
            canonical = self._setting_names.get(name)
            if canonical is None:
                close = _closest(name, list(self._setting_names))
                hint = f"did you mean {close[0]}? " if close else ""
                raise _Reject(
                    f"unknown setting {_show(name)}; {hint}settings are {self._settings_list()}",
                    setting=self._setting_names[close[0]] if close else self._first_setting,
                )
            if canonical in settings:
                twice = f"setting {canonical} given twice (as {sent_as[canonical]} and {name})"
                raise _Reject(twice, setting=canonical)
            sent_as[canonical] = name
            setting = self.settings[canonical]
            if setting.only_for and spec.address not in setting.only_for:
                raise _Reject(f"setting {canonical} belongs to {' and '.join(setting.only_for)} only; drop it here",
                              setting=self._first_setting)
            try:
                settings[canonical] = setting.coerce(value)
            except _Invalid as exc:
                raise _Reject(f"setting {name} must be {setting.describe()}, got {exc}", setting=canonical) from None
        return settings

    def _settings_list(self) -> str:
        return ", ".join(s.name + "".join(f" ({a})" for a in s.aliases) for s in self.settings.values())

    def _guess_job_id(self, args: list[Any]) -> str:
        try:
            first = _as_string(args[0]) if args else ""
        except _Invalid:
            return ""
        return first if self.patterns["job_id"][0].fullmatch(first) else ""

    def _unknown_address(self, address: str) -> str:
        close = _closest(str(address), list(self.requests))
        hint = f"did you mean {close[0]}? " if close else ""
        return f"unknown address {address}; {hint}send one of {', '.join(self.requests)}"

    # -- events ----------------------------------------------------------------------

    def check_event(self, address: str, *args: Any) -> Event:
        """One event, checked against the schema, with its datagram built once (< max_message_bytes).

        The size limit is an OSC limit, so the check builds the OSC bytes; they travel in the Event.
        Raises ValueError when an argument breaks the schema or the datagram cannot be made small
        enough by truncating a `truncate` string (paths never are).
        """
        values, dgram = self._checked_event(address, args)
        types = [arg.type for arg in self.events[address].args]
        return Event(address, tuple(_float32(value) if kind == "f" else value for kind, value in zip(types, values)),
                     dgram)

    def build_event(self, address: str, *args: Any) -> bytes:
        """The datagram alone of `check_event` (for clients and tests); the same checks and ValueError."""
        return self._checked_event(address, args)[1]

    def _checked_event(self, address: str, args: Sequence[Any]) -> tuple[list[Any], bytes]:
        spec = self.events.get(address)
        if spec is None:
            raise ValueError(f"unknown event {address}; events are {', '.join(self.events)}")
        if len(args) != len(spec.args):
            raise ValueError(f"{address} takes {spec.signature()}, got {_count(len(args))}")
        values = []
        for arg, value in zip(spec.args, args):
            try:
                values.append(arg.coerce(value))
            except _Invalid as exc:
                raise ValueError(f"{address}: {arg.name} must be {arg.describe()}, got {exc}") from None
        return self._fit(spec, values)

    def _fit(self, spec: MessageSpec, values: list[Any]) -> tuple[list[Any], bytes]:
        limit = self.max_message_bytes
        for _ in range(3):
            dgram = _build(spec, values)
            excess = len(dgram) - (limit - 1)
            if excess <= 0:
                return values, dgram
            candidates = [i for i, a in enumerate(spec.args) if a.truncate]
            index = max(candidates, key=lambda i: _utf8_len(values[i]), default=None)
            keep = -1 if index is None else _utf8_len(values[index]) - excess - 3 - len(ELLIPSIS.encode())
            if keep < 0:
                break
            values[index] = _truncate_utf8(values[index], keep) + ELLIPSIS
        strings = [(a.name, _utf8_len(v)) for a, v in zip(spec.args, values) if a.type == "s"]
        name, size = max(strings, key=lambda item: item[1], default=("", 0))
        raise ValueError(
            f"{spec.address} would be {len(dgram)} bytes, limit {limit}; its longest string, "
            f"{name} ({size} bytes), cannot be truncated"
        )

    # -- loading ---------------------------------------------------------------------

    def _message_spec(self, address: str, spec: Mapping[str, Any], table: str) -> MessageSpec:
        where = f"{table}[{address}]"
        if not re.fullmatch(r"(/[a-z][a-z0-9_]*)+", address):
            raise ValueError(f"{where}: an address is /word/word..., lower case")
        args = tuple(self._arg_spec(arg, f"{where}.args") for arg in spec["args"])
        optional = [arg.optional for arg in args]
        if optional != sorted(optional) or (spec.get("settings") and any(optional)):
            raise ValueError(f"{where}: only trailing arguments of requests without settings may have a default")
        if table == "events" and any(a.default is not _REQUIRED or a.allow_empty or a.separator for a in args):
            raise ValueError(f"{where}: event arguments take no default, allow_empty or separator")
        job_event = spec.get("job_event", False)
        if job_event is not False and (table != "events" or job_event is not True):
            raise ValueError(f"{where}: job_event is true or absent, and only on events")
        if job_event and (not args or args[0].name not in JOB_ID_ARGS):
            raise ValueError(f"{where}: a job_event's first argument is one of {', '.join(JOB_ID_ARGS)}")
        return MessageSpec(
            address=address,
            op=spec.get("op", ""),
            description=spec["description"],
            args=args,
            settings=bool(spec.get("settings", False)),
            replies=tuple(spec.get("replies", ())),
            example=tuple(spec["example"]),
            job_event=job_event,
        )

    def _arg_spec(self, spec: Mapping[str, Any], where: str) -> ArgSpec:
        where = f"{where}[{spec.get('name')}]"
        unknown = set(spec) - _ARG_KEYS
        if unknown or spec.get("type") not in _TYPE_NOUNS or not re.fullmatch(r"[a-z][a-z0-9_]*", spec.get("name", "")):
            raise ValueError(f"{where}: needs name (snake_case) and type s/i/f; unknown keys {sorted(unknown)}")
        numeric = spec["type"] != "s"
        if not numeric and ("min" in spec or "max" in spec):
            raise ValueError(f"{where}: min/max are for numbers")
        if numeric and any(k in spec for k in ("pattern", "max_length", "allow_empty", "separator", "truncate")):
            raise ValueError(f"{where}: pattern, max_length, allow_empty, separator, truncate are for strings")
        if "min" in spec and "max" in spec and spec["min"] > spec["max"]:
            raise ValueError(f"{where}: min > max")
        if "separator" in spec and "enum" not in spec:
            raise ValueError(f"{where}: separator needs an enum")
        pattern, hint = self.patterns[spec["pattern"]] if "pattern" in spec else (None, "")
        arg = ArgSpec(
            name=spec["name"],
            type=spec["type"],
            description=spec.get("description", ""),
            min=spec.get("min"),
            max=spec.get("max"),
            enum=self.enums[spec["enum"]] if "enum" in spec else None,
            pattern=pattern,
            hint=hint,
            max_length=spec.get("max_length"),
            allow_empty=bool(spec.get("allow_empty", False)),
            separator=spec.get("separator"),
            default=spec.get("default", _REQUIRED),
            truncate=bool(spec.get("truncate", False)),
            aliases=tuple(spec.get("aliases", ())),
            example=spec.get("example"),
            only_for=tuple(spec.get("only_for", ())),
            number_text=bool(spec.get("number_text", False)),
        )
        for label, value in (("default", arg.default), ("example", arg.example)):
            if value is not _REQUIRED and value is not None:
                try:
                    arg.coerce(value)
                except _Invalid as exc:
                    raise ValueError(f"{where}: {label} {exc} is not {arg.describe()}") from None
        return arg

    def _check_references(self) -> None:
        ops = [spec.op for spec in self.requests.values()]
        if "" in ops or len(set(ops)) != len(ops):
            raise ValueError("every request needs its own op")
        for spec in self.requests.values():
            unknown = set(spec.replies) - set(self.events)
            if unknown:
                raise ValueError(f"requests[{spec.address}]: replies name unknown events {sorted(unknown)}")
        names = list(self._setting_names)
        if len(names) != sum(1 + len(s.aliases) for s in self.settings.values()):
            raise ValueError("settings: an alias repeats a setting name")


def load_schema(path: Path | None = None) -> Schema:
    """The schema at `path`, or the packaged osc_schema/continuo.json (cached)."""
    if path is None:
        return _load_default()
    return Schema(json.loads(Path(path).read_text(encoding="utf-8")))


@functools.lru_cache(maxsize=1)
def _load_default() -> Schema:
    return Schema(json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))


# -- datagrams -----------------------------------------------------------------------


def parse_datagram(data: bytes) -> list[tuple[str, list]]:
    """The messages in one UDP datagram, bundles flattened in order; BadRequest if malformed."""
    messages: list[tuple[str, list]] = []
    try:
        _collect(bytes(data), 0, messages)
    except (
        osc_types.ParseError,
        osc_message.ParseError,
        osc_bundle.ParseError,
        IndexError,
        struct.error,
        UnicodeDecodeError,
        ValueError,
        TypeError,
        OverflowError,
        RecursionError,
    ) as exc:
        raise BadRequest(f"malformed OSC datagram ({len(data)} bytes): {exc}") from None
    return messages


def _collect(data: bytes, depth: int, out: list[tuple[str, list]]) -> None:
    if data.startswith(_BUNDLE_PREFIX):
        if depth >= MAX_BUNDLE_DEPTH:
            raise BadRequest(f"OSC bundles nested deeper than {MAX_BUNDLE_DEPTH}")
        _, index = osc_types.get_date(data, len(_BUNDLE_PREFIX))
        while index < len(data):
            size, index = osc_types.get_int(data, index)
            if size <= 0 or index + size > len(data):
                raise BadRequest(f"OSC bundle element of {size} bytes at byte {index} overruns the datagram")
            _collect(data[index:index + size], depth + 1, out)
            index += size
    elif data.startswith(b"/"):
        out.append(_parse_message(data))
    elif not data:
        raise BadRequest("empty datagram; send an OSC message such as /continuo/ping 1")
    else:
        raise BadRequest("not OSC: a datagram must start with '/' (message) or '#bundle' (bundle)")


def _parse_message(data: bytes) -> tuple[str, list]:
    _, index = osc_types.get_string(data, 0)
    if index < len(data):
        tags, _ = osc_types.get_string(data, index)
        if not tags.startswith(","):
            raise BadRequest(f"OSC type tag string must start with ',', got {tags[:16]!r}")
        unsupported = sorted(set(tags[1:]) - _OSC_TYPE_TAGS)
        if unsupported:
            raise BadRequest(f"unsupported OSC type tag(s) {''.join(unsupported)!r}; send s, i or f")
    message = osc_message.OscMessage(data)
    return message.address, message.params


def _build(spec: MessageSpec, values: list[Any]) -> bytes:
    builder = osc_message_builder.OscMessageBuilder(address=spec.address)
    for arg, value in zip(spec.args, values):
        builder.add_arg(value, arg.type)
    return builder.build().dgram


# -- values ----------------------------------------------------------------------------


def _number_text(value: Real) -> str:
    """0.5 -> "0.5", 3.0 -> "3" (a float32 as its shortest text)."""
    number = _as_float(value)
    return str(int(number)) if float(number).is_integer() else repr(number)


def _as_string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Integral) and not isinstance(value, bool):
        return str(int(value))  # Max sends "42" as an int
    raise _Invalid(_show(value))


def _as_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise _Invalid(_show(value))
    if isinstance(value, Integral):
        number = int(value)
    elif math.isfinite(value) and float(value).is_integer():
        number = int(value)
    else:
        raise _Invalid(_show(value))
    if not INT32_MIN <= number <= INT32_MAX:
        raise _Invalid(f"{number} (outside int32)")
    return number


def _as_float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise _Invalid(_show(value))
    number = float(value)
    if not math.isfinite(number) or abs(number) > FLOAT32_MAX:
        raise _Invalid(_show(number))
    return _tidy_float32(number)


def _tidy_float32(value: float) -> float:
    """0.699999988079071 (0.7 sent as float32) -> 0.7; other values unchanged."""
    packed = struct.pack(">f", value)
    if struct.unpack(">f", packed)[0] != value:
        return value
    for digits in range(1, 10):
        short = float(f"{value:.{digits}g}")
        if abs(short) <= FLOAT32_MAX and struct.pack(">f", short) == packed:  # 3.4025e38 rounds up past the max
            return short
    return value


def _float32(value: float) -> float:
    """The float32 nearest to value, as a double: what an OSC 'f' argument decodes to."""
    return struct.unpack(">f", struct.pack(">f", value))[0]


def _show(value: Any) -> str:
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        return text if len(text) <= 60 else text[:56] + '..."'
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if value is None:
        return "nil"
    if isinstance(value, (bytes, bytearray)):
        return f"a blob of {len(value)} bytes"
    if isinstance(value, (list, tuple)):
        return f"an array of {len(value)} items"
    return repr(value) if isinstance(value, (int, float)) else f"{value!r} ({type(value).__name__})"


def _closest(name: str, choices: list[str]) -> list[str]:
    """The likeliest intended name: a unique completion of a prefix, else the closest spelling."""
    completions = [choice for choice in choices if name and choice.startswith(name)]
    return completions[:1] if len(completions) == 1 else difflib.get_close_matches(name, choices, n=1)


def _fmt_num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def capped(arg: ArgSpec, limit: float | None) -> ArgSpec:
    """``arg`` with its maximum lowered to ``limit`` (a daemon's own limit); as it is when there is none."""
    if limit is None or (arg.max is not None and arg.max <= limit):
        return arg
    return dataclasses.replace(arg, max=limit)


SEND_EXAMPLE = "; send e.g. "  # what parse appends to a refusal: the fix in OSC's syntax
_REFUSAL = re.compile(r"^(?:setting )?(?P<field>[a-z_]+) must be (?P<rule>.+?), got (?P<got>.+?)(?:; send e\.g\. .*)?$",
                      re.S)
_PLAIN_NOUNS = {"a float": "a number", "an integer": "a whole number"}


@dataclass(frozen=True)
class Refusal:
    """A value ``parse`` refused, read back from its message so each front end can say it in its own terms: the
    CLI with its flags (--bars), the page with its labels (Length), OSC as sent (with an OSC example)."""

    field: str  # the argument or setting name, as the schema has it
    rule: str  # what a valid value is, in plain words: "a number in 0.25..64"
    got: str  # the value refused, as the message showed it


def read_refusal(message: str) -> Refusal | None:
    """The refusal in a BadRequest message of ``Schema.parse`` ("bars must be a float in 0.25..64, got 0.0; send
    e.g. ..."), None for any other message."""
    found = _REFUSAL.match(message)
    if found is None:
        return None
    rule = found["rule"]
    for noun, plain in _PLAIN_NOUNS.items():
        rule = rule.replace(noun, plain, 1) if rule.startswith(noun) else rule
    return Refusal(found["field"], rule, found["got"])


def without_osc_example(message: str) -> str:
    """A refusal's message less the OSC example parse appended (for front ends that do not speak OSC)."""
    return message.split(SEND_EXAMPLE, 1)[0]


def _fmt_example(value: Any) -> str:
    if isinstance(value, str):
        return value if value and re.fullmatch(r"[^\s\"']+", value) else json.dumps(value, ensure_ascii=False)
    return repr(value)


def _count(n: int, noun: str = "argument") -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _utf8_len(value: Any) -> int:
    return len(value.encode("utf-8")) if isinstance(value, str) else 0


def _truncate_utf8(value: str, max_bytes: int) -> str:
    return value.encode("utf-8")[:max_bytes].decode("utf-8", "ignore")


_DEFAULT = load_schema()
ERROR_CODES: tuple[str, ...] = tuple(_DEFAULT.error_codes)
STAGES: tuple[str, ...] = _DEFAULT.stages
MAX_MESSAGE_BYTES: int = _DEFAULT.max_message_bytes
MAX_BUNDLE_DEPTH: int = _DEFAULT.max_bundle_depth
