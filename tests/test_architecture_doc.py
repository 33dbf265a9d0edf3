"""docs/ARCHITECTURE.md stays true: what it names exists, its first screen names the whole house, it stays inside.

References are `path.py:Name` or `path.py:Class.attribute`, resolved by parsing the file with ast (never by
importing it), so a name counts only where it is defined: a def, a class, an assignment, not an import.
The first screen (everything above "## Decisions") holds the tree of the house in its first code block:
one entry per line at two indentation levels, continuation lines indented further.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from tests.test_layout import WINGS

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "ARCHITECTURE.md"
FIRST_SCREEN_END = "\n## Decisions"
SCHEMA = ROOT / "osc_schema" / "continuo.json"
SCREEN_LINES = 60
TREE_PACKAGES = ("bridge", "inference")  # every module of these is named in the tree

REFERENCE = re.compile(r"(?<![\w./-])((?:[\w-]+/)+[\w-]+\.py):([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)")
REPO_PATH = re.compile(r"(?<![\w./<*~-])((?:bridge|inference|tests|docs|osc_schema|presets)/[\w/.-]*?"
                       r"\.(?:py|md|json|toml|cpp))(?![\w/])")
LINK = re.compile(r"\]\(([^)\s]+)\)")
ORDER = re.compile(r"^Import order, bottom to top: (.+)\.$", re.M)
TREE_ENTRY = re.compile(r"^( {0,2})(\S+)(?: {2,}(.*))?$")
MODULE_NAME = re.compile(r"(?<![\w./])(\w+\.py)(?!\w)")
OSC_ADDRESS = re.compile(r"(?<![\w/])/continuo(?:/[a-z_]+)+")


def first_screen(text: str) -> str:
    head, found, _ = text.partition(FIRST_SCREEN_END)
    if not found:
        raise AssertionError(f"no {FIRST_SCREEN_END.strip()!r} heading: the first screen has no end")
    return head


def defined_names(body: list[ast.stmt]) -> dict[str, ast.stmt]:
    """What a module or class body defines (also under an if/try at that level); imports do not count."""
    names: dict[str, ast.stmt] = {}
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names[node.name] = node
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                elements = target.elts if isinstance(target, (ast.Tuple, ast.List)) else [target]
                names.update((e.id, node) for e in elements if isinstance(e, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = node
        elif isinstance(node, (ast.If, ast.Try)):
            nested = node.body + node.orelse + getattr(node, "finalbody", [])
            nested += [stmt for handler in getattr(node, "handlers", []) for stmt in handler.body]
            names.update(defined_names(nested))
    return names


def resolve(root: Path, path: str, dotted: str) -> str | None:
    """None when path exists and defines dotted (Name, or Class.attr); else what is wrong."""
    file = root / path
    if not file.is_file():
        return f"{path}:{dotted}: there is no file {path}"
    scope = defined_names(ast.parse(file.read_text(), filename=str(file)).body)
    parts = dotted.split(".")
    for index, part in enumerate(parts):
        node = scope.get(part)
        owner = ".".join(parts[:index]) or path
        if node is None:
            return f"{path}:{dotted}: {owner} defines no {part}"
        if index < len(parts) - 1:
            if not isinstance(node, ast.ClassDef):
                return f"{path}:{dotted}: {part} is not a class"
            scope = defined_names(node.body)
    return None


def stale_references(text: str, root: Path) -> list[str]:
    found = sorted({(m.group(1), m.group(2)) for m in REFERENCE.finditer(text)})
    return [problem for path, dotted in found if (problem := resolve(root, path, dotted)) is not None]


def missing_paths(text: str, root: Path) -> list[str]:
    """Repository files the text names (bridge/x.py, docs/osc.md, ...) that do not exist."""
    return sorted({m.group(1) for m in REPO_PATH.finditer(text) if not (root / m.group(1)).is_file()})


def outside_pointers(text: str, doc_dir: Path, root: Path) -> list[str]:
    """Anything that leaves the repository: a ../ path, or a relative link that does not land inside it."""
    problems = [f"line {n}: {line.strip()}" for n, line in enumerate(text.splitlines(), 1) if "../" in line]
    for target in LINK.findall(text):
        if target.startswith(("http://", "https://", "#")):
            continue
        resolved = (doc_dir / target.split("#")[0]).resolve()
        if not resolved.is_relative_to(root.resolve()) or not resolved.exists():
            problems.append(f"link {target}: not a file in the repository")
    return problems


def tree(text: str) -> dict[str, str]:
    """The first screen's first code block as {entry path: its description, continuation lines included}."""
    blocks = re.findall(r"^```\n(.*?)^```", first_screen(text), flags=re.S | re.M)
    if not blocks:
        raise AssertionError("the first screen has no code block with the tree of the house")
    entries: dict[str, str] = {}
    top = current = ""
    for line in blocks[0].splitlines():
        match = TREE_ENTRY.match(line)
        if match is None:  # a continuation line
            entries[current] += " " + line.strip()
            continue
        indent, name, description = match.groups()
        if indent:
            current = top + name
        else:
            top = current = name
        entries[current] = description or ""
    return entries


