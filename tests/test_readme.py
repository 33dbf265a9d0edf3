"""The README's test command is what CI runs; keep them one and the same."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def shell_blocks(text: str) -> list[str]:
    return [block.strip() for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S)]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    blocks = shell_blocks(readme.split("## Two commands", 1)[1].split("\n## ", 1)[0])
    assert len(blocks) == 2, "the README gives exactly two setup commands"
    serve_command, test_command = blocks
    assert "continuo serve" in serve_command
    ci_lines = [line for line in (ROOT / ".ci/run").read_text().splitlines()
                if line and not line.startswith("#") and not line.startswith(("set ", "cd "))
                and line != "bash .ci/install-debian-packages"]
    assert ci_lines == [test_command]
