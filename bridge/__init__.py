"""Continuo's daemon, in wings: protocol, audio, jobs, cluster, transports, clients, tools; daemon, cli, midi on top."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("continuo")
except PackageNotFoundError:  # running from a checkout that was not installed
    __version__ = "0.0.0+checkout"
