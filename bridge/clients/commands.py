"""`continuo generate | continue | variations | stems | status`: one job from the command line, over OSC/UDP.

Each job command says hello, sets the session context (/continuo/context), sends one request and, by default,
waits for it: a live progress bar on a terminal (queue position, then progress and stage, then each output as
it lands), then the output paths on stdout, one per line. ``--json`` prints one JSON object per event on stdout
instead (the schema's argument names; an output also names its DAW-friendly file, ``daw_path``). ``--no-wait``
prints the job id once the daemon has accepted the job. Terminal events are acknowledged (/continuo/ack).
Ctrl-C cancels the job (/continuo/cancel) and exits 130. The exit status says how it ended: EXIT_CODES.
"""

from __future__ import annotations

import argparse
import json
import secrets
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from bridge.audio.files import daw_path_beside
from bridge.clients.inbox import InputMissing, StagedInput, stage_input
from bridge.clients.osc import TERMINAL_EVENTS, OscClient
from bridge.clients.progress import JobProgress
from bridge.clients.send import parse_arg
from bridge.errors import BridgeError
from bridge.protocol.schema import Schema, load_schema, read_refusal, without_osc_example
from bridge.settings import is_loopback

# The exit status of every job command, in one place (`continuo generate --help` and docs/quickstart.md show it).
# One code per error code of the schema (osc_schema/continuo.json); tests/bridge/clients/test_commands.py fails
# when the schema gains a code this table lacks.
EXIT_DONE = 0
EXIT_UNKNOWN_ERROR = 1  # an error code this client does not know (a newer daemon), or a bug
EXIT_USAGE = 2  # a command line argparse refused
EXIT_NO_REPLY = 3  # no reply from the daemon in time: is `continuo serve` running, on this port?
EXIT_CODES: dict[str, int] = {
    "bad_request": 10,
    "not_found": 11,  # also: the input file does not exist here
    "busy": 12,
    "cancelled": 13,
    "out_of_memory": 14,
    "model_error": 15,
    "io_error": 16,
    "interrupted": 17,
    "audio_error": 18,
    "id_conflict": 19,  # the job id belongs to another job: send it with a new id
    "disk_full": 20,  # the output disk is full: continuo prune, then send it again
}
EXIT_CTRL_C = 130  # Ctrl-C (SIGINT): the job was cancelled
CANCEL_WAIT_S = 5.0  # after Ctrl-C, how long to wait for the daemon to confirm the cancel
SMOKE_WARNING = ("the daemon serves a tiny RANDOM smoke model: this renders noise, not music "
                 "(start `continuo serve --model <checkpoint>` for music)")


def exit_code_table() -> str:
    """The exit codes as --help shows them."""
    rows = [(EXIT_DONE, "done"), (EXIT_UNKNOWN_ERROR, "an error code this client does not know"),
            (EXIT_USAGE, "bad command line"),
            (EXIT_NO_REPLY, "no reply from the daemon (is `continuo serve` running?)")]
    rows += [(code, f"error {name}") for name, code in EXIT_CODES.items()]
    rows.append((EXIT_CTRL_C, "Ctrl-C: the job was cancelled"))
    return "exit status:\n" + "\n".join(f"  {code:>3}  {text}" for code, text in rows)


def exit_code_for(error_code: str) -> int:
    return EXIT_CODES.get(error_code, EXIT_UNKNOWN_ERROR)


@dataclass
class JobRequest:
    """One job request to send: the address and its positional arguments, then name/value settings."""

    address: str
    job_id: str
    args: list[Any]
    settings: list[Any] = field(default_factory=list)
    inputs: dict[int, str] = field(default_factory=dict)  # index in args -> input file to stage first

    def message(self) -> list[Any]:
        return [*self.args, *self.settings]


def new_job_id(op: str) -> str:
    """cli-<op>-<date>-<time>-<8 random hex from the OS>: unique across reboots and across machines (the daemon
    refuses a reused id with another request, id_conflict)."""
    return f"cli-{op}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(4)}"


AUDIO_SUFFIXES = (".wav", ".wave", ".aif", ".aiff", ".flac", ".ogg", ".mp3", ".m4a")


