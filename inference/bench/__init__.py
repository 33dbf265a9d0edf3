"""The benchmarks wing: what `continuo bench` measures of the models, on random weights of the real shapes.

musicgen.py (our engine against transformers' generate), acestep.py (our AceStepEngine against diffusers' own
pipeline call, per phase), throughput.py (concurrent jobs, batched against one at a time), training.py (LoRA
training steps/s and memory, ours against a plain peft loop) and random_weights.py (fast random fills for multi-GB
shapes).
"""
