"""The audio wing: musical context, presets, effects, render, loudness, files and stems glue."""