class UsageError(Exception):
    """A command line the parser took but that cannot mean a job; the message says what to type instead."""


def file_and_prompt(ns: argparse.Namespace) -> None:
    """continue / variations: sort the words after the verb into ns.input and ns.prompt_setting. A word is the input
    file when it names a file here or ends in an audio suffix (so a missing clip.wav is reported as missing, not sent
    as a prompt), else the prompt; --input and --prompt say which outright. Raises UsageError on two of either, or
    on continue without a file."""
    files = [ns.input_file] if ns.input_file else []
    prompts = [ns.prompt_setting] if ns.prompt_setting is not None else []
    for word in ns.words:
        (files if looks_like_file(word) else prompts).append(word)
    verb = f"continuo {ns.command}"
    if len(files) > 1:
        raise UsageError(f"{verb} takes one input file, got {', '.join(map(repr, files))}; a prompt that looks like "
                         "a file name goes as --prompt TEXT")
    if len(prompts) > 1:
        raise UsageError(f"{verb} takes one prompt, got {', '.join(map(repr, prompts))}: quote the prompt as one "
                         f"word ({verb} \"{' '.join(prompts)}\"), or give a file that is not here as --input FILE")
    if ns.command == "continue" and not files:
        raise UsageError(f"{verb} needs an audio file to continue: {verb} clip.wav [\"prompt\"] (or --input FILE)"
                         + (f"; {prompts[0]!r} is no file here" if prompts else ""))
    ns.input = files[0] if files else ""
    ns.prompt_setting = prompts[0] if prompts else None


# The CLI's name for each request argument and setting (the schema's names): a refusal is said with the flag to
# change. A setting not here is the --set NAME=VALUE it came as.
CLI_NAMES = {"bars": "--bars", "count": "--count", "preset": "--preset", "seed": "--seed", "bpm": "--bpm",
             "key": "--key", "beats_per_bar": "--metre", "beat_unit": "--metre", "sample_rate": "--sample-rate",
             "stems": "--stems", "loop": "--loop", "job_id": "--job-id", "prompt": "the prompt",
             "input_path": "the input file"}
CLI_EXAMPLES = {"--metre": "6/8", "--loop": "", "--key": "'F# minor'", "--bars": "8", "--count": "4",
                "--preset": "default"}  # the schema's examples are OSC values; these are what a flag takes


def cli_words(message: str, schema: Schema) -> str:
    """A refusal in the CLI's terms, from the schema's one wording (bridge/protocol/schema.py:read_refusal): the flag
    to change and an example of it ("--bars must be a number in 0.25..64, got 0.0; e.g. --bars 8"), not OSC's
    "send e.g. /continuo/generate ..."; any other message without its OSC example."""
    refusal = read_refusal(message)
    if refusal is None:
        return without_osc_example(message)
    name = CLI_NAMES.get(refusal.field)
    spec = schema.setting(refusal.field)
    example = CLI_EXAMPLES.get(name or "", spec.example if spec is not None else None)
    if name is None:
        name = f"--set {refusal.field}"
        fix = f"; e.g. --set {refusal.field}={example}" if example is not None else ""
    else:
        fix = f"; e.g. {name} {example}".rstrip() if name.startswith("--") and example is not None else ""
    return f"{name} must be {refusal.rule}, got {refusal.got}{fix}"


def looks_like_file(word: str) -> bool:
    try:
        return Path(word).suffix.lower() in AUDIO_SUFFIXES or Path(word).expanduser().is_file()
    except (OSError, ValueError):  # a name too long for the filesystem, a NUL: words, not a file
        return False


