"""How real Max saves each object, and a check of a patch against it (Python standard library only).

The table, ``maxref.json`` beside this file, is the part of the maxref harvest that covers the objects build.py
uses. The harvest (``objects.json``) holds the inlet and outlet counts and outlet types that Max itself wrote, from
6,124 Max-saved public patches (41 repositories, Max 5 to 9); none of it comes from this project's builders. The
table's ``provenance`` names its source, the source's SHA-256 and the repositories; ``python clients/max/build.py
--vendor <objects.json>`` extracts it again. Per object it keeps what Max saved for each argument count
(``obs``: numinlets, numoutlets, outlettype, boxes, repositories, first and last Max major) and, where one fits, a
``rule`` that predicts the counts from the box text (the rule language: `predict`).

- `Table.expected`: the counts and outlet types build.py writes: the rule's where it is trusted, otherwise what
  Max versions nearest the patch's saved.
- `check_patch`: the same verdicts as maxref's ``check_counts.py`` (tests/clients/test_max.py proves they agree
  wherever ``../shared/maxref`` exists). ERROR: a known object's box matches neither its rule nor anything Max
  saved; an embedded patcher whose counts differ from its inlet/outlet boxes; a cord to a port the box lacks.
  WARN: an object or argument count never observed, or a weakly attested disagreement.
- Max recomputes counts when it loads a patch, so a wrong count rarely breaks one; a cord to a missing port does.

    python clients/max/maxref.py clients/max/continuo.maxpat clients/max/Continuo.amxd
"""

from __future__ import annotations

import argparse
import ast
import functools
import hashlib
import json
import re
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

TABLE_PATH = Path(__file__).resolve().parent / "maxref.json"
RULE_MIN_AGREE = 0.9
# counts set by a script, a loaded file or an abstraction, not by the box text: checked only when embedded
NOT_CHECKABLE = {"js", "jsui", "v8", "v8ui", "mxj", "mxj~", "poly~", "mc.poly~", "pfft~", "bpatcher", "rnbo~",
                 "mc.rnbo~", "gen~", "mc.gen~", "gen", "jit.gen", "jit.pix", "jit.gl.pix", "p", "patcher", "jweb"}
# objects that take no @attributes: Max counts "@foo" as an ordinary argument
NO_ATTR_OBJECTS = {"t", "trigger", "route", "routepass", "pack"}
GEN_HOSTS = {"gen~", "gen", "jit.gen", "jit.pix", "jit.gl.pix", "mc.gen~"}
JIT_GEN_HOSTS = {"jit.gen", "jit.pix", "jit.gl.pix"}  # these add a dump outlet
RNBO_HOSTS = {"rnbo~", "mc.rnbo~"}


class UnknownObject(KeyError):
    """An object (or argument count) the table has never seen Max save."""


@dataclass(frozen=True)
class Finding:
    level: str  # "ERROR" or "WARN"
    message: str

    def __str__(self) -> str:
        return f"{self.level} {self.message}"


# -- reading boxes ----------------------------------------------------------------------------------------------
def tokenize(text: str) -> list[str]:
    """Max box text as atoms: double quotes group, a backslash escapes."""
    tokens, current, quoted, escaped, have = [], [], False, False, False
    for char in text:
        if escaped:
            current.append(char)
            escaped, have = False, True
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted, have = not quoted, True
        elif char.isspace() and not quoted:
            if have:
                tokens.append("".join(current))
                current, have = [], False
        else:
            current.append(char)
            have = True
    if have:
        tokens.append("".join(current))
    return tokens


def is_attribute(token: str) -> bool:
    return len(token) > 1 and token[0] == "@" and not token[1].isdigit() and token[1] != "-"


