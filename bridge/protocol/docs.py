"""Render docs/osc.md from osc_schema/continuo.json.

    python -m bridge.protocol.docs           # rewrite docs/osc.md
    python -m bridge.protocol.docs --check   # exit 1 if docs/osc.md is stale

tests/test_protocol.py fails while the committed file differs from the rendering.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bridge.protocol.schema import ArgSpec, MessageSpec, Schema, load_schema

DOCS_PATH = Path(__file__).resolve().parents[2] / "docs" / "osc.md"
_TYPES = {"s": "string", "i": "int32", "f": "float32"}


def render_markdown(schema: Schema) -> str:
    """The whole reference as Markdown."""
    limits = f"every message the daemon sends is under {schema.max_message_bytes} bytes"
    lines = [
        "# Continuo OSC reference",
        "",
        "<!-- Generated from osc_schema/continuo.json by `python -m bridge.protocol.docs`; do not edit. -->",
        "",
        f"Protocol version {schema.version}. Requests go to the daemon's UDP port; "
        f"events go to the reply port given in `/continuo/hello`. Limits: {limits}; bundles may nest "
        f"{schema.max_bundle_depth} deep.",
        "",
        "Types: " + _escape(schema.raw["format"]["types"]),
        "",
        "## Requests (client to daemon)",
        "",
        "| address | arguments | replies |",
        "|---|---|---|",
    ]
    for spec in schema.requests.values():
        replies = ", ".join(f"`{r}`" for r in spec.replies) or "none"
        lines.append(f"| [`{spec.address}`](#{_anchor(spec.address)}) | {_escape(spec.signature())} | {replies} |")
    for spec in schema.requests.values():
        lines += _message_section(spec, request=True)
    lines += [
        "",
        "## Settings",
        "",
        "Optional name/value pairs after the positional arguments of requests marked "
        "*takes settings*, e.g. `/continuo/generate job-1 default \"warm piano\" 8.0 temperature 1.0 cfg 3.0`. "
        "Each setting at most once; a job's settings override its preset and the session context.",
        "",
        "| setting | type | valid values | example | meaning |",
        "|---|---|---|---|---|",
    ]
    for setting in schema.settings.values():
        names = f"`{setting.name}`" + "".join(f" (alias `{a}`)" for a in setting.aliases)
        lines.append(
            f"| {names} | {_TYPES[setting.type]} | {_escape(setting.constraint_text())} "
            f"| `{setting.example}` | {_escape(setting.description)} |"
        )
    lines += ["", "## Events (daemon to client)"]
    for spec in schema.events.values():
        lines += _message_section(spec, request=False)
    lines += ["", "## Error codes", "", "Second argument of `/continuo/error`.", "", "| code | meaning |", "|---|---|"]
    lines += [f"| `{code}` | {_escape(meaning)} |" for code, meaning in schema.error_codes.items()]
    return "\n".join(lines) + "\n"


def _message_section(spec: MessageSpec, *, request: bool) -> list[str]:
    lines = ["", f"### `{spec.address}`", "", _escape(spec.description), ""]
    if request:
        lines += [f"Handler op `{spec.op}`." + (" Takes settings." if spec.settings else ""), ""]
    if spec.args:
        if request:
            lines += ["| # | argument | type | valid values | default | meaning |", "|---|---|---|---|---|---|"]
        else:
            lines += ["| # | argument | type | valid values | meaning |", "|---|---|---|---|---|"]
        lines += [_arg_row(i, arg, request=request) for i, arg in enumerate(spec.args, 1)]
        lines.append("")
    else:
        lines += ["No arguments.", ""]
    if request:
        replies = ", ".join(f"`{r}`" for r in spec.replies) or "none"
        lines += [f"Replies: {replies}.", ""]
    lines.append(f"Example: `{spec.example_text()}`")
    return lines


def _arg_row(index: int, arg: ArgSpec, *, request: bool) -> str:
    valid = arg.constraint_text()
    if arg.truncate:
        valid += "; may be truncated, ending in …"
    cells = [str(index), f"`{arg.name}`", _TYPES[arg.type], _escape(valid)]
    if request:
        cells.append(f"`{arg.default!r}`" if arg.optional else "required")
    cells.append(_escape(arg.description))
    return "| " + " | ".join(cells) + " |"


def _anchor(address: str) -> str:
    return address.replace("/", "")


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bridge.protocol.docs", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the docs file is stale, write nothing")
    parser.add_argument("--output", type=Path, default=DOCS_PATH, help=f"default {DOCS_PATH}")
    options = parser.parse_args(argv)
    text = render_markdown(load_schema())
    if options.check:
        current = options.output.read_text(encoding="utf-8") if options.output.exists() else ""
        if current != text:
            print(f"{options.output} is stale; run python -m bridge.protocol.docs", file=sys.stderr)
            return 1
        return 0
    options.output.write_text(text, encoding="utf-8")
    print(f"wrote {options.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
