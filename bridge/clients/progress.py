"""The live progress bar of a job on a terminal: queue position, then progress and stage, then each output.

A tqdm bar on stderr when stderr is a terminal; elsewhere (a pipe, a log file, a DAW running the command) one
line per change of state instead of a redrawn bar: queued, each new stage, each output, the end.
"""

from __future__ import annotations

from typing import Any, TextIO


class JobProgress:
    def __init__(self, job_id: str, *, file: TextIO) -> None:
        self.job_id = job_id
        self.file = file
        self.stage = ""
        self.bar: Any = None
        if file.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=100, unit="%", desc=job_id, file=file, bar_format=(
                "{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining} {postfix}"))

    def event(self, address: str, args: list[Any]) -> None:
        if address == "/continuo/queued":
            position, eta_s = args[1], args[2]
            wait = f", about {eta_s:.0f} s" if eta_s >= 0 else ""
            self.show_state(f"queued at position {position}{wait}")
        elif address == "/continuo/progress":
            fraction, stage = float(args[1]), str(args[2])
            if self.bar is not None:
                self.bar.update(max(0, round(fraction * 100) - self.bar.n))
            if stage != self.stage:
                self.stage = stage
                self.show_state(stage)
        elif address == "/continuo/output":
            self.write(f"{args[1]}: {args[2]} ({args[6]:g} bars, {args[7]:.1f} LUFS)")
        elif address == "/continuo/partial":
            self.show_state(f"preview chunk {args[1]}")
        elif address == "/continuo/analysis":  # what the daemon heard in the input, for a request without a tempo
            key = f", {args[9]}" if args[9] else ""
            self.write(f"{self.job_id}: heard {args[2]:.2f} BPM (confidence {args[3]:.2f}), {args[4]}/{args[5]}{key} "
                       f"in {args[1]}: rendering at that tempo (give --bpm to set it)")

    def show_state(self, text: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(text)
        else:
            self.write(f"{self.job_id}: {text}")

    def write(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=self.file)
        else:
            print(line, file=self.file, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
