"""Presets: TOML files naming a model, a prompt template, generation settings,
a loudness target, an output format and a master effect chain.

A preset's name is its file stem (``^[a-z0-9][a-z0-9_-]{0,47}$``). Layout, every
key optional::

    description = "Gentle master for any material."
    model = "musicgen-stereo-small"          # None: the daemon's default model

    [prompt]
    template = "{prompt}, {bpm} bpm, {key}"  # must contain {prompt}; also {metre}

    [generation]                             # ranges: the request settings of osc_schema/continuo.json
    temperature = 1.0                        # 0.05 .. 4
    top_k = 250                              # 0 .. 2048 (0 = off)
    top_p = 0.0                              # 0 .. 1 (0 = off)
    guidance_scale = 3.0                     # 0 .. 20
    seed = 1234                              # 0 .. 2**31 - 1; absent = random
    prompt_seconds = 5.0                     # 0.5 .. 20, audio prompt for continuations

    [loudness]
    target_lufs = -14.0                      # -40 .. -5
    true_peak_db = -1.0                      # -12 .. 0 dBTP

    [output]
    bit_depth = 24                           # 16, 24 or 32 (float)
    stems = ["drums", "bass"]                # drums, bass, other, vocals: written beside the mix

    [[master]]                               # the mix chain, in order
    plugin = "Compressor"                    # a pedalboard built-in (bridge.audio.effects.PLUGIN_PARAMS)
    threshold_db = -18.0                     # ... and its parameters
    ratio = 2.5

    [[master]]
    plugin = "vst3"                          # an external VST3; path relative to this file
    path = "plugins/Tape.vst3"
    drive = 0.3                              # parameters as the plugin names them

    [[stem_chains.drums]]                    # a chain for one stem (drums, bass, other, vocals)
    plugin = "Reverb"                        # same tables as [[master]]
    room_size = 0.3

``load_presets`` checks everything and reports all problems of all files at
once in one ``PresetError``, one line each: ``<file>: <key>: <reason>``. The
[generation] and [loudness] values are request settings: they are checked
against the schema's ranges (``bridge.protocol.schema``), the one source of them,
so a preset holds nothing a request could not ask for.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bridge.audio.context import MusicalContext
from bridge.audio.effects import PATH_PARAMS, VST3, EffectSpec, check_effect
from bridge.errors import BadRequest, ConfigError
from bridge.protocol.schema import InvalidValue, load_schema

__all__ = [
    "BIT_DEPTHS",
    "NAME_PATTERN",
    "PRESET_SETTINGS",
    "STEMS",
    "EffectSpec",
    "Preset",
    "PresetError",
    "builtin_presets_dir",
    "load_presets",
]

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,47}$")
STEMS: tuple[str, ...] = ("drums", "bass", "other", "vocals")
BIT_DEPTHS: tuple[int, ...] = (16, 24, 32)
PLACEHOLDERS: tuple[str, ...] = ("bpm", "key", "metre")

# The request settings a preset holds (a request may override each). Their types and ranges are the
# schema's (load_schema().setting(name)): osc_schema/continuo.json is the one source.
PRESET_SETTINGS: tuple[str, ...] = (
    "temperature", "top_k", "top_p", "guidance_scale", "seed", "prompt_seconds", "target_lufs", "true_peak_db",
)

_SECTIONS: Mapping[str, tuple[str, ...]] = {
    "prompt": ("template",),
    "generation": ("temperature", "top_k", "top_p", "guidance_scale", "seed", "prompt_seconds"),
    "loudness": ("target_lufs", "true_peak_db"),
    "output": ("bit_depth", "stems"),
}
_TOP_LEVEL = ("description", "model", *_SECTIONS, "master", "stem_chains")
_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


class PresetError(ConfigError):
    """One or more preset files are invalid; ``problems`` holds one line each."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        count = len(self.problems)
        super().__init__(f"{count} problem{'s' * (count != 1)} in presets:\n" + "\n".join(self.problems))