@dataclass(frozen=True)
class Box:
    """The facts about one box that the table is keyed on, and the counts the file declares."""

    maxclass: str
    name: str
    args: tuple[str, ...]
    attrs: dict[str, list[str]]
    inlets: object
    outlets: object
    types: list[str]
    namespace: str = "box"

    @classmethod
    def of(cls, box: dict, namespace: str = "box") -> Box:
        maxclass = box.get("maxclass", "")
        text = box.get("text", "") if isinstance(box.get("text", ""), str) else ""
        name, args, attrs = maxclass, [], {}
        if maxclass == "newobj":
            tokens = tokenize(text)
            name = tokens[0] if tokens else ""
            if name in NO_ATTR_OBJECTS:
                args = tokens[1:]
            else:
                current = None
                for token in tokens[1:]:
                    if is_attribute(token):
                        current = token[1:]
                        attrs[current] = []
                    elif current is None:
                        args.append(token)
                    else:
                        attrs[current].append(token)
        types = box.get("outlettype") if isinstance(box.get("outlettype"), list) else []
        return cls(maxclass, name, tuple(args), attrs, box.get("numinlets"), box.get("numoutlets"),
                   [t if isinstance(t, str) else str(t) for t in types], namespace)

    @property
    def key(self) -> str:
        """The table's key: the object name, prefixed gen: or rnbo: inside gen~ and RNBO code."""
        ns = self.namespace
        if ns in (None, "", "box"):
            return self.name
        if ns.startswith(("dsp.gen", "jit.gen", "jit.pix", "gen")):
            return "gen:" + self.name
        if ns.startswith("rnbo"):
            return "rnbo:" + self.name
        return f"{ns}:{self.name}"


def structural_io(box: dict, record: Box) -> tuple[int, int] | None:
    """(inlets, outlets) of a box that embeds its patcher (p, bpatcher: its inlet/outlet boxes; gen~: its
    highest in/out N), else None."""
    sub = box.get("patcher")
    if not isinstance(sub, dict) or record.namespace not in ("box", None, ""):
        return None
    inner = [entry.get("box", {}) for entry in sub.get("boxes", [])]
    if record.name in ("p", "patcher") or record.maxclass == "bpatcher":
        return (sum(b.get("maxclass") == "inlet" for b in inner), sum(b.get("maxclass") == "outlet" for b in inner))
    if record.name in ("gen~", "gen") or record.name in JIT_GEN_HOSTS:
        highest = {"in": 0, "out": 0}
        for b in inner:
            tokens = tokenize(b.get("text", "") or "") if b.get("maxclass") == "newobj" else []
            if tokens and tokens[0] in highest:
                index = int(tokens[1]) if len(tokens) > 1 and tokens[1].isdigit() else 1
                highest[tokens[0]] = max(highest[tokens[0]], index)
        extra = 1 if record.name in JIT_GEN_HOSTS else 0
        return max(highest["in"], 1), max(highest["out"], 1) + extra
    return None


def walk(patcher: dict, namespace: str = "box", path: str = "top") -> Iterator[tuple[str, dict, Box]]:
    """(path, box, record) for every box, subpatchers included."""
    namespace = patcher.get("classnamespace", namespace) or namespace
    for entry in patcher.get("boxes", []):
        box = entry.get("box") if isinstance(entry, dict) else None
        if not isinstance(box, dict):
            continue
        record = Box.of(box, namespace)
        yield path, box, record
        if isinstance(box.get("patcher"), dict):
            inner = "box"
            if record.name in GEN_HOSTS:
                inner = "dsp.gen"
            elif record.name in RNBO_HOSTS:
                inner = "rnbo"
            elif namespace != "box" and record.name in ("p", "patcher"):
                inner = namespace
            yield from walk(box["patcher"], inner, f"{path}/{box.get('id', '?')}")


# -- the rule language ----------------------------------------------------------------------------------------
_ALLOWED = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Compare, ast.IfExp, ast.Call, ast.Name, ast.Load,
            ast.Constant, ast.Add, ast.Sub, ast.Mult, ast.FloorDiv, ast.USub, ast.Lt, ast.LtE, ast.Gt, ast.GtE,
            ast.Eq, ast.NotEq, ast.BoolOp, ast.And, ast.Or, ast.Is, ast.IsNot)
_NAMES = {"n", "a0", "a1", "f", "ni", "chans", "dv", "o2", "nk", "ia", "max", "min", "d"}
_DOLLAR = re.compile(r"\$[ifsvIFSV](\d+)")
_FORMAT = re.compile(r"%[-+ #0]*\d*(?:\.\d+)?[a-zA-Z]")
_INT = re.compile(r"^[-+]?\d+$")
_FLOAT = re.compile(r"^[-+]?(\d+\.\d*|\.\d+)([eE][-+]?\d+)?$")


