"""A job's files in ``<output_root>/<job_id>/``: each output, then manifest.json.

Each output is written atomically as ``<name>.wav`` (the stable name that events, the journal and /continuo/get
carry; its waveform's peaks beside it as ``<name>.peaks``), linked (or copied) to its DAW name
``<job>_<name>_<bars>bars_<bpm>bpm_<key>.wav`` before its event, so both names are there when the client hears
of it, journalled, and only then announced with /continuo/output. A stem's MIDI file (midi 1, /continuo/midi) is
``<stem>.mid``, output ``<stem>-midi``, linked to ``<job>_<stem>_<bars>bars_<bpm>bpm_<key>.mid`` beside the stem's
WAV. Each render's grid check (the tempo and downbeats heard in it against the asked grid,
bridge/audio/analysis.py:check_grid) is in its manifest entry, and a request whose tempo was heard in its input keeps
what was heard as ``inferred``. The manifest follows the outputs: the request as journalled (``params``), so
/continuo/get and a resent id find the job there once the journal has forgotten it (bridge/jobs/retention.py), the
model that rendered it, and a loud warning when that was the random smoke model. Every write is
bridge/audio/files.py's: atomic, and a full disk is ``disk_full`` with nothing half-written under a final name.

A file Continuo made keeps its tempo, metre and key in that manifest, so continuing, varying or splitting it later
renders in them (``made_context``) rather than in whatever the session says: a 92 BPM clip continued in a 120 BPM
session would not join. A request's own bpm, metre or key settings still win; a file Continuo did not make gets the
session's tempo when the session set one, else the tempo heard in it (bridge/jobs/listening.py).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path

from bridge.audio.analysis import GridCheck
from bridge.audio.context import MusicalContext
from bridge.audio.files import daw_file_name, link_or_copy_atomic, peaks_path, write_bytes_atomic, write_wav_atomic
from bridge.audio.loudness import waveform_peaks
from bridge.audio.render import RenderedAudio
from bridge.audio.transcription import StemMidi
from bridge.errors import BridgeError
from bridge.jobs.events import EventSink
from bridge.jobs.journal import Journal, OutputRecord
from bridge.jobs.plan import RenderPlan
from bridge.jobs.queue import Job
from bridge.jobs.storage import MANIFEST
from inference.api import ModelInfo

log = logging.getLogger("continuo.worker")


class Outputs:
    """Writes, journals and announces a job's outputs, then its manifest."""

    def __init__(self, output_root: Path, journal: Journal, events: EventSink) -> None:
        self.output_root, self.journal, self.events = output_root, journal, events

    def write_all(self, job: Job, plan: RenderPlan, rendered: Mapping[str, RenderedAudio], *,
                  model: ModelInfo, midi: Mapping[str, StemMidi] | None = None,
                  checks: Mapping[str, GridCheck] | None = None) -> list[OutputRecord]:
        """Each output (journalled before its /continuo/output), its MIDI files, then the manifest (with each
        render's grid check). An output as long as the plan is plan.bars long; any other (a tail, an input's
        stems) is counted in bars of the session's tempo."""
        bar_s = plan.context.seconds_for_bars(1)
        outputs = [self.write_output(job, plan, name, audio, bars=plan.bars if plan.bars and audio.frames == plan.frames
                                     else audio.seconds / bar_s) for name, audio in rendered.items()]
        outputs += [self.write_midi(job, plan, result, bars=result.seconds / bar_s) for result in (midi or {}).values()]
        self.write_manifest(job, plan, outputs, model, checks or {})
        return outputs

    def write_output(self, job: Job, plan: RenderPlan, name: str, rendered: RenderedAudio, *,
                     bars: float) -> OutputRecord:
        path = self.output_root / job.job_id / f"{name}.wav"
        record = OutputRecord(
            name=name, path=path.as_posix(), sample_rate=rendered.sample_rate, channels=rendered.audio.shape[0],
            seconds=rendered.audio.shape[1] / rendered.sample_rate, bars=bars, lufs=rendered.lufs,
            peak_db=rendered.peak_db,
        )
        daw = daw_path(job, plan, record)
        write_wav_atomic(path, rendered.audio, rendered.sample_rate, bit_depth=plan.preset.bit_depth)
        link_or_copy_atomic(path, daw)  # before the event: both names are there
        write_bytes_atomic(peaks_path(path), waveform_peaks(rendered.audio))  # the page's waveform, from full rate
        self.journal.add_output(job.job_id, record)
        self.events.output(job.reply_to, job.job_id, record)
        log.info("job=%s output name=%s path=%s lufs=%.1f peak_db=%.1f", job.job_id, name, record.path,
                 record.lufs, record.peak_db)
        return record

    def write_midi(self, job: Job, plan: RenderPlan, result: StemMidi, *, bars: float) -> OutputRecord:
        """<stem>.mid (output <stem>-midi), linked to its DAW name beside the stem's, journalled, announced. Its
        event carries the session's rate, one channel and -120 for loudness and peak (it has no sound)."""
        path = self.output_root / job.job_id / f"{result.stem}.mid"
        record = OutputRecord(name=f"{result.stem}-midi", path=path.as_posix(), sample_rate=plan.context.sample_rate,
                              channels=1, seconds=result.seconds, bars=bars, lufs=-120.0, peak_db=-120.0)
        write_bytes_atomic(path, result.data)
        link_or_copy_atomic(path, daw_path(job, plan, record))
        self.journal.add_output(job.job_id, record)
        self.events.output(job.reply_to, job.job_id, record)
        log.info("job=%s output name=%s path=%s notes=%d", job.job_id, record.name, record.path, len(result.notes))
        return record

    def write_manifest(self, job: Job, plan: RenderPlan, outputs: list[OutputRecord], model: ModelInfo,
                       checks: Mapping[str, GridCheck] | None = None) -> None:
        manifest = {
            "job_id": job.job_id,
            "op": job.op,
            "preset": plan.preset.name,
            "prompt": plan.prompt,
            "bars": plan.bars,
            "seed": plan.seed,
            "context": {"bpm": plan.context.bpm, "metre": plan.context.metre, "key": plan.context.key,
                        "sample_rate": plan.context.sample_rate},
            "input_path": plan.input_path.as_posix() if plan.input_path else None,
            "model": {"name": model.name, "source": model.source_kind, "smoke_model": model.is_random,
                      "modes": model.modes},  # weights, cache, calibration figures, DiT linear plan
            "outputs": [{**o.__dict__, "daw_path": daw_path(job, plan, o).as_posix(),
                         **({"grid": checks[o.name].to_json()} if checks and o.name in checks else {})}
                        for o in outputs],
            "params": job.params,  # the request as journalled
        }
        if job.params.get("inferred"):  # what the input's analysis gave a request without a tempo
            manifest["inferred"] = job.params["inferred"]
        if plan.op == "variations":
            manifest["variation_seeds"] = {f"variation-{i + 1}": plan.seed + i for i in range(plan.count)}
        if model.is_random:
            manifest["warning"] = "rendered by a tiny RANDOM smoke model: this is noise, not music"
        write_bytes_atomic(self.output_root / job.job_id / MANIFEST, json.dumps(manifest, indent=2).encode())


