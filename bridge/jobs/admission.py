"""Admission: every check on a job request, in one place, before anything is journalled.

``admit`` runs on the receive thread (``Daemon.submit``) for every way a job
comes in: OSC over UDP or TCP, ZeroMQ, MIDI. It refuses with the error the
client sees, or returns what the daemon journals and enqueues. In order:

1. variations: ``count`` within ``max_variations``; a LoRA adapter's name, where the model takes one,
   found in ``lora_dir`` (its path is journalled with the job);
2. the plan (``build_plan``): the preset exists, the context and overrides
   apply, inputs resolve under the input roots and exist;
3. the rules between settings the schema cannot see (``check_rules``);
4. input files: size, duration, readable audio (``check_input_file``);
5. the model: its declared capabilities (``check_capabilities``) and its
   window against the length asked for (``check_window``), skipped while a
   model switch is under way (``model`` None: the worker checks them against
   the new model when the job starts, ``check_model``); bars within max_bars
   (``check_length``); an edit's range against its input (``check_edit_range``);
6. room in the queue, or a live job's slot to take over (``check_room``).

Types and ranges are not checked again here: ``Schema.parse`` checked them for
OSC and ZeroMQ, ``load_midi_maps`` for the values a MIDI knob can send (against
the same schema), so each rule has one check.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.audio.context import MusicalContext
from bridge.audio.midi_files import GRID_DIVISIONS
from bridge.audio.presets import Preset
from bridge.errors import BadRequest, BridgeError, Busy, ConfigError
from bridge.jobs.capabilities import check_capabilities
from bridge.jobs.plan import EDIT_OPS, INPUT_OPS, PROMPT_ARG_OPS, TRACK_OPS, RenderPlan, build_plan, job_params
from bridge.jobs.queue import JobQueue, Priority
from bridge.settings import Settings
from inference.adapters import find_adapters
from inference.api import TRACKS, Capability, ModelInfo


@dataclass(frozen=True)
class Admitted:
    """An admitted job: what the journal keeps (``params``, JSON-safe, seed fixed) and the plan it gave."""

    params: dict[str, Any]
    plan: RenderPlan


def admit(op: str, job_id: str, args: Mapping[str, Any], settings: Mapping[str, Any], *,
          context: MusicalContext, presets: Mapping[str, Preset], input_roots: Sequence[Path], limits: Settings,
          model: ModelInfo | None, queue: JobQueue, priority: Priority = Priority.INTERACTIVE,
          slot: int | None = None, retries: int = 0, inferred: Mapping[str, Any] | None = None) -> Admitted:
    """Check one job request (``model``: the loaded model's info, None while a switch is under way; ``inferred``:
    what the input's analysis gave a request without a tempo, bridge/jobs/listening.py); raises the BridgeError
    the client gets."""
    try:
        params = job_params(op, args, settings, context)
        if inferred:
            params["inferred"] = dict(inferred)
        if retries:
            params["retries"] = retries  # re-run this many times if the daemon dies while it runs
        if priority is not Priority.INTERACTIVE:
            params["priority"] = priority.value
        check_count(int(args.get("count", 1)), limits)
        if "lora" in params["settings"] and (model is None or model.supports(Capability.LORA)):  # else: refused
            # by capability below
            params["lora_path"] = str(find_adapter(str(params["settings"]["lora"]), limits))
        plan = build_plan(op, params, presets, input_roots)
        check_rules(plan, params["settings"])
        if plan.input_path is not None:
            check_input_file(plan.input_path, limits)
        if model is not None:
            check_capabilities(plan, model, job_id)
        if plan.melody_path is not None:
            check_input_file(plan.melody_path, limits)
        check_length(plan, limits)
        if model is not None:
            check_window(plan, model)
        check_edit_range(plan)
        check_room(queue, priority, slot)
    except BridgeError as exc:
        exc.job_id = exc.job_id or job_id
        raise
    return Admitted(params=params, plan=plan)


def check_count(count: int, limits: Settings) -> None:
    if count > limits.max_variations:
        raise BadRequest(f"{count} variations is more than this daemon allows ({limits.max_variations}); "
                         "ask for fewer or raise max_variations")


def check_rules(plan: RenderPlan, settings: Mapping[str, Any]) -> None:
    """The rules between an op and its settings, which the schema checks one value at a time cannot see."""
    op = plan.op
    if op == "continue" and plan.input_path is None:
        raise BadRequest("continue needs an input file: "
                         "send /continuo/continue <job_id> <preset> <absolute wav path> <bars>")
    if op == "stems" and plan.input_path is None:
        raise BadRequest("stems needs an input file: send /continuo/stems <job_id> <absolute wav path> [stems]")
    if "style_weight" in settings and "style" not in settings:
        raise BadRequest("style_weight needs a style: send style \"<prompt>\" style_weight 0.5")
    if "prompt" in settings:
        if op in PROMPT_ARG_OPS:
            raise BadRequest(f"{op} takes its prompt as an argument; drop the prompt setting")
        if op == "stems":
            raise BadRequest("stems generates nothing, so it takes no prompt; drop the setting")
    if plan.melody_path is not None and op == "stems":
        raise BadRequest("melody conditions generation; /continuo/stems generates nothing; drop the setting")
    if op in EDIT_OPS and plan.input_path is None:
        raise BadRequest(f"{op} needs an input file: send /continuo/{op} <job_id> <absolute wav path> ...")
    if plan.instrumental and plan.lyrics.strip():
        raise BadRequest("instrumental 1 and lyrics contradict each other; send lyrics or instrumental 1, not both")
    if "lora_weight" in settings and "lora" not in settings:
        raise BadRequest("lora_weight needs an adapter: send lora \"<name>\" lora_weight 0.8")
    if op == "cover" and not str(settings.get("prompt", "")).strip():
        raise BadRequest("cover restyles the clip by a new prompt: send /continuo/cover <job_id> <wav path> "
                         "<strength> prompt \"<the new style>\"")
    if op in TRACK_OPS and plan.track not in TRACKS:
        raise BadRequest(f"{op}: unknown track {plan.track!r}; the model knows {', '.join(TRACKS)}")
    if op in EDIT_OPS and any(key in settings for key in ("loop", "beats", "stems", "stream")):
        raise BadRequest(f"{op} writes back a clip as long as its input; drop loop, beats, stems and stream")
    check_midi_rules(plan, settings)


MIDI_OPS = ("generate", "continue", "stems", "midi")  # the ops that write MIDI outputs (midi 1)
GENERATING = ("prompt", "melody", "style", "style_weight", "loop", "beats", "stream", "lyrics", "vocal_language",
              "instrumental", "lora", "lora_weight", "hard_cut")


def check_midi_rules(plan: RenderPlan, settings: Mapping[str, Any]) -> None:
    """MIDI outputs: the ops that write them, a grid the quantiser knows, and /continuo/midi's own rules."""
    op = plan.op
    if settings.get("midi") and op not in MIDI_OPS:
        raise BadRequest(f"midi 1 is built for {', '.join(MIDI_OPS[:-1])}; for {op}'s outputs send /continuo/midi "
                         "with the output's path")
    if settings.get("quantize") and not plan.midi:
        raise BadRequest("quantize snaps MIDI notes: send it with midi 1 (or in /continuo/midi)")
    if plan.quantize and plan.quantize not in GRID_DIVISIONS:
        raise BadRequest(f"quantize {plan.quantize} is not a grid: 1, 2, 4, 8, 16 or 32 (1/N notes), 3, 6, 12 or 24 "
                         "(triplets), or 0 for as played")
    if op == "midi":
        if plan.input_path is None:
            raise BadRequest("midi needs an input file: send /continuo/midi <job_id> <absolute wav path> mix")
        given = sorted(key for key in GENERATING if key in settings)
        if given or "stems" in settings:
            raise BadRequest(f"/continuo/midi transcribes a file and generates nothing; drop "
                             f"{', '.join(given) or 'stems'} (name the stems in its third argument)")


def find_adapter(name: str, limits: Settings) -> Path:
    """The file or directory of the LoRA adapter `name` in lora_dir; BadRequest listing the known ones."""
    adapters = find_adapters(limits.resolved_lora_dir)
    if name not in adapters:
        known = ", ".join(adapters) if adapters else "none"
        raise BadRequest(f"unknown LoRA adapter {name!r}; known in {limits.resolved_lora_dir}: {known} (put "
                         "NAME.safetensors or NAME/pytorch_lora_weights.safetensors there, in diffusers' LoRA "
                         "format)")
    return adapters[name]


def merged_lora(settings: Settings) -> str:
    """The path of the adapter the `lora` setting merges at load ('' for none): NAME in lora_dir, or a path to an
    adapter file or folder; ConfigError listing the known names otherwise."""
    if not settings.lora:
        return ""
    adapters = find_adapters(settings.resolved_lora_dir)
    if settings.lora in adapters:
        return str(adapters[settings.lora])
    path = Path(settings.lora).expanduser()
    if path.exists():
        return str(path)
    known = ", ".join(adapters) if adapters else "none"
    raise ConfigError(f"lora = {settings.lora!r} is neither an adapter in {settings.resolved_lora_dir} (known: "
                      f"{known}) nor a file or folder; train one with `continuo train-style DIR --name NAME` or set "
                      "lora to ''")


def check_input_file(path: Path, limits: Settings) -> None:
    """Input files over max_input_bytes or max_input_s, or not audio at all, are refused."""
    import soundfile

    size = path.stat().st_size
    if size > limits.max_input_bytes:
        raise BadRequest(f"input file is {size} bytes; this daemon takes at most {limits.max_input_bytes} "
                         "(max_input_bytes)")
    try:
        info = soundfile.info(str(path))
    except (RuntimeError, soundfile.LibsndfileError) as exc:
        raise BadRequest(f"input file {path} is not audio this daemon can read: {exc}") from None
    if info.duration > limits.max_input_s:
        raise BadRequest(f"input file is {info.duration:.1f} s long; this daemon takes at most "
                         f"{limits.max_input_s:g} s (max_input_s)")


def check_model(plan: RenderPlan, model: ModelInfo, job_id: str) -> None:
    """What the served model must do for plan: its capabilities and its window. At admission, and again by the
    worker when the job starts (a model switch may have come between; bridge/jobs/model_switch.py)."""
    try:
        check_capabilities(plan, model, job_id)
        check_window(plan, model)
    except BridgeError as exc:
        exc.job_id = exc.job_id or job_id
        raise


def check_length(plan: RenderPlan, limits: Settings) -> None:
    """Bars within max_bars."""
    if plan.bars > limits.max_bars:
        raise BadRequest(f"{plan.bars:g} bars is more than this daemon allows ({limits.max_bars:g}); "
                         "ask for fewer bars or raise max_bars")


def check_window(plan: RenderPlan, model: ModelInfo) -> None:
    """The audio asked of the model within its window (after the audio prompt)."""
    bars, duration_s = plan.bars, plan.generated_s_max
    prompt_s = plan.preset.prompt_seconds if plan.input_path and plan.op not in (*INPUT_OPS, *EDIT_OPS) else 0.0
    windowed = model.max_output_s > model.max_duration_s  # our engine re-prompts past the model's window
    limit = model.max_output_s if windowed else model.max_duration_s - prompt_s
    if duration_s > limit:
        raise BadRequest(
            f"{bars:g} bars is {duration_s:.1f} s at this tempo; this engine renders at most {limit:.1f} s per "
            f"request{' after the prompt' if prompt_s and not windowed else ''}; ask for fewer bars"
        )


def check_edit_range(plan: RenderPlan) -> None:
    """An edit's range (in beats of the session context) lies inside its input and ends after it starts."""
    if plan.range_beats is None:
        return
    start, end = plan.range_beats
    length_beats = plan.bars * plan.context.beats_per_bar
    if end <= start:
        raise BadRequest(f"{plan.op}: end_beat {end:g} must come after start_beat {start:g}")
    if end > length_beats + 1e-6:
        raise BadRequest(f"{plan.op}: end_beat {end:g} lies past the input's end (beat {length_beats:.2f} at "
                         f"{plan.context.bpm:g} bpm, {plan.context.metre}); send a range inside the file or set "
                         "the session's tempo with /continuo/context")


def check_room(queue: JobQueue, priority: Priority, slot: int | None) -> None:
    """A full queue refuses every job but a live one that replaces the live job waiting for its slot
    (the queue's own rule, checked here so that a job it would refuse is never journalled)."""
    if len(queue) < queue.max_length:
        return
    replaces = priority is Priority.LIVE and slot is not None and any(
        job.priority is Priority.LIVE and job.slot == slot for job in queue.waiting())
    if not replaces:
        raise Busy(f"the queue is full ({queue.max_length} waiting); send again after a /continuo/done")
