"""The MusicGen family: our decoder and engine over a Hugging Face MusicGen checkpoint, and transformers' reference.

family.py (the family's entry, a row of inference/loading.py:FAMILIES: detect, problems, load, its tiny build),
checkpoint.py (a checkpoint's config), model.py (the decoder), kv_cache.py, decode.py (pattern, sampling, the
compiled step), batching.py (continuous batching on the compute thread), engine.py (MusicGenEngine),
streaming.py, reference.py (transformers' generate), tiny.py (the tiny random checkpoint: the smoke model), lora.py
(our LoRA adapters: the file format, a side path per request, merged at load) and training.py (a musician's style
as a LoRA: peft on the attention projections).
"""
