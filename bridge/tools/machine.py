"""The machine a benchmark ran on, recorded beside every figure."""

from __future__ import annotations

import os
import platform


def machine() -> str:
    model = ""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "")
    except OSError:
        pass
    return f"{platform.machine()} {os.cpu_count()} cores {model}".strip()
