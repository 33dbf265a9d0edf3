"""From admitted params to a render plan: preset with overrides, musical context, seed, input.

``build_plan`` runs twice: at admission (``bridge.jobs.admission.admit``, which
also checks the request's rules, so every mistake is answered before anything
is journalled) and when the worker starts the job from the journalled params
(also for replays and retries). It only builds: ranges were checked by the
schema, the rules between settings by admission. What can change between the
two runs it still refuses: a preset reloaded away, an input file gone.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.audio.context import MusicalContext
from bridge.audio.midi_files import MIDI_STEMS
from bridge.audio.presets import STEMS, Preset
from bridge.audio.render import LOOP_CROSSFADE_S
from bridge.errors import BadRequest, NotFound
from inference.api import LoraAdapter

KEY_PATTERN = re.compile(r"^([A-Ga-g])([#b]?)\s*(major|minor|maj|min|m)?$")
CONTEXT_KEYS = ("bpm", "beats_per_bar", "beat_unit", "key", "sample_rate")
# Request settings the plan consumes itself (the rest are preset overrides).
PLAN_SETTINGS = ("beats", "stems", "loop", "hard_cut", "stream", "style", "style_weight", "melody", "prompt",
                 "lyrics", "vocal_language", "instrumental", "lora", "lora_weight", "midi", "quantize", "heard_key")
INPUT_OPS = ("stems", "midi")  # ops on an input file that generate nothing: no preset argument, no model
# Ops that edit an input file: outputs as long as the input, no preset argument.
EDIT_OPS = ("repaint", "extract", "layer", "cover")
TRACK_OPS = ("extract", "layer")  # edit ops that name an instrument (the track argument)
MAX_LYRICS_FILE_BYTES = 16 * 1024
PROMPT_ARG_OPS = ("generate",)  # ops that take their text prompt as an argument, not as the prompt setting
STEMS_OP_PRESET = "default"  # /continuo/stems takes bit depth from this preset when it exists
# Seeds the daemon picks stay below 2**24, so a patching environment that holds every number as a float32 (Pd,
# Max's flonum) reads a /continuo/done seed exactly and can send it back. Variations use seed .. seed + count - 1
# (count at most MAX_VARIATION_COUNT, the schema's bound), so those stay below 2**24 too.
FLOAT32_EXACT_INT_LIMIT = 2**24
MAX_VARIATION_COUNT = 16
PICKED_SEED_LIMIT = FLOAT32_EXACT_INT_LIMIT - MAX_VARIATION_COUNT + 1


@dataclass(frozen=True)
class RenderPlan:
    op: str
    preset: Preset
    context: MusicalContext
    bars: float
    prompt: str
    seed: int
    input_path: Path | None
    stems: tuple[str, ...] = ()  # written beside the mix (generate, continue) or alone (stems)
    loop: bool = False  # fold the tail into the head with an equal-power crossfade
    hard_cut: bool = False  # cut effect tails at the last bar line
    stream: bool = False  # send preview chunks (/continuo/partial) while rendering
    styles: tuple[tuple[str, float], ...] = ()  # style mixing: (model prompt, weight) blended with prompt (1.0)
    beats: float | None = None  # the length in beats when the request gave one (decides frames exactly)
    count: int = 1  # variations: outputs variation-1..count, seeds seed, seed + 1, ...
    melody_path: Path | None = None  # a tune for a MusicGen-melody model to follow (its chroma conditions it)
    lyrics: str = ""  # words to sing (inline, or read from a .txt file under the input roots)
    vocal_language: str = ""
    instrumental: bool = False
    range_beats: tuple[float, float] | None = None  # repaint: the range, in beats from the input's start
    source_frames: int | None = None  # edit ops: the input's length at the session rate (the output's length)
    lora: str = ""  # a LoRA adapter's name, applied for this job only
    lora_weight: float = 1.0
    lora_path: Path | None = None  # where admission found the adapter in lora_dir (journalled as lora_path)
    track: str = ""  # extract / layer: the instrument, one of inference.api.TRACKS once admitted
    strength: float = 1.0  # cover: how much of the input's structure is kept (the pipeline's audio_cover_strength)
    midi: bool = False  # also each stem's (or the mix's) notes as a MIDI file; /continuo/midi: its whole point
    quantize: int = 0  # MIDI outputs: snap to 1/quantize notes from the first downbeat; 0: as played
    midi_stems: tuple[str, ...] = ()  # /continuo/midi: mix and/or stems to transcribe
    input_downbeat_s: float | None = None  # where the input's first downbeat lies, as heard (bridge/jobs/listening.py)

    @property
    def duration_s(self) -> float:
        if self.beats is not None:
            return self.context.seconds_for_beats(self.beats)
        return self.context.seconds_for_bars(self.bars)

    @property
    def generated_s_max(self) -> float:
        """The most audio the model is asked for: a continuation adds up to one bar before the
        next downbeat, loop mode the crossfade source."""
        if self.op in INPUT_OPS:
            return 0.0
        continues = self.op == "continue" or (self.op == "variations" and self.input_path is not None)
        lead_s = self.context.seconds_for_bars(1) if continues else 0.0
        return self.duration_s + lead_s + (LOOP_CROSSFADE_S if self.loop else 0.0)

    @property
    def frames(self) -> int:
        if self.source_frames is not None:
            return self.source_frames
        if self.beats is not None:
            return self.context.frames_for_beats(self.beats)
        return self.context.frames_for_bars(self.bars)


def song_fields(plan: RenderPlan) -> dict[str, Any]:
    """What a song model (ACE-Step) gets beyond MusicGen's request, as GenerationRequest fields: the plan's lyrics,
    vocal language and instrumental flag, its LoRA adapter (name, the path admission found, weight), and the
    session's tempo, metre and key as the model's metadata (bpm, timesignature, keyscale). A MusicGen engine
    ignores the metadata and refuses the rest by capability."""
    context = plan.context
    adapter = LoraAdapter(plan.lora, plan.lora_path, plan.lora_weight) if plan.lora_path is not None else None
    return {"lyrics": plan.lyrics, "vocal_language": plan.vocal_language, "instrumental": plan.instrumental,
            "bpm": float(context.bpm), "keyscale": keyscale(context.key),
            "timesignature": str(context.beats_per_bar), "adapter": adapter}


def keyscale(key: str) -> str:
    """The session key as ACE-Step writes it: "Bbm" -> "Bb minor", "F#" -> "F# major", "" -> ""."""
    match = KEY_PATTERN.match(key.strip())
    if not match:
        return ""
    root, accidental, mode = match.groups()
    return f"{root.upper()}{accidental} {'minor' if mode in ('minor', 'min', 'm') else 'major'}"


def job_params(op: str, args: Mapping[str, Any], settings: Mapping[str, Any], context: MusicalContext) -> dict:
    """What the journal keeps to run the job (again): JSON-safe, seed fixed once."""
    params = {
        "preset": args.get("preset", STEMS_OP_PRESET),
        "prompt": args.get("prompt", ""),
        "bars": float(args.get("bars", 0.0)),
        "input_path": args.get("input_path") or None,
        "settings": dict(settings),
        "context": {key: getattr(context, key) for key in CONTEXT_KEYS},
    }
    if op == "stems":
        chosen = args.get("stems") or STEMS
        params["settings"] = {"stems": chosen if isinstance(chosen, str) else ",".join(chosen)}
        if args.get("midi"):
            params["settings"]["midi"] = 1
    if op == "midi":
        chosen = args.get("stems") or ("mix",)
        params["midi_stems"] = chosen.split(",") if isinstance(chosen, str) else list(chosen)
    if "seed" not in settings:
        params["seed"] = secrets.randbelow(PICKED_SEED_LIMIT)
    if op == "variations":
        params["count"] = int(args.get("count", 1))
    if op == "repaint":
        params["range_beats"] = [float(args["start_beat"]), float(args["end_beat"])]
    if op in TRACK_OPS:
        params["track"] = track_name(str(args["track"]))
    if op == "cover":
        params["strength"] = float(args["strength"])
    return params


def build_plan(op: str, params: Mapping[str, Any], presets: Mapping[str, Preset],
               input_roots: Sequence[Path]) -> RenderPlan:
    preset_name = params["preset"]
    if (op in INPUT_OPS or op in EDIT_OPS) and preset_name not in presets:
        presets = {**presets, preset_name: Preset(name=preset_name, path=Path())}
    if preset_name not in presets:
        raise NotFound(f"unknown preset {preset_name!r}; known: {', '.join(sorted(presets))} "
                       "(/continuo/presets lists them)")
    settings = dict(params.get("settings", {}))
    context_changes = {key: settings.pop(key) for key in CONTEXT_KEYS if key in settings}
    heard = params.get("inferred") or {}  # what the input's analysis gave where the request set no tempo
    context = MusicalContext(**params["context"]).replace(
        **{**{key: heard[key] for key in CONTEXT_KEYS if key in heard}, **context_changes})  # the request's win
    own = {key: settings.pop(key) for key in PLAN_SETTINGS if key in settings}
    preset = presets[preset_name].with_overrides(settings)
    stems = parse_stems(own["stems"]) if "stems" in own else preset.stems if op != "midi" else ()
    midi_stems = parse_midi_stems(params.get("midi_stems", ())) if op == "midi" else ()
    if op == "midi":
        stems = tuple(stem for stem in midi_stems if stem in STEMS)  # what to separate first
    beats = float(own["beats"]) if own.get("beats") is not None else None
    bars = float(params["bars"]) if beats is None else beats / context.beats_per_bar
    seed = preset.seed if preset.seed is not None else int(params["seed"])
    input_path = resolve_input(params["input_path"], input_roots) if params.get("input_path") else None
    text = str(own["prompt"]) if "prompt" in own else params.get("prompt", "")
    melody_path = resolve_input(str(own["melody"]), input_roots) if own.get("melody") else None
    source_frames = input_frames(input_path, context.sample_rate) if op in EDIT_OPS and input_path else None
    if source_frames is not None:
        bars = source_frames / context.frames_for_bars(1)
    range_beats = tuple(params["range_beats"]) if params.get("range_beats") else None
    return RenderPlan(op=op, preset=preset, context=context, bars=bars, stream=bool(own.get("stream", 0)),
                      lyrics=read_lyrics(str(own.get("lyrics", "")), input_roots),
                      vocal_language=str(own.get("vocal_language", "")),
                      instrumental=bool(own.get("instrumental", 0)), range_beats=range_beats,
                      lora=str(own.get("lora", "")), lora_weight=float(own.get("lora_weight", 1.0)),
                      lora_path=Path(params["lora_path"]) if params.get("lora_path") else None,
                      source_frames=source_frames, track=str(params.get("track", "")),
                      strength=float(params.get("strength", 1.0)),
                      styles=_styles(own, preset, context), melody_path=melody_path,
                      prompt=preset.render_prompt(text, context), seed=seed,
                      input_path=input_path, stems=stems, loop=bool(own.get("loop", 0)),
                      hard_cut=bool(own.get("hard_cut", 0)), beats=beats, count=int(params.get("count", 1)),
                      midi=bool(own.get("midi", 0)) or op == "midi", quantize=int(own.get("quantize", 0)),
                      midi_stems=midi_stems, input_downbeat_s=heard.get("first_downbeat_s"))


def track_name(raw: str) -> str:
    """The track argument as ACE-Step names instruments: "backing vocals" / "backing-vocals" -> "backing_vocals"."""
    return "_".join(raw.strip().lower().replace("-", " ").split())


def read_lyrics(raw: str, input_roots: Sequence[Path]) -> str:
    """The lyrics setting as text: inline words, or the UTF-8 .txt file it names (one line, an absolute path)."""
    looks_like_path = "\n" not in raw and (raw.startswith("/") or (len(raw) > 2 and raw[1:3] == ":/"))
    if not looks_like_path:
        return raw
    if not raw.lower().endswith(".txt"):
        raise BadRequest(f"lyrics {raw!r} looks like a path but is not a .txt file; send the words inline or "
                         "the absolute path of a UTF-8 .txt file under input_roots")
    path = resolve_input(raw, input_roots)
    size = path.stat().st_size
    if size > MAX_LYRICS_FILE_BYTES:
        raise BadRequest(f"lyrics file {raw} is {size} bytes; at most {MAX_LYRICS_FILE_BYTES} are read "
                         "(about 4 minutes of a song): shorten it or split the song into parts")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"lyrics file {raw} is not UTF-8 text ({exc.reason}); save it as UTF-8") from None


def input_frames(path: Path, sample_rate: int) -> int:
    """The input file's length in frames at sample_rate (what an edit writes back)."""
    import soundfile

    try:
        info = soundfile.info(str(path))
    except (RuntimeError, soundfile.LibsndfileError) as exc:
        raise BadRequest(f"input file {path} is not audio this daemon can read: {exc}") from None
    return round(info.frames * sample_rate / info.samplerate)