def daw_path(job: Job, plan: RenderPlan, record: OutputRecord) -> Path:
    """The output's second name, for dropping into a DAW, beside the stable <name>.wav (a stem's MIDI file takes
    the stem's name with .mid: job-1_bass_8bars_92bpm_F#min.mid)."""
    midi = record.path.endswith(".mid")
    name = record.name.removesuffix("-midi") if midi else record.name
    return Path(record.path).with_name(daw_file_name(job.job_id, name, bars=record.bars, bpm=plan.context.bpm,
                                                     key=plan.context.key, suffix=".mid" if midi else ".wav"))


MADE_CONTEXT_KEYS = ("bpm", "beats_per_bar", "beat_unit", "key")  # what a made file carries to the next job


def made_context(input_path: str, output_root: Path) -> dict[str, object] | None:
    """The tempo, metre and key a file under ``output_root`` was rendered in, from its job's manifest; None for a
    file Continuo did not make (elsewhere, no manifest, or one it cannot read)."""
    try:
        relative = Path(input_path).resolve().relative_to(output_root)
    except (OSError, ValueError):
        return None
    if len(relative.parts) < 2 or relative.parts[0].startswith("."):  # a job folder, not the trash or the journal
        return None
    try:
        context = json.loads((output_root / relative.parts[0] / MANIFEST).read_text())["context"]
        top, _, bottom = str(context["metre"]).partition("/")
        made = MusicalContext(bpm=float(context["bpm"]), beats_per_bar=int(top), beat_unit=int(bottom),
                              key=str(context["key"]))
    except (OSError, ValueError, KeyError, TypeError, BridgeError):
        log.warning("job=- %s: its manifest has no readable tempo and key; the session's apply", input_path)
        return None
    return {key: getattr(made, key) for key in MADE_CONTEXT_KEYS}
