"""The presets shipped with Continuo: one TOML file each (layout in ``bridge.audio.presets``)."""

from pathlib import Path

PRESETS_DIR = Path(__file__).parent
