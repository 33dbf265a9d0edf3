"""LoRA through the bridge, in process, on the tiny ACE-Step pipeline and the real loader: admission finds the
adapter in lora_dir (an unknown name is refused with the known ones, before anything is journalled); the worker
passes it through GenerationRequest; it changes the output, weight 0 and the next job without lora render the
bare model; a corrupt or misfit file fails its job with a clear message and the next job renders."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import soundfile

from bridge.daemon import Daemon
from tests.daemons import daemon_settings, running_daemon

SENDER = ("127.0.0.1", 41000)


@pytest.fixture(scope="module")
def daemon(tiny_acestep_dir, tiny_lora_dir, tmp_path_factory) -> Iterator[Daemon]:
    root = tmp_path_factory.mktemp("lora-daemon")
    with running_daemon(daemon_settings(tiny_acestep_dir, root, lora_dir=tiny_lora_dir)) as running:
        yield running


def render(daemon: Daemon, job_id: str, *settings) -> np.ndarray:
    daemon.on_message("/continuo/generate", [job_id, "default", "pads", 0.5, "seed", 5, "instrumental", 1,
                                             *settings], SENDER)
    address, args = daemon.sent.wait_terminal(job_id)
    assert address == "/continuo/done", args
    path = [a for address, a in daemon.sent.of(job_id) if address == "/continuo/output"][0][2]
    return soundfile.read(path, dtype="float32")[0]


def refused(daemon: Daemon, job_id: str, *settings) -> str:
    daemon.on_message("/continuo/generate", [job_id, "default", "pads", 0.5, *settings], SENDER)
    address, args = daemon.sent.wait_terminal(job_id, 5)
    assert address == "/continuo/error" and args[1] == "bad_request", args
    assert daemon.journal.get(job_id) is None
    assert "/continuo/queued" not in [address for address, _ in daemon.sent.of(job_id)]
    return args[2]


def test_an_adapter_changes_the_output_and_the_next_job_is_the_bare_model(daemon, tiny_lora_dir):
    bare = render(daemon, "bare-1")
    styled = render(daemon, "lora-1", "lora", "grain", "lora_weight", 0.8)
    assert styled.shape == bare.shape and not np.allclose(styled, bare, atol=1e-3)
    np.testing.assert_array_equal(render(daemon, "bare-2"), bare)
    np.testing.assert_allclose(render(daemon, "lora-0", "lora", "grain", "lora_weight", 0.0), bare, atol=1e-4)
    record = daemon.journal.get("lora-1")
    assert record.params["settings"]["lora"] == "grain"
    assert record.params["lora_path"] == str((tiny_lora_dir / "grain").resolve())
    assert "lora_path" not in daemon.journal.get("bare-1").params


def test_unknown_names_and_lonely_weights_are_refused_before_the_journal(daemon):
    message = refused(daemon, "unknown-1", "lora", "nobody")
    assert "unknown LoRA adapter 'nobody'" in message and "corrupt, grain, grain-file, misfit" in message
    assert "lora_weight needs an adapter" in refused(daemon, "weight-1", "lora_weight", 0.5)
    assert "lora_weight must be a float in 0..2" in refused(daemon, "range-1", "lora", "grain", "lora_weight", 3.0)


@pytest.mark.parametrize("name", ["corrupt", "misfit"])
def test_a_bad_adapter_fails_its_job_clearly_and_the_next_job_renders(daemon, name):
    daemon.on_message("/continuo/generate", [f"bad-{name}", "default", "pads", 0.5, "lora", name], SENDER)
    address, args = daemon.sent.wait_terminal(f"bad-{name}")
    assert address == "/continuo/error" and args[1] == "model_error"
    assert f"LoRA adapter '{name}'" in args[2] and "diffusers' format" in args[2]
    render(daemon, f"after-{name}")