def build_request(ns: argparse.Namespace) -> JobRequest:
    """The request the parsed command line asks for."""
    op = ns.command
    if hasattr(ns, "words"):
        file_and_prompt(ns)
    job_id = ns.job_id or new_job_id(op)
    settings: list[Any] = []
    for name in ("seed", "stems_setting", "loop", "prompt_setting"):
        value = getattr(ns, name, None)
        if value is not None and value is not False:
            settings += [name.removesuffix("_setting"), int(value) if isinstance(value, bool) else value]
    for item in getattr(ns, "set", None) or []:
        name, _, value = item.partition("=")
        settings += [name, parse_arg(value)]
    if op != "stems":  # stems takes no settings: its flags go in the session context (set_context)
        settings += context_settings(ns)
    if op == "generate":
        return JobRequest("/continuo/generate", job_id, [job_id, ns.preset, ns.prompt, float(ns.bars)], settings)
    if op == "continue":
        return JobRequest("/continuo/continue", job_id, [job_id, ns.preset, ns.input, float(ns.bars)], settings,
                          inputs={2: ns.input})
    if op == "variations":
        inputs = {2: ns.input} if ns.input else {}
        return JobRequest("/continuo/variations", job_id, [job_id, ns.preset, ns.input or "", int(ns.count),
                                                           float(ns.bars)], settings, inputs=inputs)
    if op == "stems":
        return JobRequest("/continuo/stems", job_id, [job_id, ns.input, ns.stems, int(getattr(ns, "midi", False))],
                          inputs={1: ns.input})
    raise ValueError(f"not a job command: {op}")


def context_settings(ns: argparse.Namespace) -> list[Any]:
    """The tempo, metre, key and rate flags given, as job settings; none given, none sent: the daemon then takes an
    input file's own (from its manifest, when Continuo made it) or the session's, and a key is never invented."""
    settings: list[Any] = []
    if ns.bpm is not None:
        settings += ["bpm", float(ns.bpm)]
    if ns.metre is not None:
        settings += ["beats_per_bar", ns.metre[0], "beat_unit", ns.metre[1]]
    if ns.key is not None:
        settings += ["key", ns.key]
    if ns.sample_rate:
        settings += ["sample_rate", int(ns.sample_rate)]
    return settings


class EventPrinter:
    """Shows events: JSON lines on stdout (--json), or the progress bar and messages on stderr."""

    def __init__(self, schema: Schema, *, as_json: bool, out: TextIO | None = None, err: TextIO | None = None):
        self.schema = schema
        self.as_json = as_json
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.progress: JobProgress | None = None

    def event_object(self, address: str, args: list[Any]) -> dict[str, Any]:
        spec = self.schema.events.get(address)
        names = [arg.name for arg in spec.args] if spec else [f"arg{i}" for i in range(len(args))]
        values = [float(f"{v:.7g}") if isinstance(v, float) else v for v in args]  # float32s as they were sent
        return {"event": address.removeprefix("/continuo/"), **dict(zip(names, values))}

    def json_line(self, obj: dict[str, Any]) -> None:
        print(json.dumps(obj), file=self.out, flush=True)

    def event(self, address: str, args: list[Any]) -> None:
        if self.as_json:
            obj = self.event_object(address, args)
            if address == "/continuo/output":
                obj["daw_path"] = daw_path_of(obj)
            self.json_line(obj)
        elif self.progress is not None:
            self.progress.event(address, args)

    def note(self, event: str, message: str, **fields: Any) -> None:
        """A client-side event (copied an input, a warning): a JSON object, or a line on stderr."""
        if self.as_json:
            self.json_line({"event": event, **fields, "message": message})
        else:
            print(f"continuo: {message}", file=self.err, flush=True)

    def start_job(self, job_id: str) -> None:
        if not self.as_json:
            self.progress = JobProgress(job_id, file=self.err)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.close()
            self.progress = None


def daw_path_of(output: dict[str, Any]) -> str:
    """The output's DAW-friendly second name (bridge/audio/files.py:daw_file_name; a stem's .mid too), found beside
    its stable path (the daemon makes it before the event); "" when there is none (another machine, an older
    daemon)."""
    found = daw_path_beside(Path(str(output.get("path", ""))))
    return found.as_posix() if found is not None else ""


