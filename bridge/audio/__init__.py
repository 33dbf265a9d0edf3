"""The audio wing: musical context, presets, effects, render, loudness, files (atomic writes, and the inbox's marked
copies that clients, transports and retention share) and stems glue."""
