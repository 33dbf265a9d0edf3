"""The three memory phases of an ACE-Step render, as the SongGeneration 16 GB recipe ran them: text and lyric
encoding, DiT sampling, VAE decode. With a GPU memory budget that all components would not fit in, the
components idle in a phase wait on the CPU and move to the GPU for their phase.

`plan_placement` is the policy: given each component's size, the budget and the device, which components stay
on the device throughout (`PhasePlacement.resident`: the largest that still leave room for every phase's
working set, the DiT first) and which move. `PhaseTracker` runs it: `enter(phase)` moves what the phase needs in
and what it does not out (through a mover, `module.to` by default; tests give a fake one) and tells its
listeners the phase's name, also where nothing moves (the CPU, or no budget), so benchmarks can measure memory
per phase. AceStepEngine enters "encode" before the pipeline call, "sample" at the DiT's first forward (a
forward pre-hook: the pipeline's __call__ runs encoding and sampling itself), "decode" in its own VAE decode, and
"idle" after it.

A phase that alone does not fit the budget (less ACTIVATION_SHARE for activations) is a load error naming the
budget; on the CPU the budget changes nothing. diffusers' enable_model_cpu_offload was the reference: it moves
every model for every call regardless of room, chains offloads in a fixed sequence that leaves the VAE on the
GPU through sampling after an edit's encode, and refuses a CPU device, so its policy could not be tested here.
Ours are `module.to` at the three boundaries, and the CPU twin test runs the real pipeline with a fake mover whose
ledger each submodule's pre-hook checks (tests/inference/acestep/test_phases.py). Moves go from pageable memory
(pinned buffers would be the next step if the transfer shows up; not measured: no GPU here).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch

from inference.errors import ModelLoadError

log = logging.getLogger("continuo.inference")

PHASES = ("encode", "sample", "decode")
IDLE = "idle"  # after a render: listeners hear it, nothing moves (the decode phase's placement stays)
# What each phase runs. The VAE encodes given audio (edits) in the encode phase and decodes in the decode phase.
WORKING_SETS = {
    "encode": frozenset({"text_encoder", "condition_encoder", "audio_tokenizer", "audio_token_detokenizer", "vae"}),
    "sample": frozenset({"transformer"}),
    "decode": frozenset({"vae"}),
}
ACTIVATION_SHARE = 0.15  # of the budget kept free for activations, the latents and the allocator's slack
GB = 1e9

Mover = Callable[[torch.nn.Module, torch.device], None]


@dataclass(frozen=True)
class PhasePlacement:
    """Where each component lives in each phase: `resident` ones always on `device`, the rest of a phase's
    working set on `device` for that phase only, everything else on the CPU."""

    device: torch.device
    resident: frozenset[str]
    components: frozenset[str]

    def on_device(self, phase: str) -> frozenset[str]:
        return self.resident | (WORKING_SETS[phase] & self.components)


def component_bytes(modules: Mapping[str, torch.nn.Module], dtype_bytes: int | None = None) -> dict[str, int]:
    """Bytes of each component's parameters and buffers (at dtype_bytes per element when given: their size once
    moved in that dtype)."""
    return {name: sum(t.numel() * (dtype_bytes or t.element_size())
                      for t in (*module.parameters(), *module.buffers()))
            for name, module in modules.items()}


def plan_placement(sizes: Mapping[str, int], budget_bytes: int, device: torch.device) -> PhasePlacement | None:
    """None when nothing should move: on the CPU, without a budget, or when every component fits in it. Else
    the placement: every phase's working set fits in the budget (less ACTIVATION_SHARE), with the largest
    components that still leave room for each phase resident. ModelLoadError when one phase alone does not fit."""
    if device.type == "cpu" or budget_bytes <= 0:
        return None
    usable = budget_bytes * (1.0 - ACTIVATION_SHARE)
    names = frozenset(sizes)
    if sum(sizes.values()) <= usable:
        return None

    def needs(resident: frozenset[str], phase: str) -> int:
        return sum(sizes[name] for name in resident | (WORKING_SETS[phase] & names))

    for phase in PHASES:
        if needs(frozenset(), phase) > usable:
            raise ModelLoadError(
                f"the {phase} phase needs {needs(frozenset(), phase) / GB:.2f} GB on {device}, more than "
                f"memory_budget_gb allows ({budget_bytes / GB:.2f} GB, {ACTIVATION_SHARE:.0%} kept for activations): "
                "raise memory_budget_gb or serve a smaller model")
    resident: frozenset[str] = frozenset()
    for name in sorted(names, key=lambda n: (-sizes[n], n)):  # largest first, ties by name
        if all(needs(resident | {name}, phase) <= usable for phase in PHASES):
            resident |= {name}
    return PhasePlacement(device=device, resident=resident, components=names)


def move_module(module: torch.nn.Module, device: torch.device) -> None:
    module.to(device)


@dataclass
class PhaseTracker:
    """The current phase of a render; entering one moves components per the placement (None: none move) and
    calls each listener with the phase's name."""

    modules: Mapping[str, torch.nn.Module]
    placement: PhasePlacement | None = None
    mover: Mover = move_module
    listeners: list[Callable[[str], None]] = field(default_factory=list)
    current: str = IDLE

    def subscribe(self, listener: Callable[[str], None]) -> None:
        """listener(name) at the start of every phase: "encode", "sample", "decode", then "idle"."""
        self.listeners.append(listener)

    def enter(self, phase: str) -> None:
        if phase == self.current:
            return
        if self.placement is not None and phase in PHASES:
            wanted = self.placement.on_device(phase)
            cpu = torch.device("cpu")
            for name in sorted(set(self.modules) - wanted):  # out first: room for what comes in
                self.mover(self.modules[name], cpu)
            for name in sorted(wanted & set(self.modules)):
                self.mover(self.modules[name], self.placement.device)
        self.current = phase
        for listener in self.listeners:
            listener(phase)