@dataclass(frozen=True)
class Preset:
    """A loaded preset; ``name`` is the file stem, ``path`` the TOML file."""

    name: str
    path: Path
    description: str = ""
    model: str | None = None
    prompt_template: str = "{prompt}"
    temperature: float = 1.0
    top_k: int = 250
    top_p: float = 0.0
    guidance_scale: float = 3.0
    seed: int | None = None
    prompt_seconds: float = 5.0
    target_lufs: float = -14.0
    true_peak_db: float = -1.0
    master: tuple[EffectSpec, ...] = ()
    stems: tuple[str, ...] = ()
    stem_chains: Mapping[str, tuple[EffectSpec, ...]] = dataclasses.field(default_factory=dict)
    bit_depth: int = 24

    def __post_init__(self) -> None:
        object.__setattr__(self, "master", tuple(self.master))
        object.__setattr__(self, "stems", tuple(self.stems))
        object.__setattr__(self, "stem_chains", types.MappingProxyType(
            {stem: tuple(chain) for stem, chain in self.stem_chains.items()}))

    def render_prompt(self, prompt: str, context: MusicalContext) -> str:
        """The model prompt: ``prompt`` placed into the template.

        Both the template and the user's prompt may use {bpm}, {key} and {metre};
        ``{{`` and ``}}`` are literal braces. An unknown placeholder or a stray
        brace is ``BadRequest`` naming it. A comma-separated phrase that both the
        prompt and the template produce ("120 bpm") is kept once.
        """
        values = {"bpm": _format_bpm(context.bpm), "key": context.key, "metre": context.metre}
        user = _substitute(prompt, values, "prompt")
        text = _substitute(self.prompt_template, {**values, "prompt": user}, f"preset {self.name} template")
        return _drop_repeated_phrases(text)

    def with_overrides(self, settings: Mapping[str, object]) -> Preset:
        """A copy with admitted request ``settings`` (``PRESET_SETTINGS`` names, or an alias) applied.

        The values were checked against the schema where they entered (``Schema.parse`` for OSC and
        ZeroMQ, ``load_midi_maps`` for MIDI knobs), so here they only take the setting's type.
        ``seed`` may be None (random). A name that is not a preset setting is a bug: ValueError.
        """
        changes: dict[str, object] = {}
        for given, value in settings.items():
            spec = load_schema().setting(given)
            if spec is None or spec.name not in PRESET_SETTINGS:
                raise ValueError(f"{given} is not a preset setting; preset settings: {', '.join(PRESET_SETTINGS)}")
            if value is None:
                if spec.name != "seed":
                    raise ValueError(f"{given} needs a value; only seed may be None (random)")
                changes[spec.name] = None
            else:
                changes[spec.name] = int(value) if spec.type == "i" else float(value)
        return dataclasses.replace(self, **changes) if changes else self


def preset_dirs(user_dir: Path) -> list[Path]:
    """The folders presets (and MIDI maps, in their midi/) are read from: the built-in one, then the user's."""
    user = user_dir.expanduser()
    return [builtin_presets_dir(), user] if user.is_dir() else [builtin_presets_dir()]


def builtin_presets_dir() -> Path:
    """The presets shipped with Continuo (the repository's ``presets/``)."""
    from presets import PRESETS_DIR

    return PRESETS_DIR


def load_presets(dirs: Sequence[Path]) -> dict[str, Preset]:
    """Every ``*.toml`` in each of ``dirs``, by name; later dirs override earlier ones.

    A missing directory is a problem too (a typo in the settings should not
    silently drop presets). Raises one ``PresetError`` listing all problems.
    """
    presets: dict[str, Preset] = {}
    problems: list[str] = []
    for directory in map(Path, dirs):
        if not directory.is_dir():
            problems.append(f"{directory}: directory: does not exist or is not a directory")
            continue
        for path in sorted(directory.glob("*.toml")):
            preset, found = _load_preset(path)
            problems.extend(f"{path}: {key}: {reason}" for key, reason in found)
            if preset is not None:
                presets[preset.name] = preset
    if problems:
        raise PresetError(problems)
    return presets


