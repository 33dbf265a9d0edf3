"""Continuo's models: the engine interface (api.py), our MusicGen engine, the transformers reference, stems."""
