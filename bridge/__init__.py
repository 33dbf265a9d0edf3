"""Continuo's daemon: transports, jobs, journal, musical context, rendering and MIDI."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("continuo")
except PackageNotFoundError:  # running from a checkout that was not installed
    __version__ = "0.0.0+checkout"