def _load_preset(path: Path) -> tuple[Preset | None, list[tuple[str, str]]]:
    """The preset in ``path`` (None when invalid) and its problems as (key, reason)."""
    problems: list[tuple[str, str]] = []
    if not NAME_PATTERN.match(path.stem):
        problems.append(("name", f"{path.stem!r} must match {NAME_PATTERN.pattern} (rename the file)"))
    try:
        with open(path, "rb") as handle:
            document = tomllib.load(handle)
    except OSError as exc:
        return None, [*problems, ("file", f"cannot read: {exc}")]
    except tomllib.TOMLDecodeError as exc:
        return None, [*problems, ("toml", str(exc))]
    fields = _parse_document(document, path.parent, problems)
    if problems:
        return None, problems
    return Preset(name=path.stem, path=path, **fields), []


def _parse_document(document: Mapping, base: Path, problems: list) -> dict[str, object]:
    fields: dict[str, object] = {}
    for key, value in document.items():
        if key not in _TOP_LEVEL:
            problems.append((key, f"unknown key; valid: {', '.join(_TOP_LEVEL)}"))
        elif key in _SECTIONS:
            fields.update(_parse_section(key, value, problems))
        elif key == "master":
            fields["master"] = _parse_chain(key, value, base, problems)
        elif key == "stem_chains":
            fields["stem_chains"] = _parse_stem_chains(key, value, base, problems)
        elif key == "description":
            fields[key] = _expect_str(key, value, problems, allow_empty=True)
        else:
            fields[key] = _expect_str(key, value, problems, allow_empty=False)
    return fields


def _parse_section(section: str, table: object, problems: list) -> dict[str, object]:
    if not isinstance(table, dict):
        problems.append((section, f"must be a table ([{section}]), got {type(table).__name__}"))
        return {}
    fields: dict[str, object] = {}
    for key, value in table.items():
        where = f"{section}.{key}"
        if key not in _SECTIONS[section]:
            problems.append((where, f"unknown key; valid: {', '.join(_SECTIONS[section])}"))
        elif key == "template":
            fields["prompt_template"] = _parse_template(where, value, problems)
        elif key == "bit_depth":
            if not isinstance(value, int) or isinstance(value, bool) or value not in BIT_DEPTHS:
                problems.append((where, f"must be one of {', '.join(map(str, BIT_DEPTHS))}, got {value!r}"))
            fields[key] = value
        elif key == "stems":
            fields[key] = _parse_stems(where, value, problems)
        else:
            converted, reason = _convert_setting(key, value)
            if reason:
                problems.append((where, reason))
            fields[key] = converted
    return fields


def _parse_template(where: str, value: object, problems: list) -> str:
    template = _expect_str(where, value, problems, allow_empty=False)
    if not template:
        return ""
    dummy = {name: name for name in (*PLACEHOLDERS, "prompt")}
    try:
        _substitute(template, dummy, where)
    except BadRequest as exc:
        problems.append((where, exc.message.removeprefix(f"{where}: ")))
    if "prompt" not in {m.group(1) for m in _TOKEN.finditer(template)}:
        problems.append((where, "must contain {prompt} (the user's prompt)"))
    return template


def _parse_stems(where: str, value: object, problems: list) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(stem, str) for stem in value):
        problems.append((where, f"must be a list of strings from {', '.join(STEMS)}, got {value!r}"))
        return ()
    unknown = [stem for stem in value if stem not in STEMS]
    if unknown:
        problems.append((where, f"unknown stem(s) {', '.join(unknown)}; valid: {', '.join(STEMS)}"))
    if len(set(value)) != len(value):
        problems.append((where, "lists a stem twice"))
    return tuple(value)