def parse_stems(text: object) -> tuple[str, ...]:
    """"drums,bass" -> ("drums", "bass"); "" -> (); unknown or repeated stems are BadRequest."""
    if isinstance(text, (list, tuple)):
        names = [str(name).strip() for name in text]
    elif isinstance(text, str):
        names = [name.strip() for name in text.split(",") if name.strip()]
    else:
        raise BadRequest(f"stems must be a comma-separated list of {', '.join(STEMS)}, got {text!r}")
    unknown = [name for name in names if name not in STEMS]
    if unknown:
        raise BadRequest(f"stems: unknown stem(s) {', '.join(unknown)}; valid: {', '.join(STEMS)} "
                         "(comma-separated, e.g. drums,bass)")
    if len(set(names)) != len(names):
        raise BadRequest(f"stems: {text!r} names a stem twice; name each at most once")
    return tuple(name for name in STEMS if name in names)


def parse_midi_stems(names: Sequence[str]) -> tuple[str, ...]:
    """/continuo/midi's list: mix and the stems, each at most once, in MIDI_STEMS order."""
    names = [str(name).strip() for name in names if str(name).strip()]
    if not names or any(name not in MIDI_STEMS for name in names) or len(set(names)) != len(names):
        raise BadRequest(f"midi: stems must be a comma-separated list of {', '.join(MIDI_STEMS)}, each at most once, "
                         f"got {','.join(names)!r}")
    return tuple(name for name in MIDI_STEMS if name in names)