def run_job_command(ns: argparse.Namespace, *, client_factory: Callable[..., OscClient] = OscClient) -> int:
    """generate / continue / variations / stems: the whole command; returns the exit status."""
    schema = load_schema()
    printer = EventPrinter(schema, as_json=ns.json)
    try:
        request = build_request(ns)
    except UsageError as exc:
        printer.note("error", str(exc), code="usage")
        return EXIT_USAGE
    with client_factory(ns.host, ns.port, name="continuo-cli", schema=schema) as client:
        welcome = say_hello(client, printer, ns)
        if welcome is None:
            return EXIT_NO_REPLY
        inbox = welcome[4] if len(welcome) > 4 and is_loopback(ns.host) else None
        readable = output_root(client) if inbox and request.inputs else None
        for index, raw in request.inputs.items():
            try:
                staged = stage_input(raw, inbox, readable)
            except InputMissing as exc:
                printer.note("error", f"not_found: {exc}", code="not_found")
                return EXIT_CODES["not_found"]
            except BridgeError as exc:  # the copy into the inbox failed (a full disk, a copy that did not match)
                printer.note("error", f"{exc.code}: {exc.message}", code=exc.code)
                return exit_code_for(exc.code)
            request.args[index] = staged.path.as_posix()
            report_copy(printer, staged)
        if ns.command == "stems" and (ns.bpm is not None or ns.metre is not None or ns.key is not None
                                      or ns.sample_rate):
            status = set_context(client, printer, ns, sample_rate=welcome[2])
            if status is not None:
                return status
        return send_and_wait(client, printer, request, ns)


def output_root(client: OscClient) -> str | None:
    """The daemon's output root (/continuo/storage names it), where its renders lie: a render is sent where it lies,
    so the daemon knows it as its own (its manifest's tempo and key apply), not as a copy in the inbox."""
    client.send("/continuo/status")
    try:
        _address, args = client.wait_for(lambda a, _args: a == "/continuo/storage", 5.0)
    except TimeoutError:
        return None
    return str(args[-1])


def say_hello(client: OscClient, printer: EventPrinter, ns: argparse.Namespace) -> list | None:
    try:
        welcome = client.hello(timeout_s=min(5.0, ns.timeout))
    except TimeoutError as exc:
        printer.note("error", str(exc), code="no_reply")
        return None
    if printer.as_json:
        printer.event("/continuo/welcome", welcome)
    if "SMOKE" in str(welcome[1]).upper():
        printer.note("warning", SMOKE_WARNING, model=welcome[1])
    return welcome


def report_copy(printer: EventPrinter, staged: StagedInput) -> None:
    if staged.copied_from is None:
        return
    printer.note("copied", f"copied {staged.copied_from} into the daemon's inbox as {staged.path} "
                 "(it reads inputs only from its input folders)",
                 source=staged.copied_from.as_posix(), path=staged.path.as_posix())


def set_context(client: OscClient, printer: EventPrinter, ns: argparse.Namespace, *, sample_rate: int) -> int | None:
    """/continuo/context from the flags (stems, which takes no settings); None when set, else the exit status.
    Without --bpm the tempo is the file's own or the one the daemon hears, so --metre, --key and --sample-rate
    alone would fix an invented tempo: refused with what to do."""
    if ns.bpm is None:
        printer.note("error", "stems without --bpm takes the tempo of the file (its own, or the one heard); give "
                     "--bpm too to set --metre, --key or --sample-rate", code="bad_request")
        return EXIT_USAGE
    beats_per_bar, beat_unit = ns.metre or (4, 4)
    client.send("/continuo/context", float(ns.bpm), beats_per_bar, beat_unit, ns.key or "",
                int(ns.sample_rate or sample_rate))
    try:
        address, args = client.wait_for(
            lambda a, args: a == "/continuo/context" or (a == "/continuo/error" and args[:1] == [""]), 5.0)
    except TimeoutError as exc:
        printer.note("error", f"no answer to /continuo/context: {exc}", code="no_reply")
        return EXIT_NO_REPLY
    printer.event(address, args)
    if address == "/continuo/error":
        if not printer.as_json:
            printer.note("error", f"{args[1]}: {args[2]}")
        return exit_code_for(args[1])
    return None


def parse_metre(text: str) -> tuple[int, int]:
    """"4/4" -> (4, 4), "6/8" -> (6, 8); argparse shows a ValueError's message."""
    top, slash, bottom = text.partition("/")
    if not slash or not top.strip().isdigit() or not bottom.strip().isdigit():
        raise argparse.ArgumentTypeError(f"a time signature such as 4/4 or 6/8, got {text!r}")
    return int(top), int(bottom)


