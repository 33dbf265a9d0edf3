"""The audio wing: musical context, presets, effects, render, loudness, files (atomic writes, and the inbox's marked
copies that clients, transports and retention share) and stems glue; listening (analysis.py: tempo, downbeats, metre,
key, by DSP), audio to MIDI (transcription.py per stem, drums.py by onset and band, midi_files.py) and a folder of
recordings made into training clips for a style adapter (training_clips.py)."""
