"""`continuo send`: one OSC message to the daemon, replies printed one per line.

For a job request the command waits for the job's terminal event and shows a
progress bar on a terminal; exit status 0 on done, 1 on an error event, 3 when
no reply came in time.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from bridge.clients.osc import OscClient

JOB_ADDRESSES = {"/continuo/generate", "/continuo/continue", "/continuo/variations", "/continuo/stems"}


def parse_arg(text: str) -> Any:
    """8 -> int, 8.0 / 1e3 -> float, s:8 -> "8", anything else -> str."""
    if text.startswith("s:"):
        return text[2:]
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def format_event(address: str, args: list[Any]) -> str:
    return " ".join([address, *(repr(a) if isinstance(a, str) else f"{a:g}" if isinstance(a, float) else str(a)
                                for a in args)])


def run_send(args: argparse.Namespace) -> int:
    values = [parse_arg(a) for a in args.args]
    with make_client(args) as client:
        try:
            client.hello(timeout_s=min(5.0, args.timeout))
        except TimeoutError as exc:
            print(f"continuo send: {exc}", file=sys.stderr)
            return 3
        client.send(args.address, *values)
        if args.no_wait:
            return 0
        if args.address in JOB_ADDRESSES and values and isinstance(values[0], str):
            return wait_job(client, values[0], args.timeout)
        return print_replies(client, timeout_s=1.0)


def make_client(args: argparse.Namespace):
    """OSC over UDP (default) or TCP, or ZeroMQ; all with the same send / wait_job / wait_for."""
    transport = getattr(args, "transport", "udp")
    if transport == "tcp":
        from bridge.clients.osc import OscTcpClient

        return OscTcpClient(args.host, args.port)
    if transport == "zmq":
        from bridge.clients.zmq import ZmqOscClient

        return ZmqOscClient(f"tcp://{args.host}:{args.zmq_port}")
    return OscClient(args.host, args.port)


def wait_job(client: OscClient, job_id: str, timeout_s: float) -> int:
    bar = None
    if sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=100, unit="%", desc=job_id, file=sys.stderr)

    def show(address: str, event_args: list[Any]) -> None:
        if address == "/continuo/progress" and bar is not None:
            bar.set_postfix_str(str(event_args[2]))
            bar.update(max(0, round(float(event_args[1]) * 100) - bar.n))
            return
        print(format_event(address, event_args), flush=True)

    try:
        events = client.wait_job(job_id, timeout_s, on_event=show, ack=True)
    except TimeoutError as exc:
        print(f"continuo send: {exc}", file=sys.stderr)
        return 3
    finally:
        if bar is not None:
            bar.close()
    return 0 if events and events[-1][0] == "/continuo/done" else 1


def print_replies(client: OscClient, *, timeout_s: float) -> int:
    got_error = False
    while True:
        try:
            address, event_args = client.wait_for(lambda address, _args: True, timeout_s)
        except TimeoutError:
            return 1 if got_error else 0
        got_error |= address == "/continuo/error"
        print(format_event(address, event_args), flush=True)
