"""The machine a benchmark ran on, recorded beside every figure."""

from __future__ import annotations

import os
import platform


def machine() -> str:
    model = ""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "")
    except OSError:  # no /proc (macOS, Windows): what the platform module knows
        model = platform.processor()
    return f"{platform.machine()} {os.cpu_count()} cores {model}".strip()


def load_average() -> float | None:
    """The 1-minute load average, to 2 decimals (None on Windows, which keeps none)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None