def unnamed_in_tree(text: str, root: Path) -> list[str]:
    """Wings and modules of bridge/ and inference/ that the tree leaves out."""
    entries = tree(text)
    missing = []
    for package in TREE_PACKAGES:
        for file in sorted((root / package).rglob("*.py")):
            relative = file.relative_to(root)
            if file.name == "__init__.py":
                folder = relative.parent.as_posix() + "/"
                if folder not in entries:
                    missing.append(folder)
                continue
            folder = relative.parent.as_posix() + "/"
            described = entries.get(folder, "")
            if relative.as_posix() not in entries and not re.search(rf"(?<![\w./]){re.escape(file.name)}(?!\w)",
                                                                      described):
                missing.append(relative.as_posix())
    return missing


def stale_in_tree(text: str, root: Path) -> list[str]:
    """Entries and module names in the tree that are not in the repository."""
    stale = []
    for entry, description in tree(text).items():
        if entry.split("/")[0] not in TREE_PACKAGES:
            continue
        if not (root / entry).exists():
            stale.append(entry)
        if entry.endswith("/"):
            names = MODULE_NAME.findall(description)
            stale.extend(entry + name for name in names if not (root / entry / name).is_file())
    return sorted(stale)


def unknown_addresses(text: str, schema_path: Path) -> list[str]:
    """OSC addresses the text names that the schema has neither as a request nor as an event."""
    schema = json.loads(schema_path.read_text())
    known = set(schema["requests"]) | set(schema["events"])
    return sorted(set(OSC_ADDRESS.findall(text)) - known)


def stated_order(text: str) -> list[str]:
    match = ORDER.search(first_screen(text))
    if match is None:
        raise AssertionError("the first screen has no line 'Import order, bottom to top: a, b, ...'")
    return [name.strip() for name in match.group(1).split(",")]


def layout_order() -> list[str]:
    """tests/test_layout.py's WINGS, bottom to top, as the last part of each wing's name."""
    return [wing[-1].rsplit(".", 1)[-1] for wing in WINGS]


# -- the document -----------------------------------------------------------------------------------
def test_every_reference_names_a_definition_that_exists():
    text = DOC.read_text()
    assert len(REFERENCE.findall(text)) >= 30, "the request path alone names more hops than this"
    stale = stale_references(text, ROOT)
    assert stale == [], "docs/ARCHITECTURE.md names what is not there:\n" + "\n".join(stale)


def test_every_repository_path_exists():
    missing = missing_paths(DOC.read_text(), ROOT)
    assert missing == [], "docs/ARCHITECTURE.md names files that are not there:\n" + "\n".join(missing)


def test_nothing_points_outside_the_repository():
    assert outside_pointers(DOC.read_text(), DOC.parent, ROOT) == []


def test_every_osc_address_is_in_the_schema():
    assert unknown_addresses(DOC.read_text(), SCHEMA) == []


def test_the_first_screen_names_every_wing_and_module():
    missing = unnamed_in_tree(DOC.read_text(), ROOT)
    assert missing == [], "add to the tree on the first screen of docs/ARCHITECTURE.md:\n" + "\n".join(missing)


def test_the_tree_names_nothing_that_is_gone():
    stale = stale_in_tree(DOC.read_text(), ROOT)
    assert stale == [], "the tree in docs/ARCHITECTURE.md names what is gone:\n" + "\n".join(stale)


def test_the_first_screen_states_the_import_order_the_layout_test_enforces():
    assert stated_order(DOC.read_text()) == layout_order()


def test_the_first_screen_fits_a_screen():
    assert len(first_screen(DOC.read_text()).splitlines()) <= SCREEN_LINES


# -- the checks catch a broken document -------------------------------------------------------------
def fake_repo(root: Path) -> Path:
    files = {
        "bridge/__init__.py": "",
        "bridge/daemon.py": "from bridge.jobs.worker import Worker\n\nclass Daemon:\n    def on_message(self): ...\n",
        "bridge/jobs/__init__.py": "",
        "bridge/jobs/worker.py": "STAGE_SPANS = {}\n\nclass Worker:\n    stopping: bool\n\n    def run_job(self): ...",
        "bridge/audio/__init__.py": "",
        "bridge/audio/render.py": "def render_mix(): ...\n",
        "inference/__init__.py": "",
        "inference/engine.py": "class MusicGenEngine:\n    def generate(self): ...\n",
        "docs/osc.md": "",
    }
    for path, source in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(source)
    return root


