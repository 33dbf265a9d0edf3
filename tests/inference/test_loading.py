"""Finding and loading checkpoints: local, Hugging Face cache, tiny fallback, and clear errors."""

from __future__ import annotations

import http.server
import importlib
import importlib.util
import json
import logging
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from inference.errors import ModelLoadError
from inference.loading import (
    DEFAULT_FAMILY,
    FAMILIES,
    Family,
    ModelSource,
    checkpoint_problems,
    family_of,
    load_engine,
    resolve_model,
)
from inference.musicgen.engine import MusicGenEngine
from inference.musicgen.reference import ReferenceEngine
from inference.runtime.device import describe_accelerations, pick_device

UNKNOWN_ID = "nobody-here/no-such-musicgen"


@pytest.fixture
def closed_endpoint(monkeypatch):
    """HF_ENDPOINT on a local port nobody listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


@pytest.fixture
def empty_cache(monkeypatch, tmp_path):
    cache = tmp_path / "hub-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache


def test_local_directory(tiny_model_dir, tmp_path):
    source = resolve_model(str(tiny_model_dir), tiny_dir=tmp_path / "unused")
    assert source == ModelSource(str(tiny_model_dir), tiny_model_dir.resolve(), "local", is_random=True)
    assert not (tmp_path / "unused").exists()


def test_load_engine_round_trip(tiny_model_dir, tmp_path, caplog):
    source = resolve_model(str(tiny_model_dir), tiny_dir=tmp_path / "unused")
    with caplog.at_level(logging.WARNING, logger="continuo.inference"):
        engine = load_engine(source, device="cpu")
    assert isinstance(engine, MusicGenEngine)  # our engine is the default; transformers is the reference
    assert engine.info.source_kind == "local"
    assert engine.info.is_random
    assert "SMOKE" in engine.info.name
    assert engine.info.sample_rate == 32_000 and engine.info.frame_rate == 50.0
    assert engine.info.max_duration_s == 30.0
    assert engine.info.device == "cpu"
    assert sum("NOISE, NOT MUSIC" in record.getMessage() for record in caplog.records) == 1
    assert len(caplog.records) >= 5  # a banner, not one line
    assert isinstance(load_engine(source, device="cpu", warm_up=False, backend="transformers"), ReferenceEngine)


def test_offline_unknown_id_falls_back_to_tiny(tmp_path, empty_cache):
    tiny_dir = tmp_path / "smoke"
    source = resolve_model(UNKNOWN_ID, tiny_dir=tiny_dir, offline=True)
    assert source.kind == "tiny" and source.is_random
    assert (tiny_dir / "continuo_smoke.json").is_file()
    assert load_engine(source).info.is_random


def test_tiny_fallback_reuses_a_valid_build(tiny_model_dir, tmp_path, empty_cache):
    tiny_dir = tmp_path / "smoke"
    shutil.copytree(tiny_model_dir, tiny_dir)
    before = (tiny_dir / "model.safetensors").stat().st_mtime_ns
    started = time.monotonic()
    source = resolve_model(UNKNOWN_ID, tiny_dir=tiny_dir, offline=True)
    assert time.monotonic() - started < 1.0
    assert source.kind == "tiny"
    assert (tiny_dir / "model.safetensors").stat().st_mtime_ns == before


def test_tiny_fallback_refuses_to_overwrite_foreign_dir(tmp_path, empty_cache):
    foreign = tmp_path / "my-stuff"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(ModelLoadError, match="refusing to overwrite"):
        resolve_model(UNKNOWN_ID, tiny_dir=foreign, offline=True)
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_offline_without_fallback_says_what_to_do(tmp_path, empty_cache):
    with pytest.raises(ModelLoadError) as error:
        resolve_model(UNKNOWN_ID, tiny_dir=tmp_path / "smoke", offline=True, allow_tiny_fallback=False)
    message = str(error.value)
    assert UNKNOWN_ID in message
    assert str(empty_cache) in message  # says where it looked
    assert "offline" in message
    assert "--model" in message and "HF_HOME" in message
    assert not (tmp_path / "smoke").exists()


def test_env_offline_is_honoured(tmp_path, empty_cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="offline"):
        resolve_model(UNKNOWN_ID, tiny_dir=tmp_path / "smoke", allow_tiny_fallback=False)


def test_unreachable_hub_returns_fast(tmp_path, empty_cache, closed_endpoint):
    started = time.monotonic()
    with pytest.raises(ModelLoadError, match="could not reach"):
        resolve_model(UNKNOWN_ID, tiny_dir=tmp_path / "smoke", offline=False, allow_tiny_fallback=False)
    assert time.monotonic() - started < 5.0


@pytest.fixture
def silent_endpoint(monkeypatch):
    """HF_ENDPOINT on a local port that accepts connections and never answers (a proxy or captive portal)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    yield
    server.close()