def _variables(record: Box) -> dict:
    """n positional arguments; a0/a1 the first two as ints; f printf conversions; ni int arguments; chans the
    @chans value; dv the highest $i1/$f2 index; o2 an `out2` argument; nk arguments with ':'; ia any @attribute."""
    args = record.args

    def as_int(index: int) -> int | None:
        try:
            return int(args[index]) if len(args) > index else None
        except ValueError:
            return None

    try:
        chans = int(record.attrs.get("chans", [None])[0])
    except (TypeError, ValueError, IndexError):
        chans = None
    return {"n": len(args), "a0": as_int(0), "a1": as_int(1),
            "f": sum(len(_FORMAT.findall(a.replace("%%", ""))) for a in args),
            "ni": sum(1 for a in args if _INT.match(a)), "chans": chans,
            "dv": max([int(m) for a in args for m in _DOLLAR.findall(a)] or [0]),
            "o2": 1 if "out2" in args else 0, "nk": sum(1 for a in args if ":" in a),
            "ia": 1 if record.attrs else 0}


@functools.cache
def _compile(expression: str):
    """A rule expression compiled, once every node is one the rule language allows."""
    tree = ast.parse(expression, mode="eval")
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED) or (isinstance(node, ast.Name) and node.id not in _NAMES):
            raise ValueError(f"rule expression not allowed: {expression!r}")
    return compile(tree, "<rule>", "eval")


def _evaluate(expression: object, env: dict) -> int | None:
    names = dict(env, max=max, min=min, d=lambda value, default: default if value is None else value)
    try:
        value = eval(_compile(str(expression)), {"__builtins__": {}}, names)  # only the names above
    except TypeError:  # e.g. a0 is None in arithmetic
        return None
    return int(value) if value is not None else None


def _argument_class(token: str) -> str:
    return "i" if _INT.match(token) else "f" if _FLOAT.match(token) else "s"


def _expected_types(template: object, record: Box, outlets: int | None) -> list[str] | None:
    """A rule's outlet types: a list; {"each": T} (+ "last"/"first"); or {"map": "args"}, one outlet per
    argument typed by its table, int/float class or the argument itself ("=arg", as trigger does)."""
    if template is None or outlets is None:
        return None
    if isinstance(template, list):
        return list(template)
    if "map" in template:
        if not record.args and "noargs" in template:
            return list(template["noargs"])
        if any(a.startswith("#") for a in record.args):
            return None  # Max saves the types of the resolved #N values
        table, classes, types = template.get("table", {}), template.get("classes", {}), []
        for arg in record.args:
            if arg in table:
                types.append(table[arg])
            elif _argument_class(arg) in classes:
                types.append(classes[_argument_class(arg)])
            elif template.get("default") == "=arg":
                types.append("" if arg.startswith(("$", "get")) else arg)
            else:
                types.append(template.get("default", ""))
        return types + list(template.get("extra", []))
    each = template.get("each", "")
    if outlets <= 0:
        return []
    if "last" in template:
        return [each] * (outlets - 1) + [template["last"]]
    if "first" in template:
        return [template["first"]] + [each] * (outlets - 1)
    return [each] * outlets


def predict(rule: dict, record: Box) -> tuple[int | None, int | None, list[str] | None]:
    """(inlets, outlets, types) a rule predicts; None where it predicts nothing."""
    env = _variables(record)
    inlets = _evaluate(rule["in"], env) if rule.get("in") is not None else None
    outlets = _evaluate(rule["out"], env) if rule.get("out") is not None else None
    return inlets, outlets, _expected_types(rule.get("types"), record, outlets if outlets is not None
                                            else record.outlets)


def version_key(version: object) -> tuple[int, int]:
    """(major, minor) of '8.6.4'; a patch without appversion is Max 5."""
    if version in ("none", None, ""):
        return 5, 0
    parts = str(version).split(".")
    return int(parts[0]), int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def version_of(patch: dict) -> str:
    appversion = patch.get("patcher", {}).get("appversion")
    if isinstance(appversion, dict) and "major" in appversion:
        return f"{appversion.get('major')}.{appversion.get('minor', 0)}.{appversion.get('revision', 0)}"
    return "none"


