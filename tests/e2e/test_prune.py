"""`continuo prune` and `continuo trash` as a musician runs them, against a real `continuo serve` (tiny model): a dry
run lists and moves nothing, --yes moves into the trash, a restore brings the files back byte for byte, and only
`continuo trash empty --yes` deletes. `continuo status` says where renders live, their space and what is free."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bridge.clients.commands import EXIT_CODES
from tests.daemons import JOB_TIMEOUT_S

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def cli(daemon, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bridge.cli", *argv, "--port", str(daemon.port)],
                          capture_output=True, text=True, timeout=JOB_TIMEOUT_S, cwd=ROOT)


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_prune_dry_run_then_yes_then_trash_restore_and_empty(daemon_process, daemon_root):
    renders = daemon_root / "renders"
    for job_id in ("prune-old", "prune-new"):
        done = cli(daemon_process, "generate", "x", "--bars", "0.5", "--job-id", job_id)
        assert done.returncode == 0, done.stderr
    old, new = files(renders / "prune-old"), files(renders / "prune-new")
    assert "x_0.5bars_120bpm.wav" in old  # the DAW-named file a project would use

    dry = cli(daemon_process, "prune", "--keep", "1")
    assert dry.returncode == 0, dry.stderr
    assert "prune-old" in dry.stdout and "prune-new" not in dry.stdout and "would move 1 job(s)" in dry.stdout
    assert "nothing was moved" in dry.stdout and files(renders / "prune-old") == old  # a dry run moves nothing

    moved = cli(daemon_process, "prune", "--keep", "1", "--yes")
    assert moved.returncode == 0 and "moved 1 job(s)" in moved.stdout, moved.stdout + moved.stderr
    assert not (renders / "prune-old").exists() and files(renders / ".trash" / "prune-old") == old
    assert files(renders / "prune-new") == new
    got = cli(daemon_process, "send", "/continuo/get", "prune-old", "--timeout", "10")
    assert "trash" in got.stdout + got.stderr and "restore" in got.stdout + got.stderr

    listed = cli(daemon_process, "trash", "list")
    assert listed.returncode == 0 and "prune-old" in listed.stdout and "would delete 1 job(s)" in listed.stdout

    restored = cli(daemon_process, "trash", "restore", "prune-old")
    assert restored.returncode == 0 and "restored 1 job(s)" in restored.stdout, restored.stdout
    assert files(renders / "prune-old") == old  # byte for byte, links and all, where the DAW project looks

    guarded = cli(daemon_process, "prune", "--keep", "1", "--yes")  # the get above fetched it: kept
    assert "moved 0 job(s)" in guarded.stdout and "kept 1 fetched recently" in guarded.stdout, guarded.stdout
    assert cli(daemon_process, "prune", "--keep", "1", "--keep-fetched", "0", "--yes").returncode == 0
    assert cli(daemon_process, "trash", "empty").returncode == 0  # without --yes: only listed
    assert (renders / ".trash" / "prune-old").is_dir()
    emptied = cli(daemon_process, "trash", "empty", "--yes")
    assert emptied.returncode == 0 and "deleted 1 job(s)" in emptied.stdout, emptied.stdout
    assert not (renders / ".trash" / "prune-old").exists() and files(renders / "prune-new") == new

    status = cli(daemon_process, "status")
    assert status.returncode == 0 and f"under {renders}" in status.stdout and "free" in status.stdout
    assert "kept until you prune them" in status.stdout and "auto-trash off" in status.stdout


def test_prune_without_a_rule_is_refused_and_moves_nothing(daemon_process, daemon_root):
    before = sorted(p.name for p in (daemon_root / "renders").iterdir())
    refused = cli(daemon_process, "prune", "--yes")
    assert refused.returncode == EXIT_CODES["bad_request"] and "say which renders" in refused.stderr
    assert sorted(p.name for p in (daemon_root / "renders").iterdir()) == before
