"""Progress of one render: decode steps become throttled on_progress(fraction, stage) calls."""

from __future__ import annotations

import math
import time

from inference.api import ProgressCallback

PROGRESS_INTERVAL_S = 0.25  # at most ~4 progress calls per second


class ProgressReporter:
    """Turns decode steps into throttled on_progress(fraction, stage) calls."""

    def __init__(self, on_progress: ProgressCallback | None, total_steps: int):
        self.on_progress = on_progress
        self.total_steps = total_steps
        self.last_report = -math.inf

    def stage(self, stage: str, fraction: float) -> None:
        if self.on_progress is not None:
            self.on_progress(fraction, stage)

    def step(self, steps_done: int) -> None:
        now = time.monotonic()
        if steps_done >= self.total_steps:
            self.stage("generating", 1.0)
            self.stage("decoding", 1.0)
        elif now - self.last_report >= PROGRESS_INTERVAL_S:
            self.last_report = now
            self.stage("generating", steps_done / self.total_steps)