# -- the table --------------------------------------------------------------------------------------------------
@dataclass
class Table:
    """objects[name] = {"obs": {nargs: [[in, out, types, boxes, repos, first major, last major], ...]},
    "rule": {...}, "repos": ...}, as in the maxref harvest."""

    objects: dict[str, dict]
    attribute_effects: dict[str, list]
    provenance: dict

    @classmethod
    def load(cls, path: Path = TABLE_PATH) -> Table:
        doc = json.loads(Path(path).read_text())
        return cls(doc["objects"], doc.get("attribute_effects", {}), doc.get("provenance", {}))

    def rule(self, entry: dict, version: str) -> dict | None:
        """The rule to use for a Max version: trusted (agrees with >= 90 % of the corpus); a curated rule with a
        `since` version gives way to its legacy variant in older patches."""
        rule = entry.get("rule")
        if not rule or rule.get("agree", 0) < RULE_MIN_AGREE:
            return None
        if rule.get("source") != "curated":
            return rule
        if rule.get("since") and version_key(version) < version_key(rule["since"]):
            return rule.get("legacy")
        return {k: rule[k] for k in ("in", "out", "types") if k in rule}

    @staticmethod
    def observations(entry: dict, nargs: int, version: str) -> tuple[list[list], list[list], bool]:
        """(usable, all, truncated) observations for an argument count: a Max 6+ patch is not excused by a
        variant only ever saved by Max 5."""
        raw = entry["obs"].get(str(nargs), [])
        every = [x for x in raw if x[0] != "more"]
        modern = version_key(version) >= (6, 0)
        return [x for x in every if not (modern and x[6] < 6)], every, any(x[0] == "more" for x in raw)

    def expected(self, box: dict, version: str) -> tuple[int, int, list[str]]:
        """(numinlets, numoutlets, outlettype) for a box as Max `version` saves it. UnknownObject when the table
        has never seen the object, or this argument count, saved by Max."""
        record = Box.of(box)
        entry = self.objects.get(record.key)
        if entry is None:
            raise UnknownObject(f"{record.key!r} is not in {TABLE_PATH.name}: no Max-saved patch has it; "
                                "re-extract with python clients/max/build.py --vendor <objects.json>")
        usable, _, _ = self.observations(entry, len(record.args), version)
        rule = self.rule(entry, version)
        if rule is not None:
            inlets, outlets, types = predict(rule, record)
            if inlets is not None and outlets is not None:
                if types is None:
                    same = [x for x in usable if x[0] == inlets and x[1] == outlets]
                    types = list(nearest(same, version)[2]) if same else [""] * outlets
                return inlets, outlets, types
        if not usable:
            raise UnknownObject(f"{record.key!r} with {len(record.args)} arguments: never saved by Max "
                                f"{version_key(version)[0]}")
        inlets, outlets, types = nearest(usable, version)[:3]
        return inlets, outlets, list(types)

    def check_box(self, version: str, record: Box, box: dict) -> list[tuple[str, str]]:
        """(level, message) for one box: check_counts.py's verdicts."""
        found = []
        i, o, t = record.inlets, record.outlets, record.types
        if not isinstance(i, int) or not isinstance(o, int):
            return [("ERROR", "numinlets/numoutlets missing")]
        if o and len(t) != o:
            found.append(("ERROR", f"outlettype has {len(t)} entries for {o} outlets"))
        embedded = structural_io(box, record)
        if embedded is not None:
            if embedded != (i, o):
                level = "ERROR" if record.name in ("p", "patcher", "bpatcher") or record.maxclass == "bpatcher" \
                    else "WARN"
                found.append((level, f"embedded patcher has {embedded[0]} inlet / {embedded[1]} outlet boxes "
                                     f"but box says {i} in / {o} out"))
            return found
        key = record.key
        if key in NOT_CHECKABLE:
            return found
        entry = self.objects.get(key)
        if entry is None:
            return found + [("WARN", "object never observed in the corpus")]
        rule = self.rule(entry, version)
        usable, every, truncated = self.observations(entry, len(record.args), version)
        total = sum(x[3] for x in every) or 1
        predicted = predict(rule, record) if rule else (None, None, None)
        rule_counts_ok = rule is not None and predicted[0] in (None, i) and predicted[1] in (None, o)
        rule_types_ok = rule_counts_ok and (predicted[2] is None or predicted[2] == t)
        types_by_rule_only = bool(rule and isinstance(rule.get("types"), dict) and "map" in rule["types"])
        match_counts = [x for x in usable if x[0] == i and x[1] == o]
        match_types = [x for x in match_counts if x[2] == t] if not types_by_rule_only else []
        if rule is None and not usable:
            if every:
                return found + [("WARN", f"{len(record.args)} args: only observed in Max 5 files")]
            seen = ", ".join(sorted(entry["obs"], key=int))
            return found + [("WARN", f"{len(record.args)} positional args never observed (seen: {seen})")]
        for effect in self.attribute_effects.get(key, []):  # an @attribute known to change the counts
            if effect["nargs"] == len(record.args) and effect["attr"][1:] in record.attrs \
                    and effect["counts_with"] == [i, o]:
                match_counts = match_counts or [[i, o, t, 0, 0, 0, 0]]
                match_types = match_types or match_counts
        curated = (entry.get("rule") or {}).get("source") == "curated"
        notes = []
        if entry["repos"] < 2 and not curated:
            notes.append(f"weakly attested: {entry['repos']} repositor{'y' if entry['repos'] == 1 else 'ies'}")
        if truncated and not rule_counts_ok:
            notes.append(f"only the {len(every)} most common variants are stored")
        arg_free = rule is not None and all(str(rule.get(k, "")).isdigit() for k in ("in", "out"))
        if any(a.startswith("#") for a in record.args) and not arg_free:
            notes.append("unresolved #N argument: Max saves the counts of the instance it resolved")
        newest = max([x[6] for obs in entry["obs"].values() for x in obs if x[0] != "more"] or [0])
        if not curated and version_key(version)[0] > newest:
            notes.append(f"no observation from Max {version_key(version)[0]} (newest: Max {newest})")
        level = "WARN" if notes else "ERROR"
        expect = []
        if rule is not None:
            types = json.dumps(predicted[2]) if predicted[2] is not None else ""
            expect.append(f"rule {({k: rule.get(k) for k in ('in', 'out')})} -> "
                          f"{predicted[0]} in / {predicted[1]} out {types}")
        if usable:
            expect.append("observed " + "; ".join(f"{x[0]}/{x[1]} {json.dumps(x[2])} x{x[3]}" for x in usable[:4]))
        why = f" [{'; '.join(notes)}]" if notes else ""
        if not (rule_counts_ok or match_counts):
            found.append((level, f"counts {i} in / {o} out disagree with {' | '.join(expect)}{why}"))
        elif not (rule_types_ok or match_types):
            found.append((level, f"outlettype {json.dumps(t)} disagrees with {' | '.join(expect)}{why}"))
        elif not rule_types_ok and match_types and max(x[3] for x in match_types) / total < 0.01:
            found.append(("WARN", f"matches only a rare observation ({' | '.join(expect)})"))
        return found


