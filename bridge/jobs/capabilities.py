"""What a request needs of the loaded model, checked at admission against what the model declares.

A request for something the model cannot do is refused before anything is journalled,
with a bad_request that names the model and the missing capability.
"""

from __future__ import annotations

from typing import Any

from bridge.errors import BadRequest
from bridge.jobs.plan import RenderPlan


def check_capabilities(plan: RenderPlan, info: Any, job_id: str) -> None:
    """Refuse a plan that needs a capability the model behind ``info`` lacks."""
    if plan.melody_path is not None and not getattr(info, "takes_melody", False):
        raise BadRequest(f"melody needs a MusicGen-melody model; this daemon serves {info.name} "
                         "(serve --model facebook/musicgen-melody, or drop the setting)", job_id=job_id)