GOOD_TREE = """# Fake

```
bridge/
  daemon.py      the daemon
  jobs/          worker.py
  audio/         render.py
inference/       engine.py
```

Import order, bottom to top: errors, settings.

## Decisions
"""


def test_a_reference_to_something_missing_is_caught(tmp_path):
    root = fake_repo(tmp_path)
    good = "`bridge/jobs/worker.py:Worker.run_job` -> `bridge/jobs/worker.py:Worker.stopping` -> " \
           "`bridge/daemon.py:Daemon.on_message`, `bridge/jobs/worker.py:STAGE_SPANS`."
    assert stale_references(good, root) == []
    broken = ("`bridge/jobs/worker.py:Worker.run_jobs`, bridge/jobs/gone.py:Worker, "
              "bridge/jobs/worker.py:STAGE_SPANS.get, bridge/daemon.py:Worker (imported there, defined elsewhere)")
    assert stale_references(broken, root) == [
        "bridge/daemon.py:Worker: bridge/daemon.py defines no Worker",
        "bridge/jobs/gone.py:Worker: there is no file bridge/jobs/gone.py",
        "bridge/jobs/worker.py:STAGE_SPANS.get: STAGE_SPANS is not a class",
        "bridge/jobs/worker.py:Worker.run_jobs: Worker defines no run_jobs",
    ]


def test_a_missing_repository_path_is_caught(tmp_path):
    root = fake_repo(tmp_path)
    text = "docs/osc.md is generated; inference/csrc/gone.cpp and bridge/jobs/plan.py are not there; presets/*.toml"
    assert missing_paths(text, root) == ["bridge/jobs/plan.py", "inference/csrc/gone.cpp"]


def test_a_pointer_outside_the_repository_is_caught(tmp_path):
    root = fake_repo(tmp_path)
    docs = root / "docs"
    assert outside_pointers("See [the schema](osc.md) and [the web](https://example.org).", docs, root) == []
    assert outside_pointers("The starting design is `../shared/ARCHITECTURE.md`.", docs, root) == [
        "line 1: The starting design is `../shared/ARCHITECTURE.md`."]
    assert outside_pointers("[elsewhere](/etc/passwd) [gone](nothing.md)", docs, root) == [
        "link /etc/passwd: not a file in the repository", "link nothing.md: not a file in the repository"]


def test_an_address_the_schema_lacks_is_caught(tmp_path):
    schema = tmp_path / "continuo.json"
    schema.write_text(json.dumps({"requests": {"/continuo/generate": {}, "/continuo/presets/reload": {}},
                                  "events": {"/continuo/done": {}}}))
    text = "`/continuo/generate` -> `/continuo/done`; `/continuo/presets/reload`; `/continuo/reload_presets`."
    assert unknown_addresses(text, schema) == ["/continuo/reload_presets"]


def test_a_wing_or_module_left_out_of_the_first_screen_is_caught(tmp_path):
    root = fake_repo(tmp_path)
    assert unnamed_in_tree(GOOD_TREE, root) == []
    no_audio = GOOD_TREE.replace("  audio/         render.py\n", "")
    assert unnamed_in_tree(no_audio, root) == ["bridge/audio/", "bridge/audio/render.py"]
    no_worker = GOOD_TREE.replace("  jobs/          worker.py", "  jobs/          the jobs")
    assert unnamed_in_tree(no_worker, root) == ["bridge/jobs/worker.py"]
    below_the_screen = GOOD_TREE.replace("  audio/         render.py\n", "") + "audio/ render.py\n"
    assert "bridge/audio/" in unnamed_in_tree(below_the_screen, root)


def test_a_gone_name_in_the_tree_is_caught(tmp_path):
    root = fake_repo(tmp_path)
    assert stale_in_tree(GOOD_TREE, root) == []
    renamed = GOOD_TREE.replace("inference/       engine.py", "inference/       musicgen_engine.py\n  old.py  x")
    assert stale_in_tree(renamed, root) == ["inference/musicgen_engine.py", "inference/old.py"]


def test_an_import_order_that_differs_from_the_layout_test_is_caught():
    order = ", ".join(layout_order())
    doc = f"Import order, bottom to top: {order}.\n\n## Decisions\n"
    assert stated_order(doc) == layout_order()
    swapped = doc.replace("protocol, audio", "audio, protocol")
    assert swapped != doc and stated_order(swapped) != layout_order()
    with pytest.raises(AssertionError, match="Import order"):
        stated_order("No order here.\n\n## Decisions\n")


def test_a_first_screen_longer_than_a_screen_is_caught():
    long_doc = "# Title\n" + "line\n" * SCREEN_LINES + "## Decisions\n"
    assert len(first_screen(long_doc).splitlines()) > SCREEN_LINES
    with pytest.raises(AssertionError, match="Decisions"):
        first_screen("# no decisions heading\n")
