"""Daemon settings: one frozen dataclass, each field declared once.

Every field is filled, in order of precedence, from a command-line flag
(``--osc-port``), an environment variable (``CONTINUO_OSC_PORT``), a TOML config
file (``osc_port = 9000``) and the default declared here. The command-line
parser is generated from these fields, so a setting cannot exist in one place
and be missing in another.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import math
import os
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge.errors import ConfigError

ENV_PREFIX = "CONTINUO_"
DEFAULT_HOME = Path("~/Music/Continuo")


def _setting(default: Any, help: str, *, zero: str | None = None, minus_one: str | None = None,
             low: float | None = None, high: float | None = None) -> Any:
    """One field. For a number: ``zero`` is what 0 means (an "off", "no limit" or automatic choice; None: 0 is
    refused), ``minus_one`` what -1 means where it means something (None: refused, like every other negative),
    ``low``/``high`` the range of the other values (inclusive; the lowest is above 0 unless given)."""
    if isinstance(default, (list, dict)):
        raise TypeError("mutable defaults are not allowed in Settings")
    return field(default=default, metadata={"help": help, "zero": zero, "minus_one": minus_one, "low": low,
                                            "high": high})


@dataclass(frozen=True)
class Settings:
    model: str = _setting(
        "facebook/musicgen-small",
        "checkpoint directory or Hugging Face hub id; falls back to the Hugging Face cache, "
        "a download, then (with allow_smoke_model) a tiny random smoke model",
    )
    device: str = _setting("auto", "torch device: auto, cpu, cuda, cuda:N")
    cpu_threads: int = _setting(0, "threads torch may use on the CPU", zero="all cores", high=1024)
    backend: str = _setting("engine", "engine: our decode loop; transformers: transformers' generate (the reference)")
    weights: str = _setting(
        "auto", "decoder weights: auto (int4 or int8 on CPU as calibration allows, fp16 on CUDA), fp32, bf16, "
                "fp16, int8, int4 (bnb-nf4 on CUDA), bnb-int8, bnb-nf4; "
                "for ACE-Step, how the DiT's linears run on the CPU: auto (int8 or bf16 where measured faster), "
                "int8, bf16, fp32 (off: diffusers' own layers)"
    )
    kv_cache: str = _setting("auto", "self-attention cache: auto (int8 under int8 or int4 weights on the CPU, else the "
                                        "weights' dtype), fp32, fp16, bf16, mulaw8, int8 (a quarter of fp32's memory)")
    attention: str = _setting("auto", "attention kernel: auto (fused-cpu on the CPU, flash or sdpa on CUDA), sdpa, "
                                      "eager (the reference), flash (flash-attn on CUDA), fused-cpu (our C++ kernel)")
    memory_budget_gb: float = _setting(
        0.0, "GPU memory the model may hold, in GB. ACE-Step on CUDA: components idle in a phase (text and lyric "
        "encoding, DiT sampling, VAE decode) wait on the CPU when all of them would not fit; no effect on the CPU. "
        "A model switch loads the new model beside the old one only when both fit in it",
        zero="no budget, every component stays on the GPU",
    )
    compile_decode: bool = _setting(False, "CUDA only: compile the decode step with CUDA graphs (slow first render)")
    max_batch: int = _setting(
        4, "jobs whose decode steps run together (continuous batching; measured in docs/benchmarks.md); "
           "1: one job at a time. A live job always joins the running ones", low=1, high=64
    )
    allow_smoke_model: bool = _setting(
        True, "when no real checkpoint can be had, serve a tiny random model (noise, not music)"
    )
    smoke_model_dir: Path = _setting(
        Path("~/.cache/continuo/tiny-musicgen"), "where the tiny random smoke model is built"
    )
    osc_host: str = _setting("127.0.0.1", "address the OSC UDP server binds (loopback by default)")
    osc_port: int = _setting(9000, "OSC UDP port", zero="a free port (the ready line names it)", high=65535)
    osc_tcp_port: int | None = _setting(
        None, "OSC TCP port, SLIP or int32-length-prefix framing (default: the UDP port's number)",
        zero="a free port", minus_one="off", high=65535,
    )
    osc_allowed_hosts: str = _setting(
        "", "comma-separated client IP addresses allowed to talk OSC; required when osc_host is not loopback"
    )
    default_reply_port: int = _setting(
        0, "UDP port on the sender's host for the replies to a sender that never sent /continuo/hello "
        "(hosts with a fixed reply port, oscsend)", zero="its source port", high=65535,
    )
    zmq_host: str = _setting("127.0.0.1", "address the ZeroMQ ROUTER and PUB sockets bind (loopback by default)")
    zmq_port: int = _setting(5570, "ZeroMQ ROUTER port for requests", zero="a free port", minus_one="ZeroMQ off",
                             high=65535)
    zmq_pub_port: int = _setting(5571, "ZeroMQ PUB port for events, topic = job id", zero="a free port",
                                 high=65535)
    zmq_keys_dir: Path | None = _setting(
        None, "CURVE keys made by `continuo keys DIR`: server.key_secret and clients/*.key; "
        "required when zmq_host is not loopback"
    )
    http_host: str = _setting("127.0.0.1", "address the HTTP API and control room page bind (loopback by default)")
    http_port: int = _setting(9080, "HTTP port of the API and the control room page at /", zero="a free port",
                              minus_one="HTTP off", high=65535)
    http_token_file: Path | None = _setting(
        None, "file holding the bearer token HTTP clients must send (`continuo keys DIR` writes DIR/http.token); "
        "required when http_host is not loopback"
    )
    ack_resends: int = _setting(3, "terminal events are re-sent this many times until /continuo/ack",
                                zero="never", high=100)
    ack_interval_s: float = _setting(1.0, "seconds before the first re-send of a terminal event; doubles each time "
                                          "(no re-sends at all: ack_resends 0)", high=3600)
    retention_age_s: float = _setting(
        90 * 86400.0, "the journal forgets a finished job after this age; its files stay, and /continuo/get then "
        "answers from the job's manifest.json (renders are never removed automatically: `continuo prune`)",
        zero="never forgotten")
    retention_max_jobs: int = _setting(
        10000, "finished jobs the journal keeps at most; the oldest beyond this are forgotten as with "
               "retention_age_s (their files stay)", zero="no limit")
    auto_trash_days: float = _setting(
        0.0, "opt-in: finished jobs older than this many days, and not fetched in that time, are moved to the "
             "trash (<output_root>/.trash/, restorable; emptied only by `continuo prune --empty-trash --yes`)",
        zero="off: renders stay where they are until you prune them")
    inbox_copies_age_s: float = _setting(
        86400.0, "input copies the daemon and its clients made in the inbox (uploads, inline ZeroMQ audio, the "
                 "CLI's copies; marked as theirs) are removed after this age; your own files there never are",
        zero="kept for ever")
    max_variations: int = _setting(8, "variations per request at most", low=1, high=64)
    max_input_bytes: int = _setting(256 * 1024 * 1024, "input file (or inline PCM) size at most, in bytes", low=1)
    max_input_s: float = _setting(600.0, "input audio duration at most, in seconds")
    max_messages_per_s: float = _setting(
        1000.0, "messages per second per client (token bucket, burst of one second); over it: busy",
        zero="no limit",
    )
    output_root: Path = _setting(DEFAULT_HOME / "renders", "rendered files go under <output_root>/<job_id>/ and "
                                 "stay there: the daemon never removes a render by itself")
    input_roots: tuple[Path, ...] = _setting(
        (), "folders input files may be read from (default: the output root and an inbox/ beside it)"
    )
    journal_path: Path | None = _setting(None, "SQLite job journal (default: <output_root>/journal.sqlite3)")
    user_presets_dir: Path = _setting(
        Path("~/.config/continuo/presets"), "your own presets; a name here overrides a built-in one"
    )
    lora_dir: Path = _setting(
        Path("~/.config/continuo/loras"), "LoRA adapters a job may apply with lora NAME (ACE-Step; MusicGen at any "
        "weights, made by `continuo train-style`): NAME.safetensors "
        "or NAME/pytorch_lora_weights.safetensors, in diffusers' LoRA format (ACE-Step) or ours (MusicGen)"
    )
    lora: str = _setting(
        "", "a MusicGen LoRA adapter merged into the weights at load, for every render: NAME in lora_dir, or the path "
        "of an adapter file or folder ('' none). Free per step, unlike lora NAME per job (a side path each step); "
        "any weights, int8 / int4 included (merged before calibration and quantisation)"
    )
    max_queue: int = _setting(16, "jobs waiting at most; more get a 'busy' error", low=1)
    max_bars: float = _setting(64.0, "bars per request at most (the model's window may allow fewer)")
    sample_rate: int = _setting(48000, "session sample rate until a client sends /continuo/context", low=8000,
                                high=384000)
    bpm: float = _setting(120.0, "session tempo until a client sends /continuo/context", low=20, high=400)
    shutdown_timeout_s: float = _setting(10.0, "on SIGINT/SIGTERM, how long the running job may take to stop",
                                         zero="no wait: a running job is interrupted at once")
    log_level: str = _setting("INFO", "DEBUG, INFO, WARNING or ERROR")
    stems_weights: str = _setting(
        "pipeline", "HDemucs stem weights: pipeline (torchaudio HDEMUCS_HIGH_MUSDB_PLUS, downloaded once), "
        "a local state-dict file, or random (tests only)"
    )
    stems_model_size: str = _setting("high", "HDemucs size for a state-dict file or random weights: low, medium, high")
    stems_prepare_at_start: bool = _setting(
        False, "at start, load the stems separator and make its path's one-time OpenVINO export on a low-priority "
        "thread when it is missing (trained weights; about 3 minutes on 2 cores), so the first stems job does not "
        "wait for it; off by default: it loads HDemucs (and may download its weights) before anyone asks for stems"
    )
    midi: str = _setting("", "MIDI input port to listen to (a wrong name is refused with the list of ports); "
                             "virtual:NAME opens a virtual port where the platform allows; empty: no MIDI")
    midi_map: str = _setting("default", "MIDI map preset (presets/midi/NAME.toml or <user_presets_dir>/midi/NAME.toml)")
    midi_reply_port: int = _setting(9001, "UDP port on 127.0.0.1 that receives the events of MIDI-triggered jobs",
                                    low=1, high=65535)
    cluster: str = _setting(
        "", "run the engine as Ray Serve replicas (pip install 'continuo[cluster]'): local:N starts Ray here with N "
        "replicas; ray://HOST:PORT or HOST:PORT attaches to a running cluster; empty: the engine in this process"
    )
    cluster_replicas: int = _setting(0, "replicas on an attached cluster", zero="one per GPU, or one without GPUs")
    cluster_cpus_per_replica: float = _setting(1.0, "CPUs each replica reserves", zero="none reserved")
    cluster_gpus_per_replica: float = _setting(-1.0, "GPUs each replica reserves, fractions allowed", zero="none",
                                               minus_one="one where the cluster has GPUs, else none")
    cluster_models_per_replica: int = _setting(1, "models a replica keeps warm (Serve multiplexing, LRU)", low=1)
    cluster_object_store_mb: int = _setting(0, "local:N only: Ray's object store size in MiB",
                                            zero="Ray's default")
    cluster_shared_dir: Path | None = _setting(
        None, "a folder the gateway and every replica see (NFS): takes and style-training clips travel as files "
              "there, not through Ray"
    )

    @property
    def request_limits(self) -> dict[str, float]:
        """This daemon's own maxima of request arguments, by the schema's names: a refusal states them (not the
        schema's wider range), and the control room's form takes them (HTTP's /api/status `form`)."""
        return {"bars": float(self.max_bars), "count": float(self.max_variations)}

    @property
    def resolved_output_root(self) -> Path:
        return self.output_root.expanduser().resolve()

    @property
    def resolved_input_roots(self) -> tuple[Path, ...]:
        roots = self.input_roots or (self.output_root, self.output_root.expanduser().parent / "inbox")
        return tuple(root.expanduser().resolve() for root in roots)

    @property
    def resolved_lora_dir(self) -> Path:
        return self.lora_dir.expanduser().resolve()

    @property
    def resolved_journal_path(self) -> Path:
        if self.journal_path is not None:
            return self.journal_path.expanduser().resolve()
        return self.resolved_output_root / "journal.sqlite3"


def setting_fields() -> list[dataclasses.Field]:
    return list(dataclasses.fields(Settings))


def field_type(f: dataclasses.Field) -> Any:
    return _type_hints()[f.name]


@functools.cache
def _type_hints() -> dict[str, Any]:
    return typing.get_type_hints(Settings)


def numeric_fields() -> list[dataclasses.Field]:
    """The settings that are numbers (int, float, or one of them or None)."""
    numbers = (int, float)
    return [f for f in setting_fields()
            if field_type(f) in numbers or any(arg in numbers for arg in typing.get_args(field_type(f)))]


def value_meanings(f: dataclasses.Field) -> str:
    """What a number setting takes, in words: "0 (no limit) or more", "1..64", "-1 (off), 0 (a free port) or ..."."""
    meta = f.metadata
    low, high = meta["low"], meta["high"]
    rest = f"{_number(low)}..{_number(high)}" if low is not None and high is not None else \
        f"at least {_number(low)}" if low is not None else f"up to {_number(high)}" if high is not None else \
        "more than 0"
    special = ([f"-1 ({meta['minus_one']})"] if meta["minus_one"] else []) + \
        ([f"0 ({meta['zero']})"] if meta["zero"] else [])
    return f"{', '.join(special)} or {rest}" if special else rest


def check_number(f: dataclasses.Field, value: float | None) -> None:
    """One rule for every number: 0 means what the field declares (off, no limit, automatic) or is refused;
    -1 likewise; other negatives, non-finite values and values out of range are refused, naming the setting."""
    meta = f.metadata
    if value is None or (value == -1 and meta["minus_one"]) or (value == 0 and meta["zero"]):
        return
    low, high = meta["low"], meta["high"]
    if not math.isfinite(value) or value <= 0 or (low is not None and value < low) or \
            (high is not None and value > high):
        why = " (0 is refused: it would not mean off here)" if value == 0 else ""
        raise ConfigError(f"{f.name} must be {value_meanings(f)}{why}, got {value:g}")


def _number(value: float) -> str:
    return f"{value:g}"


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def _convert(name: str, raw: Any, kind: Any, origin: str) -> Any:
    """Convert one raw value (a TOML value or an environment string) to the field's type."""
    args = typing.get_args(kind)
    if type(None) in args:  # Optional[X]
        if raw is None or raw == "":
            return None
        kind = next(a for a in args if a is not type(None))
    try:
        if kind is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in {"1", "true", "yes", "on"}:
                return True
            if text in {"0", "false", "no", "off"}:
                return False
            raise ValueError("expected true or false")
        if kind is int:
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError("expected a whole number")
            return int(raw)
        if kind is float:
            if isinstance(raw, bool):
                raise ValueError("expected a number")
            return float(raw)
        if kind is str:
            if not isinstance(raw, str):
                raise ValueError("expected a string")
            return raw
        if kind is Path:
            if not isinstance(raw, (str, Path)):
                raise ValueError("expected a path")
            return Path(raw)
        if typing.get_origin(kind) is tuple:
            items = raw.split(os.pathsep) if isinstance(raw, str) else raw
            if not isinstance(items, (list, tuple)):
                raise ValueError("expected a list of paths")
            return tuple(Path(item) for item in items if str(item))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{origin}: {name}: cannot use {raw!r}: {exc}") from exc
    raise AssertionError(f"unsupported settings type {kind} for {name}")


def read_config_file(path: Path) -> dict[str, Any]:
    try:
        with path.expanduser().open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist; create it or drop --config") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    known = {f.name for f in setting_fields()}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
    return data


def load_settings(
    flags: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    config_path: Path | None = None,
) -> Settings:
    """Build Settings with precedence flag > environment > config file > default.

    ``flags`` holds only the flags the user actually gave (None means not given).
    ``config_path`` falls back to ``$CONTINUO_CONFIG`` when not given.
    """
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    environ = os.environ if environ is None else environ
    if config_path is None and environ.get(env_name("config")):
        config_path = Path(environ[env_name("config")])
    file_values = read_config_file(config_path) if config_path is not None else {}
    values: dict[str, Any] = {}
    for f in setting_fields():
        kind = field_type(f)
        if f.name in flags:
            values[f.name] = _convert(f.name, flags[f.name], kind, "flag")
        elif env_name(f.name) in environ:
            values[f.name] = _convert(f.name, environ[env_name(f.name)], kind, env_name(f.name))
        elif f.name in file_values:
            values[f.name] = _convert(f.name, file_values[f.name], kind, str(config_path))
    settings = Settings(**values)
    validate_settings(settings)
    return settings


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def allowed_hosts(settings: Settings) -> tuple[str, ...]:
    return tuple(host.strip() for host in settings.osc_allowed_hosts.split(",") if host.strip())


def validate_settings(settings: Settings) -> None:
    """Refuse settings that would expose the daemon: an osc_host other than loopback needs osc_allowed_hosts (IP
    addresses only: names are not resolved, so DNS cannot widen it; others' datagrams and connections are dropped,
    loopback always allowed); a zmq_host other than loopback needs zmq_keys_dir (CURVE on ROUTER and PUB); an
    http_host other than loopback needs http_token_file. The ConfigError names the setting."""
    if not is_loopback(settings.osc_host) and not allowed_hosts(settings):
        raise ConfigError(
            f"osc_host {settings.osc_host!r} is not a loopback address; serving other machines needs an allow-list "
            "of client addresses: set osc_allowed_hosts (e.g. --osc-allowed-hosts 192.168.1.20,192.168.1.21), "
            "or bind 127.0.0.1 (the default)."
        )
    for host in allowed_hosts(settings):
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ConfigError(
                f"osc_allowed_hosts: {host!r} is not an IP address (host names are not resolved)") from None
    if settings.zmq_port != -1 and not is_loopback(settings.zmq_host) and settings.zmq_keys_dir is None:
        raise ConfigError(
            f"zmq_host {settings.zmq_host!r} is not a loopback address; serving other machines over ZeroMQ needs "
            "CURVE keys: run `continuo keys DIR`, copy each client's public key into DIR/clients/, and set "
            "zmq_keys_dir DIR (or bind 127.0.0.1, the default, or turn ZeroMQ off with zmq_port -1)."
        )
    if settings.http_port != -1 and not is_loopback(settings.http_host) and settings.http_token_file is None:
        raise ConfigError(
            f"http_host {settings.http_host!r} is not a loopback address; serving other machines over HTTP needs a "
            "bearer token: run `continuo keys DIR` and set http_token_file DIR/http.token (or bind 127.0.0.1, the "
            "default, or turn HTTP off with http_port -1)."
        )
    for f in numeric_fields():
        check_number(f, getattr(settings, f.name))
    if settings.stems_model_size not in ("low", "medium", "high"):
        raise ConfigError(f"stems_model_size must be low, medium or high, got {settings.stems_model_size!r}")
    if settings.log_level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ConfigError(f"log_level must be DEBUG, INFO, WARNING or ERROR, got {settings.log_level!r}")
