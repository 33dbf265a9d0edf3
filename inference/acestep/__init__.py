"""The ACE-Step family: ACE-Step 1.5 through diffusers' own AceStepPipeline, behind the Engine Protocol.

family.py (the family's entry, a row of inference/loading.py:FAMILIES: detect, problems, load, its tiny build),
engine.py (AceStepEngine: a request to the pipeline's arguments, steps with progress and cancel, LoRA per
request), phases.py (three memory phases), dit_linears.py (the DiT's linears as measured fastest on the CPU),
tiny.py (the tiny random pipeline in diffusers' format) and training.py (a LoRA trained with peft through diffusers,
saved in the format the lora path loads).
"""
