"""The machine-readable OSC address space (continuo.json); bridge.protocol.schema reads it."""

from pathlib import Path

SCHEMA_PATH = Path(__file__).with_name("continuo.json")