def test_silent_hub_is_bounded(tmp_path, empty_cache, silent_endpoint):
    started = time.monotonic()
    with pytest.raises(ModelLoadError, match="did not answer"):
        resolve_model(
            UNKNOWN_ID, tiny_dir=tmp_path / "smoke", offline=False, allow_tiny_fallback=False, connect_timeout_s=0.5
        )
    assert time.monotonic() - started < 5.0


class NotFoundHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_error(404)

    def log_message(self, *args):
        pass


@pytest.fixture
def not_found_endpoint(monkeypatch):
    """A Hub that knows no models."""
    server = http.server.HTTPServer(("127.0.0.1", 0), NotFoundHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    yield
    server.shutdown()
    server.server_close()


def test_unknown_model_on_the_hub_is_named(tmp_path, empty_cache, not_found_endpoint):
    with pytest.raises(ModelLoadError, match="has no public model nobody-here/no-such-musicgen"):
        resolve_model(UNKNOWN_ID, tiny_dir=tmp_path / "smoke", offline=False, allow_tiny_fallback=False)


def fake_hub_cache(cache, repo_id, files_from):
    """The layout huggingface_hub writes: models--org--name/{refs/main, snapshots/<hash>/...}."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    shutil.copytree(files_from, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    return repo / "snapshots" / commit


def test_hub_cache(tiny_model_dir, tmp_path, empty_cache):
    snapshot = fake_hub_cache(empty_cache, "facebook/musicgen-small", tiny_model_dir)
    source = resolve_model("facebook/musicgen-small", tiny_dir=tmp_path / "smoke", offline=True)
    assert source.kind == "cache"
    assert source.path == snapshot
    assert source.is_random  # the marker travelled with the files
    assert load_engine(source).info.source_kind == "cache"


def test_hub_cache_via_hf_home(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    fake_hub_cache(tmp_path / "hf-home" / "hub", "org/name", tiny_model_dir)
    assert resolve_model("org/name", tiny_dir=tmp_path / "smoke", offline=True).kind == "cache"


def test_incomplete_cache_entry_is_skipped(tiny_model_dir, tmp_path, empty_cache):
    snapshot = fake_hub_cache(empty_cache, "org/name", tiny_model_dir)
    (snapshot / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="not complete in the Hugging Face cache"):
        resolve_model("org/name", tiny_dir=tmp_path / "smoke", offline=True, allow_tiny_fallback=False)


@pytest.mark.parametrize("spec", ["/no/such/dir", "not a model id", "org/name/extra", "../x"])
def test_malformed_spec_is_refused(spec, tmp_path):
    with pytest.raises(ModelLoadError, match="neither an existing directory nor a Hugging Face model id"):
        resolve_model(spec, tiny_dir=tmp_path / "smoke", offline=True)


def test_tiny_spec_builds_directly(tiny_model_dir, tmp_path):
    shutil.copytree(tiny_model_dir, tmp_path / "smoke")
    assert resolve_model("tiny", tiny_dir=tmp_path / "smoke").kind == "tiny"


def test_directory_without_config_names_the_file(tmp_path):
    (tmp_path / "ckpt").mkdir()
    source = resolve_model(str(tmp_path / "ckpt"), tiny_dir=tmp_path / "smoke")
    with pytest.raises(ModelLoadError, match="config.json is missing"):
        load_engine(source)


def test_wrong_model_type_is_named(tiny_model_dir, tmp_path):
    ckpt = shutil.copytree(tiny_model_dir, tmp_path / "ckpt")
    (ckpt / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ModelLoadError, match="model_type 'bert'"):
        load_engine(resolve_model(str(ckpt), tiny_dir=tmp_path / "smoke"))


@pytest.mark.parametrize("missing", ["model.safetensors", "tokenizer.json", "processor_config.json"])
def test_missing_files_are_named(tiny_model_dir, tmp_path, missing):
    ckpt = shutil.copytree(tiny_model_dir, tmp_path / "ckpt")
    (ckpt / missing).unlink()
    with pytest.raises(ModelLoadError, match=missing.replace(".", r"\.")):
        load_engine(resolve_model(str(ckpt), tiny_dir=tmp_path / "smoke"))


def test_corrupt_weights_become_model_load_error(tiny_model_dir, tmp_path):
    ckpt = shutil.copytree(tiny_model_dir, tmp_path / "ckpt")
    (ckpt / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ModelLoadError, match="cannot load"):
        load_engine(resolve_model(str(ckpt), tiny_dir=tmp_path / "smoke"))


def test_unavailable_device_is_refused(tiny_model_dir, tmp_path):
    source = resolve_model(str(tiny_model_dir), tiny_dir=tmp_path / "smoke")
    with pytest.raises(ModelLoadError, match="available: cpu"):
        load_engine(source, device="cuda:7")


def test_pick_device_auto_is_cpu_without_gpu(monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert pick_device("auto").type == "cpu"
    assert pick_device("CPU").type == "cpu"


@pytest.mark.parametrize("requested", ["cuda", "cuda:3", "tpu", "banana"])
def test_pick_device_names_what_is_available(monkeypatch, requested):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(ModelLoadError, match="available: cpu"):
        pick_device(requested)


def test_accelerations_cover_every_speed_up():
    capabilities = describe_accelerations()
    names = [capability.name for capability in capabilities]
    assert names == ["cuda", "mps", "bf16", "fp16", "cpu_int8", "bitsandbytes", "flash_attn", "cuda_graphs", "sdpa",
                     "cpu_kernels"]
    assert all(capability.reason for capability in capabilities)
    assert {c.name: c for c in capabilities}["sdpa"].usable


def test_accelerations_survive_a_broken_optional_package(monkeypatch):
    real_import = importlib.import_module

    def broken(name, *args):
        if name.startswith(("bitsandbytes", "flash_attn")):
            raise OSError("libcudart.so.12: cannot open shared object file")
        return real_import(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: object())
    monkeypatch.setattr(importlib, "import_module", broken)
    capabilities = {c.name: c for c in describe_accelerations()}
    assert not capabilities["bitsandbytes"].usable
    assert "fails to import" in capabilities["bitsandbytes"].reason
    assert not capabilities["flash_attn"].usable


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads /proc/self/maps (Linux)")
def test_our_engine_lets_go_of_the_checkpoint_file_map(tiny_model_dir, tmp_path):
    """The engine keeps copies, not views of transformers' memory map of model.safetensors (2 GB for small)."""
    ckpt = shutil.copytree(tiny_model_dir, tmp_path / "own-copy")
    engine = load_engine(resolve_model(str(ckpt), tiny_dir=tmp_path / "smoke"), warm_up=False)
    mapped = [line for line in Path("/proc/self/maps").read_text().splitlines() if str(ckpt) in line]
    assert mapped == [] and engine.info.sample_rate == 32000


@pytest.mark.parametrize("family, suggested", [("musicgen", "facebook/musicgen-small"),
                                               ("ace-step", "ACE-Step/acestep-v15-xl-turbo-diffusers")])
def test_the_smoke_warning_suggests_a_real_model_of_the_same_family(caplog, family, suggested):
    from inference.loading import FAMILIES, warn_random

    with caplog.at_level("WARNING", logger="continuo.inference"):
        warn_random("tiny", Path("/tmp/tiny"), family)
    text = caplog.text
    assert f"--model {suggested}" in text and "NOISE, NOT MUSIC" in text
    other = next(entry.REAL_MODEL[0] for name, entry in FAMILIES.items() if name != family)
    assert other not in text


# -- the families' table -------------------------------------------------------------------------------------------
def family_gaps(entry) -> list[str]:
    """Members of loading.Family that entry (a family package) lacks or defines as something else."""
    gaps = []
    for name, value in vars(Family).items():
        if name.startswith("_"):
            continue
        if not hasattr(entry, name):
            gaps.append(f"no {name}")
        elif callable(value) and not callable(getattr(entry, name)):
            gaps.append(f"{name} is not callable")
    for name in Family.__annotations__:
        if not hasattr(entry, name):
            gaps.append(f"no {name}")
    return sorted(gaps)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_every_family_hands_on_the_whole_entry(name):
    assert family_gaps(FAMILIES[name]) == [] and FAMILIES[name].NAME == name


def test_the_entry_check_fails_on_a_family_without_load():
    import types

    from inference.musicgen import family as musicgen

    partial = types.SimpleNamespace(**{key: getattr(musicgen, key) for key in musicgen.__all__ if key != "load"})
    assert family_gaps(partial) == ["no load"]


def test_a_tiny_build_writes_only_what_its_family_says(tiny_model_dir, tiny_acestep_dir):
    """TINY_FILES is what lets loading replace an earlier, partial smoke build and nothing else."""
    for family_name, folder in (("musicgen", tiny_model_dir), ("ace-step", tiny_acestep_dir)):
        written = {entry.name for entry in folder.iterdir()}
        assert written <= FAMILIES[family_name].TINY_FILES, family_name
        assert FAMILIES[family_name].detect(folder) and family_of(folder) is FAMILIES[family_name]


def test_a_folder_no_family_recognises_is_judged_as_the_default_family(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    assert not any(entry.detect(tmp_path) for entry in FAMILIES.values())
    assert family_of(tmp_path) is FAMILIES[DEFAULT_FAMILY] and "expected 'musicgen'" in checkpoint_problems(tmp_path)[0]