def extract(doc: dict, keys: set[str], source: Path) -> dict:
    """The compact table: the harvest's entries for `keys`, verbatim, with where they came from."""
    missing = sorted(key for key in keys if key not in doc["objects"])
    if missing:
        raise UnknownObject(f"not in {source}: {missing}; no Max-saved patch in the harvest has them")
    return {
        "provenance": {
            "source": "maxref/objects.json, the shared maxref harvest (../shared/maxref/ in this workplace), "
                      f"{source.stat().st_size} bytes",
            "source_sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
            "extracted_by": "python clients/max/build.py --vendor <objects.json>: the objects build.py uses",
            "about": doc.get("about", ""), "stats": doc.get("stats", {}),
            "box_versions": doc.get("box_versions", {}), "repositories": doc.get("repositories", {}),
        },
        "aliases": doc.get("aliases", {}),
        "attribute_effects": {key: value for key, value in doc.get("attribute_effects", {}).items() if key in keys},
        "objects": {key: doc["objects"][key] for key in sorted(keys)},
    }


def nearest(observations: list[list], version: str) -> list:
    """The observation saved by the Max versions nearest `version`; the most common among equals."""
    major = version_key(version)[0]
    return max(observations, key=lambda x: (-max(x[5] - major, major - x[6], 0), x[3]))


# -- a whole patch ----------------------------------------------------------------------------------------------
def check_patch(patch: dict, table: Table, label: str = "", max_version: str | None = None
                ) -> tuple[str, list[Finding]]:
    """(the Max version it was checked as, findings) for every box and every cord, subpatchers included."""
    found = []
    version = max_version or version_of(patch)
    top = patch.get("patcher", patch)
    if version == "none":
        found.append(Finding("WARN", f"{label}: no appversion, checked as Max 5 (see --max-version)"))
        version = "5.0"
    for path, box, record in walk(top):
        text = box.get("text", "") if isinstance(box.get("text", ""), str) else ""
        for level, message in table.check_box(version, record, box):
            found.append(Finding(level, f"{label}:{path}:{box.get('id')} {(text or record.maxclass)[:60]!r}: "
                                        f"{message}"))
    stack = [("top", top)]
    while stack:
        path, patcher = stack.pop()
        boxes = {}
        for entry in patcher.get("boxes", []):
            box = entry.get("box", {})
            boxes[box.get("id")] = box
            if isinstance(box.get("patcher"), dict):
                stack.append((f"{path}/{box.get('id')}", box["patcher"]))
        for entry in patcher.get("lines", []):
            line = entry.get("patchline", {})
            try:
                (source, outlet), (sink, inlet) = line["source"][:2], line["destination"][:2]
            except (KeyError, ValueError, TypeError):
                found.append(Finding("ERROR", f"{label}:{path}: malformed patchline {line!r}"))
                continue
            if source not in boxes or sink not in boxes:
                found.append(Finding("ERROR", f"{label}:{path}: patchline {source} -> {sink} dangles"))
                continue
            if outlet >= boxes[source].get("numoutlets", 0):
                found.append(Finding("ERROR", f"{label}:{path}: patchline from {source} outlet {outlet}, box has "
                                              f"{boxes[source].get('numoutlets')} outlets"))
            if inlet >= boxes[sink].get("numinlets", 0):
                found.append(Finding("ERROR", f"{label}:{path}: patchline to {sink} inlet {inlet}, box has "
                                              f"{boxes[sink].get('numinlets')} inlets"))
    return version, found


