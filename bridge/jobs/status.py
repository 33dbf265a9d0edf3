"""What the daemon says of itself: /continuo/status and the events that follow it, and /continuo/models.

/continuo/status keeps its arguments for older clients (state, model, memory, queue length); /continuo/limits
follows it (max_queue, max_bars, max_variations, max_input_bytes, max_input_s, max_messages_per_s and the
measured seconds of work per second of audio), then /continuo/storage (the space renders take and what is free,
whether auto_trash is on: bridge/jobs/trash.py:send_storage). /continuo/models names the served model (family,
capabilities), then one /continuo/adapters event per LoRA adapter in lora_dir (inference/adapters.py, no torch);
HTTP's GET /api/models takes its `lora_adapters` from those events. A model switch answers with the same events.
`Status.about` is the control room's view of the same (HTTP's `about`, read on its own thread).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bridge import __version__
from bridge.jobs.events import EventSink
from bridge.jobs.model_switch import ModelSwitch
from bridge.jobs.pool import WorkerPool
from bridge.jobs.retention import RetentionTimer
from bridge.jobs.trash import send_storage
from bridge.protocol.destinations import Destination
from bridge.settings import Settings
from inference.adapters import find_adapters
from inference.runtime.memory import resident_bytes, total_memory_bytes


class Status:
    def __init__(self, *, settings: Settings, events: EventSink, pool: WorkerPool, switch: ModelSwitch,
                 retention: RetentionTimer) -> None:
        self.settings, self.events, self.pool, self.switch, self.retention = settings, events, pool, switch, retention

    def send(self, reply_to: Destination) -> None:
        """/continuo/status, then /continuo/limits and /continuo/storage."""
        used_gb, total_gb = memory_gb()
        state = "loading" if self.switch.active else "busy" if self.pool.running_jobs() else "idle"
        self.events.emit(reply_to, "/continuo/status", state, self.pool.engine.info.name, used_gb, total_gb,
                         len(self.pool.queue))
        s = self.settings
        self.events.emit(reply_to, "/continuo/limits", s.max_queue, float(s.max_bars), s.max_variations,
                         s.max_input_bytes, float(s.max_input_s), float(s.max_messages_per_s),
                         float(self.pool.seconds_per_audio_s))
        self.send_storage(reply_to)

    def send_storage(self, reply_to: Destination) -> None:
        send_storage(self.events, reply_to, self.retention.space, output_root=self.settings.resolved_output_root,
                     auto_trash_days=self.settings.auto_trash_days)

    def send_models(self, reply_to: Destination) -> None:
        """The served model (family, capabilities), then one /continuo/adapters event per LoRA adapter."""
        info = self.pool.engine.info
        adapters = self.adapters()
        self.events.emit(reply_to, "/continuo/models", info.name, info.source_kind, info.sample_rate, info.channels,
                         info.family, ",".join(sorted(c.value for c in info.capabilities)), len(adapters))
        for name in adapters:
            self.events.emit(reply_to, "/continuo/adapters", name)

    def answer_switch(self, reply_to: Destination, models: bool) -> None:
        """A model switch's answers: the status (and limits), and once it is done the models listing."""
        self.send(reply_to)
        if models:
            self.send_models(reply_to)

    def about(self, midi_maps: Mapping[str, Any]) -> dict[str, Any]:
        """What the control room shows at the top and beside the presets (any thread; reads only)."""
        info = self.pool.engine.info
        return {"version": __version__, "model": info.name, "device": info.device, "smoke_model": info.is_random,
                "model_sample_rate": info.sample_rate, "capabilities": sorted(c.value for c in info.capabilities),
                "session_sample_rate": self.settings.sample_rate, "session_bpm": self.settings.bpm,
                "midi_maps": [{"name": m.name, "description": m.description} for m in midi_maps.values()],
                "lora_adapters": self.adapters()}

    def adapters(self) -> list[str]:
        """The LoRA adapters in lora_dir, by name."""
        return list(find_adapters(self.settings.resolved_lora_dir))


def memory_gb() -> tuple[float, float]:
    """(resident memory of this process, total memory of the machine) in GB; 0 where the system cannot tell."""
    return (resident_bytes() or 0) / 1e9, (total_memory_bytes() or 0) / 1e9
