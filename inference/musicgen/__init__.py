"""The MusicGen family: our decoder and engine over a Hugging Face MusicGen checkpoint, and transformers' reference.

family.py (the entry inference/loading.py's table reads: detect, problems, load), checkpoint.py (a checkpoint's
config), model.py (the decoder), kv_cache.py, decode.py (pattern, sampling, the compiled step), batching.py
(continuous batching on the compute thread), engine.py (MusicGenEngine), streaming.py, reference.py
(transformers' generate) and tiny.py (the tiny random checkpoint: the smoke model).
"""

from inference.musicgen.family import NAME, REAL_MODEL, detect, load, problems
from inference.musicgen.tiny import TINY_FILES
from inference.musicgen.tiny import build_tiny_musicgen as build_tiny

__all__ = ["NAME", "REAL_MODEL", "TINY_FILES", "build_tiny", "detect", "load", "problems"]
