"""`continuo train-style DIR --name NAME` through the running daemon: the job goes into its queue at batch priority, as
/continuo/train_style, and this command shows it to the end.

The daemon is the one the settings name (osc_host / osc_port, or --host / --port, from the same config file and
environment `continuo serve` reads; a daemon bound to every interface is asked on 127.0.0.1). When it answers the
hello, the folder is sent where it lies if the daemon may read it there, else copied into its inbox first
(bridge/clients/inbox.py:stage_folder, said on stderr); then the request, and a progress bar of its
/continuo/training events (epoch, step, loss, ETA; the queue position first: renders go first). Ctrl-C cancels the
job (/continuo/cancel) and exits 130; the daemon keeps the last checkpoint, and the same command resumes from it (a
new job with the same name, folder and options). The exit status is `continuo generate`'s
(bridge/clients/commands.py:EXIT_CODES). The daemon's job takes the text, epochs and learning rate; the other
options of local training (clip length, rank, batch size, seed, checkpoint interval, base weights) are refused here
with the advice to add --local. The folder's report (files used and skipped, and why) goes to the daemon's log.

`run_style_job` returns None when no daemon answers: the caller trains in its own process and says so.
"""

from __future__ import annotations

import argparse
import signal
from collections.abc import Callable
from typing import TextIO

from bridge.clients.commands import (
    EXIT_CODES,
    EXIT_DONE,
    EXIT_NO_REPLY,
    EXIT_USAGE,
    EventPrinter,
    cancel,
    cli_words,
    exit_code_for,
    new_job_id,
    output_root,
    report_copy,
)
from bridge.clients.inbox import InputMissing, stage_folder
from bridge.clients.osc import OscClient
from bridge.clients.progress import TrainingBar
from bridge.errors import BridgeError
from bridge.protocol.schema import load_schema
from bridge.settings import Settings, is_loopback

HELLO_S = 2.0  # how long a daemon has to answer before the command trains in its own process
LOCAL_ONLY = {"clip_s": ("--clip-s", 0.0), "rank": ("--rank", 8), "batch_size": ("--batch-size", 2),
              "training_seed": ("--training-seed", 0), "checkpoint_every": ("--checkpoint-every", 50),
              "base_weights": ("--base-weights", "auto")}


def daemon_address(settings: Settings) -> tuple[str, int]:
    """Where the settings' daemon listens for OSC/UDP (a wildcard bind is asked on loopback)."""
    host = settings.osc_host if settings.osc_host not in ("", "0.0.0.0", "::") else "127.0.0.1"
    return host, settings.osc_port


def local_only_flags(ns: argparse.Namespace) -> list[str]:
    """The flags given that only local training takes."""
    return [flag for name, (flag, default) in LOCAL_ONLY.items() if getattr(ns, name) != default]


def run_style_job(ns: argparse.Namespace, settings: Settings, *, client_factory: Callable[..., OscClient] = OscClient,
                  err: TextIO | None = None, out: TextIO | None = None) -> int | None:
    """The training as a job of the daemon the settings name: its exit status, or None when no daemon answers."""
    host, port = daemon_address(settings)
    if port <= 0:  # a daemon on "a free port" cannot be found from here
        return None
    schema = load_schema()
    printer = EventPrinter(schema, as_json=False, out=out, err=err)
    with client_factory(host, port, name="continuo-cli", schema=schema) as client:
        try:
            welcome = client.hello(timeout_s=HELLO_S)
        except TimeoutError:
            return None
        flags = local_only_flags(ns)
        if flags:
            printer.note("error", f"{', '.join(flags)}: the daemon's training job does not take "
                         f"{'this option' if len(flags) == 1 else 'these options'} (only --text, --epochs and "
                         "--learning-rate); add --local to train in this process with them")
            return EXIT_USAGE
        inbox = welcome[4] if len(welcome) > 4 and is_loopback(host) else None
        try:
            staged = stage_folder(ns.folder, inbox, output_root(client) if inbox else None)
        except InputMissing as exc:
            printer.note("error", f"not_found: {exc}")
            return EXIT_CODES["not_found"]
        except BridgeError as exc:
            printer.note("error", f"{exc.code}: {exc.message}")
            return exit_code_for(exc.code)
        report_copy(printer, staged)
        job_id = new_job_id("train")
        client.send("/continuo/train_style", job_id, staged.path.as_posix(), ns.name, ns.text, int(ns.epochs),
                    float(ns.learning_rate))
        printer.note("queued", f"{job_id}: training {ns.name!r} in the daemon at {host}:{port} (Ctrl-C cancels; "
                     "the same command resumes from its last checkpoint)")
        bar = TrainingBar(file=printer.err)
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            try:
                events = client.wait_job(job_id, ns.timeout, on_event=bar.event)
            except TimeoutError as exc:
                bar.close()
                printer.note("error", f"{exc}; it goes on in the daemon: `continuo send /continuo/get {job_id}`")
                return EXIT_NO_REPLY
            except KeyboardInterrupt:
                bar.close()
                return cancel(client, printer, job_id)
        finally:
            signal.signal(signal.SIGINT, previous)
            bar.close()
        client.send("/continuo/ack", job_id)
    address, args = events[-1]
    if address == "/continuo/error":
        printer.note("error", f"{job_id} {args[1]}: {cli_words(args[2], schema)}")
        return exit_code_for(args[1])
    print(f"adapter {ns.name} written to the daemon's lora_dir in {args[3]:.0f} s; render with lora {ns.name}",
          file=printer.out, flush=True)
    return EXIT_DONE