def _styles(own: Mapping[str, Any], preset: Preset, context: MusicalContext) -> tuple[tuple[str, float], ...]:
    if "style" not in own:
        return ()
    return ((preset.render_prompt(str(own["style"]), context), float(own.get("style_weight", 1.0))),)


def resolve_input(raw: str, input_roots: Sequence[Path]) -> Path:
    """An input path, symlinks resolved, that must lie under one of the input roots and exist."""
    resolved = under_input_roots(raw, input_roots)
    if not resolved.is_file():
        raise NotFound(f"input file {raw!r} does not exist (or is not a file)")
    return resolved


def under_input_roots(raw: str, input_roots: Sequence[Path], what: str = "input path",
                      move: str = "copy the file") -> Path:
    """raw, absolute and symlinks resolved, under one of the input roots (a file or a folder); BadRequest else."""
    path = Path(raw).expanduser()
    if not path.is_absolute():
        raise BadRequest(f"{what} {raw!r} is not absolute; send the full path, e.g. /Users/me/Music/clip.wav")
    resolved = path.resolve()
    if not any(resolved.is_relative_to(root) for root in input_roots):
        roots = ", ".join(str(r) for r in input_roots)
        raise BadRequest(f"{what} {raw!r} is outside the allowed input folders ({roots}); "
                         f"{move} into one of them or add its folder to input_roots")
    return resolved
