"""The live progress bar of a job on a terminal: queue position, then progress and stage, then each output.

A tqdm bar on stderr when stderr is a terminal; elsewhere (a pipe, a log file, a DAW running the command) one
line per change of state instead of a redrawn bar: queued, each new stage, each output, the end.
`TrainingBar` is a style-training job's (epoch, step, loss, ETA), fed by the local run's progress or the daemon's
/continuo/training events; elsewhere one line per tenth of the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TextIO


class BarLines:
    """A tqdm bar (made by the subclass) on a terminal, else plain lines: write and close for both."""

    def __init__(self, *, file: TextIO) -> None:
        self.file = file
        self.bar: Any = None

    def write(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=self.file)
        else:
            print(line, file=self.file, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class JobProgress(BarLines):
    def __init__(self, job_id: str, *, file: TextIO) -> None:
        super().__init__(file=file)
        self.job_id = job_id
        self.stage = ""
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


@dataclass(frozen=True)
class TrainingStep:
    """One step as /continuo/training carries it (the fields of inference/musicgen/training.py:TrainingProgress)."""

    epoch: int
    epochs: int
    step: int
    steps: int
    loss: float
    eta_s: float


class TrainingBar(BarLines):
    """A tqdm bar when the file is a terminal, else one line per tenth of the run (and the queue position)."""

    def __init__(self, *, file: TextIO) -> None:
        super().__init__(file=file)
        self.shown = -1

    def event(self, address: str, args: list[Any]) -> None:
        """A daemon's event of the training job."""
        from bridge.jobs.style_training import format_duration

        if address == "/continuo/training":
            self.update(TrainingStep(*args[1:7]))
        elif address == "/continuo/queued":
            wait = f", about {format_duration(args[2])} behind the renders" if args[2] >= 0 else ""
            self.write(f"queued at position {args[1]}{wait}: renders go first, training waits between its steps")

    def update(self, progress) -> None:
        from bridge.jobs.style_training import format_duration  # (torch comes with it: not for every CLI command)

        text = (f"epoch {progress.epoch}/{progress.epochs} step {progress.step}/{progress.steps} "
                f"loss {progress.loss:.4f} ETA {format_duration(progress.eta_s)}")
        if self.file.isatty():
            if self.bar is None:
                from tqdm import tqdm

                self.bar = tqdm(total=progress.steps, unit="step", desc="training", file=self.file)
            self.bar.n = progress.step
            self.bar.set_postfix_str(text, refresh=True)
            return
        tenth = progress.step * 10 // progress.steps
        if tenth != self.shown:
            self.shown = tenth
            print(text, file=self.file, flush=True)

