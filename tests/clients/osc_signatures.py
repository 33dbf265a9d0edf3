"""What a patch may send, checked against osc_schema/continuo.json: an address and its OSC type tags.

Shared by the Pd and Max client tests: both patches declare the messages they can send as (address, types,
values or None); a message is valid when its types match the schema's arguments in order (optional ones may be
left off) and the rest are setting name/value pairs of the setting's type.
"""

from __future__ import annotations

import json
from pathlib import Path

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "osc_schema" / "continuo.json").read_text())


def signature_problems(address: str, types: str, names: tuple[str, ...] = ()) -> list[str]:
    """Why a message with these type tags (and, for settings pairs, these setting names) is not in the schema."""
    request = SCHEMA["requests"].get(address)
    if request is None:
        return [f"{address}: no such request in the schema"]
    args = request["args"]
    required = sum(1 for arg in args if "default" not in arg)
    positional = min(len(types), len(args))
    problems = []
    if positional < required:
        problems.append(f"{address}: {len(types)} arguments, the schema needs at least {required}")
    for arg, tag in zip(args, types):
        if arg["type"] != tag:
            problems.append(f"{address}: {arg['name']} is '{arg['type']}' in the schema, the patch sends '{tag}'")
    rest = types[len(args):]
    if rest and not request.get("settings"):
        problems.append(f"{address}: {len(rest)} arguments past the schema's {len(args)}, and it takes no settings")
    elif rest:
        if len(rest) % 2:
            problems.append(f"{address}: settings come in name/value pairs, got {len(rest)} values")
        for n, (name_tag, value_tag) in enumerate(zip(rest[::2], rest[1::2])):
            name = names[n] if n < len(names) else None
            setting = SCHEMA["settings"].get(name) if name else None
            if name_tag != "s":
                problems.append(f"{address}: setting name {n} is '{name_tag}', not a string")
            elif setting is None:
                problems.append(f"{address}: unknown setting {name!r}")
            elif setting["type"] != value_tag:
                problems.append(f"{address}: setting {name} is '{setting['type']}', the patch sends '{value_tag}'")
    return problems


def event_addresses() -> set[str]:
    """Every address the daemon sends."""
    return set(SCHEMA["events"])