def _parse_stem_chains(key: str, value: object, base: Path,
                       problems: list) -> dict[str, tuple[EffectSpec, ...]]:
    if not isinstance(value, dict):
        problems.append((key, f"must be a table of chains ([[{key}.drums]]), got {type(value).__name__}"))
        return {}
    chains = {}
    for stem, chain in value.items():
        if stem not in STEMS:
            problems.append((f"{key}.{stem}", f"unknown stem; valid: {', '.join(STEMS)}"))
            continue
        chains[stem] = _parse_chain(f"{key}.{stem}", chain, base, problems)
    return chains


def _parse_chain(key: str, value: object, base: Path, problems: list) -> tuple[EffectSpec, ...]:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        problems.append((key, f"must be an array of tables ([[{key}]]), got {type(value).__name__}"))
        return ()
    chain = []
    for index, table in enumerate(value):
        where = f"{key}[{index}]"
        plugin = table.get("plugin")
        if not isinstance(plugin, str):
            problems.append((f"{where}.plugin", f"needs plugin = \"<name>\", got {plugin!r}"))
            continue
        params = {name: param for name, param in table.items() if name != "plugin"}
        bad_types = [name for name, param in params.items() if not isinstance(param, (bool, int, float, str))]
        for name in bad_types:
            problems.append((f"{where}.{name}", f"must be a number, boolean or string, got {params[name]!r}"))
        if bad_types:
            continue
        if plugin == VST3 and isinstance(params.get("path"), str):
            params["path"] = str((base / params["path"]).resolve())
        for name in PATH_PARAMS.intersection(params):
            if isinstance(params[name], str):
                params[name] = str((base / params[name]).resolve())
        spec = EffectSpec(plugin, params)
        problems.extend((f"{where}.{name}", reason) for name, reason in check_effect(spec))
        chain.append(spec)
    return tuple(chain)


def _expect_str(key: str, value: object, problems: list, *, allow_empty: bool) -> str:
    if not isinstance(value, str) or (not allow_empty and not value.strip()):
        problems.append((key, f"must be a {'' if allow_empty else 'non-empty '}string, got {value!r}"))
        return ""
    return value


def _convert_setting(name: str, value: object) -> tuple[object, str]:
    """``value`` as request setting ``name`` (the schema's type and range) and "" if valid, else a reason."""
    spec = load_schema().setting(name)
    assert spec is not None, f"{name} is a preset setting but not a request setting in the schema"
    try:
        return spec.check(value), ""
    except InvalidValue as exc:
        return value, str(exc)


def _drop_repeated_phrases(text: str) -> str:
    seen: set[str] = set()
    phrases = []
    for phrase in text.split(","):
        key = " ".join(phrase.lower().split())
        if not key or key in seen:  # an empty prompt leaves an empty phrase: drop it, and repeats
            continue
        seen.add(key)
        phrases.append(phrase)
    return ",".join(phrases).strip()


def _format_bpm(bpm: float) -> str:
    """120.0 -> "120", 333.3 -> "333.3" (at most three decimals)."""
    return f"{bpm:.3f}".rstrip("0").rstrip(".")


def _substitute(text: str, values: Mapping[str, str], what: str) -> str:
    """Replace {name} from ``values``; {{ and }} are literal braces.

    Unlike ``str.format`` there is no attribute or index access, so a user's
    prompt cannot reach into objects.
    """
    if not isinstance(text, str):
        raise BadRequest(f"{what}: must be a string, got {type(text).__name__}")

    def replace(match: re.Match) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        name = match.group(1)
        if name is None:
            raise BadRequest(
                f"{what}: stray {token!r} at position {match.start()}; write {token * 2!r} for a literal brace"
            )
        if name not in values:
            valid = ", ".join("{" + key + "}" for key in values)
            raise BadRequest(f"{what}: unknown placeholder {{{name}}}; valid: {valid}")
        return values[name]

    return _TOKEN.sub(replace, text)