def send_and_wait(client: OscClient, printer: EventPrinter, request: JobRequest, ns: argparse.Namespace) -> int:
    job_id = request.job_id
    client.send(request.address, *request.message())
    if ns.no_wait:
        return await_acceptance(client, printer, job_id)
    printer.start_job(job_id)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C cancels, also when inherited off
    try:
        try:
            events = client.wait_job(job_id, ns.timeout, on_event=printer.event)
        except TimeoutError as exc:
            printer.close()
            printer.note("error", f"{exc}; it may still finish: `continuo send /continuo/get {job_id}`",
                         code="no_reply")
            return EXIT_NO_REPLY
        except KeyboardInterrupt:
            return cancel(client, printer, job_id)
    finally:
        signal.signal(signal.SIGINT, previous)
        printer.close()
    client.send("/continuo/ack", job_id)
    return finish(printer, events)


def await_acceptance(client: OscClient, printer: EventPrinter, job_id: str) -> int:
    """--no-wait: the daemon's first answer (queued, or a refusal), then the job id on stdout."""
    try:
        address, args = client.wait_for(
            lambda a, args: a in ("/continuo/queued", "/continuo/error", *TERMINAL_EVENTS) and args[:1] == [job_id],
            5.0)
    except TimeoutError as exc:
        printer.note("error", str(exc), code="no_reply")
        return EXIT_NO_REPLY
    printer.event(address, args)
    if address == "/continuo/error":
        client.send("/continuo/ack", job_id)
        if not printer.as_json:
            printer.note("error", f"{job_id} {args[1]}: {cli_words(args[2], printer.schema)}")
        return exit_code_for(args[1])
    if not printer.as_json:
        print(job_id, file=printer.out, flush=True)
    return EXIT_DONE


def cancel(client: OscClient, printer: EventPrinter, job_id: str) -> int:
    """Ctrl-C: cancel the job, show how it ended (cancelled, or done when it was just finishing), ack, 130."""
    printer.close()
    client.send("/continuo/cancel", job_id)
    try:
        address, args = client.wait_for(lambda a, args: a in TERMINAL_EVENTS and args[:1] == [job_id], CANCEL_WAIT_S)
    except (TimeoutError, KeyboardInterrupt):
        printer.note("cancel", f"asked the daemon to cancel {job_id}; no answer within {CANCEL_WAIT_S:g} s",
                     job_id=job_id)
        return EXIT_CTRL_C
    client.send("/continuo/ack", job_id)
    printer.event(address, args)
    if not printer.as_json:
        printer.note("cancel", f"{job_id} {args[1]}: {args[2]}" if address == "/continuo/error"
                     else f"{job_id} had finished")
    return EXIT_CTRL_C


def finish(printer: EventPrinter, events: list[tuple[str, list]]) -> int:
    address, args = events[-1]
    if address == "/continuo/error":
        if not printer.as_json:
            printer.note("error", f"{args[0]} {args[1]}: {cli_words(args[2], printer.schema)}")
        return exit_code_for(args[1])
    if not printer.as_json:
        outputs = [printer.event_object(a, o) for a, o in events if a == "/continuo/output"]
        for output in outputs:
            print(output["path"], file=printer.out, flush=True)
        printer.note("done", summary_line(outputs, seed=args[2], elapsed_s=args[3]))
    return EXIT_DONE


def summary_line(outputs: list[dict[str, Any]], *, seed: int, elapsed_s: float) -> str:
    """One line after a job: its files by their musical (DAW) names, the folder they lie in, the seed and the time,
    e.g. 'done in 3.1 s, seed 42 (--seed 42 renders it again): dark-techno_8bars_120bpm_Fmin.wav in /renders/j/'."""
    paths = [Path(daw_path_of(o) or o["path"]) for o in outputs]
    folders = {p.parent.as_posix() for p in paths}
    where = f" in {folders.pop()}/" if len(folders) == 1 else ""
    names = ", ".join(p.name if where else p.as_posix() for p in paths) or "no files"
    return f"done in {elapsed_s:.1f} s, seed {seed} (--seed {seed} renders it again): {names}{where}"