def _frozen_entries(data: bytes) -> Iterator[tuple[str, str, bytes]]:
    """(file name, type, bytes) of the files a frozen device's 'mx@c' blob embeds (its 'dlst' directory)."""
    at = data.rfind(b"dlst")
    if at < 0:
        return
    end, offset = at + struct.unpack(">I", data[at + 4:at + 8])[0], at + 8
    while offset + 8 <= min(end, len(data)):
        tag, length = data[offset:offset + 4], struct.unpack(">I", data[offset + 4:offset + 8])[0]
        if length < 8:
            return
        if tag == b"dire":
            fields, inner = {}, offset + 8
            while inner + 8 <= offset + length:
                size = struct.unpack(">I", data[inner + 4:inner + 8])[0]
                if size < 8:
                    break
                fields[data[inner:inner + 4].decode("latin1")] = data[inner + 8:inner + size]
                inner += size
            try:
                name = fields.get("fnam", b"").split(b"\0")[0].decode("utf-8", "replace")
                size, start = struct.unpack(">I", fields["sz32"])[0], struct.unpack(">I", fields["of32"])[0]
                yield name, fields.get("type", b"").decode("latin1"), data[start:start + size]
            except (KeyError, struct.error):
                pass
        offset += length


def load_patches(data: bytes, name: str = "") -> list[tuple[str, dict]]:
    """(label, patch) for a .maxpat / .maxhelp / .amxd: the file, then (frozen device) the patchers it embeds."""
    if data[:4] == b"ampf":
        chunks, offset = {}, 0
        while offset + 8 <= len(data):
            size = struct.unpack("<I", data[offset + 4:offset + 8])[0]
            chunks[data[offset:offset + 4].decode("latin1")] = data[offset + 8:offset + 8 + size]
            offset += 8 + size
        payload = chunks.get("ptch")
        if payload is None:
            raise ValueError("amxd without a ptch chunk")
        if payload[:4] == b"mx@c":
            found = [(name, _json(payload[16:]))]
            for file_name, kind, blob in _frozen_entries(payload):
                if kind == "JSON" and file_name.endswith((".maxpat", ".maxhelp")):
                    found.append((f"{name}#{file_name}", _json(blob)))
            return found
        data = payload
    return [(name, _json(data))]


def _json(data: bytes) -> dict:
    """The JSON object at the start of `data` (Max ends a ptch chunk with a NUL; files may start with a BOM)."""
    text = data.decode("utf-8", "replace").lstrip("\ufeff \t\r\n")
    return json.JSONDecoder(strict=False).raw_decode(text)[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check patches against how real Max saves each object.")
    parser.add_argument("patches", nargs="+", type=Path)
    parser.add_argument("--table", type=Path, default=TABLE_PATH, help="maxref.json, or the full objects.json")
    parser.add_argument("--max-version", help="check as if saved by this Max version (default: the appversion)")
    parser.add_argument("-q", "--quiet", action="store_true", help="do not print warnings")
    args = parser.parse_args(argv)
    table, errors = Table.load(args.table), 0
    for path in args.patches:
        for label, patch in load_patches(path.read_bytes(), str(path)):
            version, found = check_patch(patch, table, label, args.max_version)
            count = sum(f.level == "ERROR" for f in found)
            errors += count
            for finding in found:
                if finding.level == "ERROR" or not args.quiet:
                    print(finding)
            print(f"{'FAIL' if count else 'ok'}: {label} (Max {version}): {count} error(s), "
                  f"{len(found) - count} warning(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
