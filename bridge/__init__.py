"""Continuo's daemon, in wings: protocol, audio, transports, jobs, cluster, clients, tools; sessions, midi, daemon
and cli on top."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("continuo")
except PackageNotFoundError:  # running from a checkout that was not installed
    __version__ = "0.0.0+checkout"
