"""`continuo prune` and `continuo trash`: freeing the space renders take, from the command line, over OSC/UDP.

The daemon never removes a render by itself; these commands ask it to (bridge/jobs/trash.py does the work):

- ``continuo prune --older-than 30d | --keep 200 | --max-size 20G [--keep-fetched 7d]`` lists the finished jobs
  those rules select and the space they take; nothing moves without ``--yes``, which moves them to the trash
  inside the output root (a DAW project that uses them misses them until they are restored).
- ``continuo trash list`` shows what the trash holds; ``continuo trash restore JOB|all`` puts jobs back where
  they were; ``continuo trash empty --yes`` deletes them for good (without ``--yes``: what it would delete).

Each prints one line per job (at most 200; the total counts all), the result in words and the space now used
and free; ``--json`` prints the events as JSON lines instead. The exit status is the job commands' (EXIT_CODES).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable

from bridge.clients.commands import EXIT_DONE, EXIT_NO_REPLY, EventPrinter, exit_code_for, say_hello, storage_line
from bridge.clients.osc import OscClient
from bridge.protocol.schema import load_schema

ANSWER_S = 60.0  # a prune of many thousand jobs walks every folder: give it time
AGE_UNITS = {"": 1.0, "d": 1.0, "h": 1 / 24, "w": 7.0, "m": 30.0, "y": 365.0}
SIZE_UNITS = {"": 1.0, "g": 1.0, "m": 1e-3, "k": 1e-6, "t": 1e3}
ANSWERS = ("/continuo/trash/job", "/continuo/trash/result", "/continuo/error")


def parse_age_days(text: str) -> float:
    """"30d" -> 30, "12h" -> 0.5, "2w" -> 14, "6m" -> 180 (months of 30 days), "45" -> 45 (days)."""
    return _parse(text, AGE_UNITS, "an age such as 30d, 12h, 2w or 6m (a bare number is days)")


def parse_size_gb(text: str) -> float:
    """"20G" -> 20, "500M" -> 0.5, "1T" -> 1000, "20" -> 20 (GB; decimal units, as disks are sold)."""
    return _parse(text.lower().removesuffix("b"), SIZE_UNITS, "a size such as 20G, 500M or 1T (a bare number is GB)")


def _parse(text: str, units: dict[str, float], what: str) -> float:
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]?)\s*", text)
    unit = found.group(2).lower() if found else None
    if found is None or unit not in units:
        raise argparse.ArgumentTypeError(f"{what}, got {text!r}")
    return float(found.group(1)) * units[unit]


def add_space_commands(commands: argparse._SubParsersAction, add_connection_flags: Callable) -> None:
    """`continuo prune` and `continuo trash` on the parser (bridge/cli.py)."""
    prune = commands.add_parser(
        "prune", help="free space: move old renders to the trash (a dry run without --yes)",
        description="Select finished jobs and move their folders to the trash inside the output root; `continuo "
                    "trash` restores or empties it. Nothing moves without --yes. A job any rule selects is moved; "
                    "a job a client fetched within --keep-fetched is never moved. Renders are never removed "
                    "otherwise.")
    add_connection_flags(prune)
    prune.add_argument("--older-than", type=parse_age_days, default=0.0, metavar="AGE",
                       help="jobs finished more than AGE ago, e.g. 30d, 12h, 2w, 6m (a bare number is days)")
    prune.add_argument("--keep", type=int, default=0, metavar="N", help="all but the newest N jobs")
    prune.add_argument("--max-size", type=parse_size_gb, default=0.0, metavar="SIZE",
                       help="the oldest jobs until the renders fit in SIZE, e.g. 20G or 500M (a bare number is GB)")
    prune.add_argument("--keep-fetched", type=parse_age_days, default=7.0, metavar="AGE",
                       help="never move a job fetched (get, download) within AGE (default 7d; 0: no such guard)")
    prune.add_argument("--yes", action="store_true", help="move them (without it: only list them)")

    trash = commands.add_parser("trash", help="what `continuo prune` moved: list, restore or empty the trash")
    add_connection_flags(trash)
    trash.add_argument("action", choices=["list", "restore", "empty"],
                       help="list: what the trash holds; restore JOB|all: put jobs back where they were; "
                            "empty: delete them for good (a dry run without --yes)")
    trash.add_argument("job", nargs="?", default="", help="restore: the job id, or all")
    trash.add_argument("--yes", action="store_true", help="empty: delete (without it: only list)")


def run_prune(ns: argparse.Namespace, *, client_factory: Callable[..., OscClient] = OscClient) -> int:
    args = [int(ns.yes), float(ns.older_than), int(ns.keep), float(ns.max_size), float(ns.keep_fetched)]
    return exchange(ns, "/continuo/prune", args, client_factory)


def run_trash(ns: argparse.Namespace, *, client_factory: Callable[..., OscClient] = OscClient) -> int:
    if ns.action == "restore":
        if not ns.job:
            print("continuo: name the job to restore (continuo trash restore JOB), or all", flush=True)
            return 2
        return exchange(ns, "/continuo/trash/restore", ["*" if ns.job == "all" else ns.job], client_factory)
    return exchange(ns, "/continuo/trash/empty", [int(ns.action == "empty" and ns.yes)], client_factory)


def exchange(ns: argparse.Namespace, address: str, args: list, client_factory: Callable[..., OscClient]) -> int:
    """Send one request; print its /continuo/trash/job lines, its result and the space; the exit status."""
    schema = load_schema()
    printer = EventPrinter(schema, as_json=ns.json)
    with client_factory(ns.host, ns.port, name="continuo-cli", schema=schema) as client:
        if say_hello(client, printer, ns) is None:
            return EXIT_NO_REPLY
        client.send(address, *args)
        try:
            while True:
                event, values = client.wait_for(lambda a, _args: a in ANSWERS, min(ANSWER_S, ns.timeout))
                if event == "/continuo/error":
                    printer.event(event, values)
                    if not printer.as_json:
                        printer.note("error", f"{values[1]}: {values[2]}")
                    return exit_code_for(values[1])
                show(printer, event, values)
                if event == "/continuo/trash/result":
                    break
            show(printer, *client.wait_for(lambda a, _args: a == "/continuo/storage", 5.0))
        except TimeoutError as exc:
            printer.note("error", f"no answer from the daemon: {exc}", code="no_reply")
            return EXIT_NO_REPLY
    return EXIT_DONE


def show(printer: EventPrinter, address: str, values: list) -> None:
    if printer.as_json:
        printer.event(address, values)
        return
    event = printer.event_object(address, values)
    if address == "/continuo/trash/job":
        line = f"  {event['job_id']:<28} {event['size_mb']:>9.1f} MB {event['age_days']:>7.1f} days  {event['path']}"
    elif address == "/continuo/trash/result":
        line = event["message"]
    else:
        line = storage_line(event)
    print(line, file=printer.out, flush=True)
