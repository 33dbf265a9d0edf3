"""The ACE-Step family: ACE-Step 1.5 through diffusers' own AceStepPipeline, behind the Engine Protocol.

family.py (the entry inference/loading.py's table reads: detect, problems, load), engine.py (AceStepEngine: a
request to the pipeline's arguments, steps with progress and cancel, LoRA per request), phases.py (three memory
phases), dit_linears.py (the DiT's linears as measured fastest on the CPU) and tiny.py (the tiny random pipeline
in diffusers' format).
"""

from inference.acestep.family import NAME, REAL_MODEL, detect, load, problems
from inference.acestep.tiny import TINY_FILES
from inference.acestep.tiny import build_tiny_acestep as build_tiny

__all__ = ["NAME", "REAL_MODEL", "TINY_FILES", "build_tiny", "detect", "load", "problems"]