def storage_line(storage: dict[str, Any]) -> str:
    """/continuo/storage in words (`continuo status`, `continuo prune`)."""
    auto = storage["auto_trash_days"]
    return (f"renders {_size(storage['renders_mb'])} in {storage['jobs']} job folder(s) under "
            f"{storage['output_root']} (kept until you prune them); trash {_size(storage['trash_mb'])}; "
            f"{_size(storage['free_mb'])} free; auto-trash "
            + (f"on: jobs unfetched for {auto:g} days move to the trash" if auto else "off"))


def _size(mb: float) -> str:
    return f"{mb / 1000:.1f} GB" if mb >= 1000 else f"{mb:.1f} MB"


def run_status(ns: argparse.Namespace, *, client_factory: Callable[..., OscClient] = OscClient) -> int:
    """`continuo status`: the daemon's state and limits, where its page and renders are, the session's tempo, metre
    and key (a new client's: what a job without its own gets), and the presets."""
    schema = load_schema()
    printer = EventPrinter(schema, as_json=ns.json)
    with client_factory(ns.host, ns.port, name="continuo-cli", schema=schema) as client:
        welcome = say_hello(client, printer, ns)
        if welcome is None:
            return EXIT_NO_REPLY
        client.send("/continuo/presets")
        client.send("/continuo/status")
        try:
            events = [client.wait_for(lambda a, _args: a == address, 5.0)
                      for address in ("/continuo/status", "/continuo/limits", "/continuo/storage")]
        except TimeoutError as exc:
            printer.note("error", str(exc), code="no_reply")
            return EXIT_NO_REPLY
        try:
            events.append(client.wait_for(lambda a, _args: a == "/continuo/session", 2.0))
        except TimeoutError:
            pass  # a daemon older than protocol 1.9 does not say
        presets = drain(client, "/continuo/presets")  # sent before the status: arrived before it
    if ns.json:
        for address, args in [*presets, *events]:
            printer.event(address, args)
        return EXIT_DONE
    status, limits, storage = (printer.event_object(*event) for event in events[:3])
    session = printer.event_object(*events[3]) if len(events) > 3 else None
    lines = [f"daemon    continuo {welcome[0]} at {ns.host}:{ns.port}, device {welcome[3]}",
             f"page      {session_page(session)}",
             f"state     {status['state']}, {status['queue_length']} job(s) queued or running",
             f"model     {status['model']}",
             f"session   {session_text(session)}",
             f"memory    {status['mem_used_gb']:.2f} of {status['mem_total_gb']:.1f} GB",
             f"renders   {storage['output_root']}",
             f"inbox     {welcome[4] if len(welcome) > 4 else '(not named by this daemon)'}",
             "presets   " + (", ".join(str(args[0]) for _address, args in presets) or "(none)"),
             "limits    " + ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}"
                                      for k, v in limits.items() if k != "event"),
             f"space     {storage_line(storage)}"]
    print("\n".join(lines), file=printer.out, flush=True)
    return EXIT_DONE


def drain(client: OscClient, address: str) -> list[tuple[str, list]]:
    """Every queued event of ``address``, in order."""
    found = []
    while True:
        try:
            found.append(client.wait_for(lambda a, _args: a == address, 0.0))
        except TimeoutError:
            return found


def session_page(session: dict[str, Any] | None) -> str:
    if session is None:
        return "(this daemon does not say; its ready line names it)"
    return session["page_url"] or "off (HTTP is off: http_port -1)"


def session_text(session: dict[str, Any] | None) -> str:
    """'120 BPM, 4/4, no key, 48 kHz (what a job without its own tempo and key gets; a file Continuo made keeps
    its own)'."""
    if session is None:
        return "(this daemon does not say)"
    key = session["key"] or "no key"
    return (f"{session['bpm']:g} BPM, {session['beats_per_bar']}/{session['beat_unit']}, {key}, "
            f"{session['sample_rate'] / 1000:g} kHz (what a job without its own tempo and key gets; a file "
            "Continuo made keeps its own)")
