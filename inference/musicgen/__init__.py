"""The MusicGen family: our decoder and engine over a Hugging Face MusicGen checkpoint, and transformers' reference.

family.py (the family's entry, a row of inference/loading.py:FAMILIES: detect, problems, load, its tiny build),
checkpoint.py (a checkpoint's config), model.py (the decoder), kv_cache.py, decode.py (pattern, sampling, the
compiled step), batching.py (continuous batching on the compute thread), engine.py (MusicGenEngine),
streaming.py, reference.py (transformers' generate) and tiny.py (the tiny random checkpoint: the smoke model).
"""
