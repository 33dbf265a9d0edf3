"""Find a MusicGen checkpoint or ACE-Step pipeline (local, cache, download, or the tiny smoke model) and load it.

resolve_model never stalls offline: the Hub is only asked after a quick TCP
connect to its endpoint succeeded (DNS included, bounded by connect_timeout_s),
and then only by one small HTTP request bounded the same way, so an endpoint
that accepts connections but never answers cannot hang start-up either.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from inference.errors import InferenceError, ModelLoadError
from inference.tiny import SMOKE_MARKER, TINY_FORMAT_VERSION, TINY_NAME, build_tiny_musicgen, read_marker

if TYPE_CHECKING:
    from inference.api import Engine
    from inference.engine import MusicGenEngine

log = logging.getLogger("continuo.inference")

TINY_SPEC = "tiny"  # asks for the tiny smoke model directly
DEFAULT_ENDPOINT = "https://huggingface.co"
HUB_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
WEIGHT_FILES = (
    "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json",
)
FEATURE_EXTRACTOR_FILES = ("preprocessor_config.json", "processor_config.json")
TOKENIZER_FILES = ("tokenizer.json", "spiece.model")
IGNORED_DOWNLOADS = ["*.bin", "*.msgpack", "*.h5", "*.ot", "*.onnx", "*.tflite", "*.mlmodel"]
TINY_FILES = {
    "config.json", "generation_config.json", "model.safetensors", "processor_config.json",
    "preprocessor_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
}
MUSICGEN_TYPES = {"musicgen"}
MELODY_TYPES = {"musicgen_melody"}
TRUTHY = {"1", "true", "yes", "on"}
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
PROBE_TIMEOUT_FACTOR = 2.0  # the HTTP probe may take this many connect timeouts (TLS + one round trip)


@dataclass(frozen=True)
class ModelSource:
    spec: str
    path: Path | None
    kind: str  # "local" | "cache" | "download" | "tiny"
    is_random: bool


def resolve_model(
    spec: str,
    *,
    tiny_dir: Path,
    allow_tiny_fallback: bool = True,
    offline: bool | None = None,
    connect_timeout_s: float = 2.0,
) -> ModelSource:
    """Local directory, then Hugging Face cache, then download, then (if allowed) the tiny smoke model."""
    spec = spec.strip()
    if spec == TINY_SPEC:
        return ensure_tiny(spec, Path(tiny_dir))
    local = Path(spec).expanduser()
    if local.is_dir():
        log.info("model %s: local directory %s", spec, local)
        return ModelSource(spec, local.resolve(), "local", is_random=has_smoke_marker(local))
    if not is_hub_id(spec):
        raise ModelLoadError(
            f"model {spec!r} is neither an existing directory nor a Hugging Face model id like "
            "'facebook/musicgen-small'; pass --model with a checkpoint directory or a model id"
        )
    tried = []
    cache_dir = hub_cache_dir()
    cached = find_in_cache(spec, cache_dir)
    if cached is not None:
        log.info("model %s: found in the Hugging Face cache at %s", spec, cached)
        return ModelSource(spec, cached, "cache", is_random=has_smoke_marker(cached))
    tried.append(f"not complete in the Hugging Face cache at {cache_dir}")
    network = check_network(spec, offline, connect_timeout_s)
    if network is None:
        downloaded, problem = download(spec, cache_dir)
        if downloaded is not None:
            return ModelSource(spec, downloaded, "download", is_random=has_smoke_marker(downloaded))
        tried.append(problem)
    else:
        tried.append(network)
    summary = f"model {spec!r} is not available: " + "; ".join(tried)
    if allow_tiny_fallback:
        log.warning("%s; falling back to the tiny smoke model", summary)
        return ensure_tiny(spec, Path(tiny_dir))
    raise ModelLoadError(
        f"{summary}. To fix: pass --model /path/to/checkpoint, or run once with network so {spec} lands in "
        "the Hugging Face cache, or set HF_HOME (or HF_HUB_CACHE) to a cache that already holds it"
    )


def is_hub_id(spec: str) -> bool:
    return bool(HUB_ID_PATTERN.match(spec)) and ".." not in spec and "--" not in spec


def has_smoke_marker(directory: Path) -> bool:
    return (Path(directory) / SMOKE_MARKER).is_file()


def hub_cache_dir() -> Path:
    """The hub cache as huggingface_hub would pick it, read from the environment now (not at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "huggingface" / "hub"


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT


def find_in_cache(repo_id: str, cache_dir: Path) -> Path | None:
    """The cached snapshot of repo_id when it holds a complete checkpoint; never touches the network."""
    from huggingface_hub import snapshot_download

    try:
        folder = snapshot_download(
            repo_id, cache_dir=cache_dir, local_files_only=True, ignore_patterns=IGNORED_DOWNLOADS
        )
    except Exception as error:  # LocalEntryNotFoundError, IncompleteSnapshotError, HFValidationError, ...
        log.info("model %s: not in the Hugging Face cache at %s (%s)", repo_id, cache_dir, type(error).__name__)
        return None
    problems = checkpoint_problems(Path(folder))
    if problems:
        log.info("model %s: cached snapshot %s is incomplete: %s", repo_id, folder, "; ".join(problems))
        return None
    return Path(folder)


def check_network(repo_id: str, offline: bool | None, connect_timeout_s: float) -> str | None:
    """None when the Hub answers for repo_id; otherwise why not, in words."""
    if offline is None:
        offline = any(os.environ.get(name, "").strip().lower() in TRUTHY for name in OFFLINE_VARIABLES)
    if offline:
        return ("offline mode is on (HF_HUB_OFFLINE is set, or the caller asked not to download), "
                "so nothing was downloaded")
    endpoint = hub_endpoint()
    if not can_connect(endpoint, connect_timeout_s):
        return f"could not reach {endpoint} within {connect_timeout_s:g} s, so nothing was downloaded"
    return ask_hub(repo_id, endpoint, PROBE_TIMEOUT_FACTOR * connect_timeout_s)


def can_connect(endpoint: str, timeout_s: float) -> bool:
    """A TCP connect to endpoint, DNS included, bounded by timeout_s."""
    parts = urlsplit(endpoint)
    host = parts.hostname
    if not host:
        return False
    port = parts.port or (80 if parts.scheme == "http" else 443)
    outcome: list[bool] = []

    def connect() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                outcome.append(True)
        except OSError:
            outcome.append(False)

    worker = threading.Thread(target=connect, name="continuo-hub-probe", daemon=True)
    started = time.monotonic()
    worker.start()
    worker.join(timeout_s)
    reachable = bool(outcome and outcome[0])
    verdict = "ok" if reachable else "unreachable"
    log.info("hub probe %s:%d -> %s in %.2f s", host, port, verdict, time.monotonic() - started)
    return reachable


def ask_hub(repo_id: str, endpoint: str, timeout_s: float) -> str | None:
    """One small HTTP request, bounded by timeout_s: does the Hub answer, and does it know repo_id?

    A TCP connect alone is not enough: a proxy or captive portal accepts the
    connection and then never answers, and huggingface_hub would wait minutes.
    """
    from urllib.error import HTTPError
    from urllib.request import Request, urlopen

    from huggingface_hub.utils import build_hf_headers

    url = f"{endpoint.rstrip('/')}/api/models/{repo_id}/revision/main"
    outcome: list[str | None] = []

    def ask() -> None:
        try:
            with urlopen(Request(url, headers=build_hf_headers()), timeout=timeout_s) as response:
                outcome.append(None if response.status == 200 else f"the Hub answered HTTP {response.status}")
        except HTTPError as error:
            if error.code in (401, 403, 404):
                outcome.append(
                    f"{endpoint} has no public model {repo_id} (HTTP {error.code}); check the id, "
                    "or log in with `hf auth login` if it is private or gated"
                )
            else:
                outcome.append(f"{endpoint} answered HTTP {error.code}")
        except Exception as error:  # URLError, timeouts, TLS failures
            outcome.append(f"{endpoint} did not answer properly ({type(error).__name__}: {error})")

    worker = threading.Thread(target=ask, name="continuo-hub-ask", daemon=True)
    worker.start()
    worker.join(timeout_s + 0.5)
    if not outcome:
        return f"{endpoint} accepted a connection but did not answer within {timeout_s:g} s, so nothing was downloaded"
    return outcome[0]


def download(repo_id: str, cache_dir: Path) -> tuple[Path | None, str]:
    """Download repo_id into the cache; (path, "") or (None, what went wrong)."""
    from huggingface_hub import snapshot_download

    log.info("model %s: downloading from %s into %s", repo_id, hub_endpoint(), cache_dir)
    try:
        folder = Path(
            snapshot_download(repo_id, cache_dir=cache_dir, endpoint=hub_endpoint(), ignore_patterns=IGNORED_DOWNLOADS)
        )
        if family(folder) == "musicgen" and not any((folder / name).is_file() for name in WEIGHT_FILES):
            # a repo with .bin weights only
            folder = Path(snapshot_download(repo_id, cache_dir=cache_dir, endpoint=hub_endpoint()))
    except Exception as error:
        return None, f"download from {hub_endpoint()} failed ({type(error).__name__}: {error})"
    problems = checkpoint_problems(folder)
    if problems:
        return None, f"downloaded {folder} is not a MusicGen checkpoint or ACE-Step pipeline: {'; '.join(problems)}"
    log.info("model %s: downloaded to %s", repo_id, folder)
    return folder, ""


def ensure_tiny(spec: str, tiny_dir: Path) -> ModelSource:
    """Reuse the tiny smoke checkpoint in tiny_dir when valid, else build it there."""
    if is_valid_tiny(tiny_dir):
        log.info("model %s: reusing tiny smoke model in %s", spec, tiny_dir)
    else:
        build_tiny_into(tiny_dir)
    return ModelSource(spec, tiny_dir.resolve(), "tiny", is_random=True)


def is_valid_tiny(directory: Path) -> bool:
    marker = read_marker(directory)
    return bool(marker) and marker.get("format_version") == TINY_FORMAT_VERSION and not checkpoint_problems(directory)


def build_tiny_into(tiny_dir: Path) -> None:
    """Build in a sibling folder, then move it in place, so a crash never leaves a half checkpoint."""
    if tiny_dir.exists() and not is_ours(tiny_dir):
        raise ModelLoadError(
            f"{tiny_dir} exists and is not a tiny smoke model; refusing to overwrite it (choose another tiny_dir)"
        )
    started = time.monotonic()
    staging = tiny_dir.with_name(f"{tiny_dir.name}.building-{os.getpid()}-{threading.get_ident()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        build_tiny_musicgen(staging)
        if tiny_dir.exists():
            shutil.rmtree(tiny_dir)
        staging.rename(tiny_dir)
    except OSError as error:
        if not is_valid_tiny(tiny_dir):  # someone else did not finish it for us either
            raise ModelLoadError(f"could not build the tiny smoke model in {tiny_dir}: {error}") from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("built tiny smoke model in %s in %.1f s", tiny_dir, time.monotonic() - started)


def is_ours(directory: Path) -> bool:
    """True for an earlier (maybe partial) tiny build: a marker, or only files a tiny build writes."""
    if has_smoke_marker(directory):
        return True
    return directory.is_dir() and all(entry.name in TINY_FILES for entry in directory.iterdir())


def checkpoint_type(directory: Path) -> str | None:
    try:
        return json.loads((Path(directory) / "config.json").read_text()).get("model_type")
    except (OSError, ValueError):
        return None


def checkpoint_problems(directory: Path) -> list[str]:
    """What keeps directory from being a loadable MusicGen checkpoint (or ACE-Step pipeline, when its
    model_index.json names one); empty when nothing does."""
    from inference.acestep import pipeline_family, pipeline_problems

    directory = Path(directory)
    if pipeline_family(directory):
        return pipeline_problems(directory)
    config_path = directory / "config.json"
    if not config_path.is_file():
        return [f"{config_path} is missing"]
    try:
        model_type = json.loads(config_path.read_text()).get("model_type")
    except (OSError, ValueError) as error:
        return [f"{config_path} is unreadable ({error})"]
    problems = []
    if model_type not in MUSICGEN_TYPES | MELODY_TYPES:
        problems.append(f"{config_path} has model_type {model_type!r}, expected 'musicgen' or 'musicgen_melody'")
    if not any((directory / name).is_file() for name in WEIGHT_FILES):
        problems.append(f"no weights in {directory} (expected {' or '.join(WEIGHT_FILES)})")
    if not any((directory / name).is_file() for name in FEATURE_EXTRACTOR_FILES):
        problems.append(f"no processor config in {directory} (expected {' or '.join(FEATURE_EXTRACTOR_FILES)})")
    if not any((directory / name).is_file() for name in TOKENIZER_FILES):
        problems.append(f"no tokenizer in {directory} (expected {' or '.join(TOKENIZER_FILES)})")
    return problems


BACKENDS = ("engine", "transformers")


def load_engine(
    source: ModelSource,
    *,
    device: str = "auto",
    warm_up: bool = True,
    backend: str = "engine",
    weights: str = "auto",
    kv_cache: str = "auto",
    attention: str = "auto",
    compile: bool = False,
    max_batch: int = 4,
    memory_budget_gb: float = 0.0,
) -> Engine:
    """Load source.path and warm it up.

    backend "engine" (default): our decoder (inference.engine.MusicGenEngine) with the named weights / kv_cache /
    attention modes, decoding up to max_batch concurrent jobs together; "transformers": transformers' generate
    (fp32 on CPU, fp16 on CUDA), the reference (inference.reference.ReferenceEngine). memory_budget_gb: ACE-Step's
    three-phase placement on CUDA.
    """
    import torch
    from transformers import AutoProcessor, MusicgenForConditionalGeneration, MusicgenMelodyForConditionalGeneration

    from inference.device import pick_device
    from inference.reference import reference_from_hf_model

    if backend not in BACKENDS:
        raise ModelLoadError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if source.path is None:
        raise ModelLoadError(f"model {source.spec!r} has no directory to load from")
    if family(source.path) != "musicgen":  # the config decides the family
        return load_other_family(source, device=device, warm_up=warm_up, backend=backend,
                                 memory_budget_gb=memory_budget_gb, weights=weights)
    problems = checkpoint_problems(source.path)
    if problems:
        raise ModelLoadError(f"cannot load {source.path}: " + "; ".join(problems))
    target = pick_device(device)
    dtype = torch.float16 if target.type == "cuda" and backend == "transformers" else torch.float32
    started = time.monotonic()
    is_random = source.is_random or has_smoke_marker(source.path)
    try:
        melody = checkpoint_type(source.path) in MELODY_TYPES
        if melody and backend == "transformers":
            raise ModelLoadError(f"{source.path} is a MusicGen-melody checkpoint: our engine serves it (backend "
                                 "'engine'); the transformers reference backend serves plain MusicGen only")
        processor = AutoProcessor.from_pretrained(source.path, local_files_only=True)
        model_class = MusicgenMelodyForConditionalGeneration if melody else MusicgenForConditionalGeneration
        model = model_class.from_pretrained(source.path, dtype=dtype, local_files_only=True)
        model = model.eval()
        if backend == "transformers":
            engine = reference_from_hf_model(model.to(target), processor, name=display_name(source),
                                             source_kind=source.kind, is_random=is_random, device=str(target))
        else:
            engine = build_our_engine(model, processor, source, target, is_random,
                                      weights=weights, kv_cache=kv_cache, attention=attention, compile=compile,
                                      max_batch=max_batch)
            del model  # our engine owns copies of what it keeps: the checkpoint's memory map can go
            trim_heap()
    except ModelLoadError:
        raise
    except ValueError as error:  # a mode this device cannot run; the message names the alternatives
        raise ModelLoadError(f"cannot load {source.path}: {error}") from error
    except Exception as error:
        raise ModelLoadError(f"cannot load {source.path}: {type(error).__name__}: {error}") from error
    return announce_loaded(engine, source, f"{backend} backend", started, warm_up=warm_up)


def family(directory: Path) -> str:
    """The model family a directory's config names: "ace-step" (model_index.json names AceStepPipeline), else
    "musicgen" (whose config.json checkpoint_problems checks)."""
    from inference.acestep import pipeline_family

    return pipeline_family(directory) or "musicgen"


def load_other_family(source: ModelSource, *, device: str, warm_up: bool, backend: str,
                      memory_budget_gb: float = 0.0, weights: str = "auto") -> Engine:
    """An ACE-Step pipeline: loaded (its DiT's linears on the CPU as `weights` says), named, warned about when
    random, warmed up like a MusicGen."""
    from inference.acestep import load_acestep_engine

    if backend != "engine":
        raise ModelLoadError(f"{source.path} is an ACE-Step pipeline; backend {backend!r} serves MusicGen only "
                             "(drop --backend or pass --backend engine)")
    started = time.monotonic()
    is_random = source.is_random or has_smoke_marker(source.path)
    engine = load_acestep_engine(source, device=device, name=display_name(source), is_random=is_random,
                                 memory_budget_gb=memory_budget_gb, weights=weights)
    return announce_loaded(engine, source, "ace-step", started, warm_up=warm_up)


def announce_loaded(engine: Engine, source: ModelSource, how: str, started: float, *, warm_up: bool) -> Engine:
    """Every family's last step of loading: one log line, the smoke-model warning, the warm-up."""
    info = engine.info
    log.info("loaded %s (%s, %s) on %s in %.1f s: %d parameters, %d Hz, %d channel(s), up to %.1f s",
             info.name, info.source_kind, how, info.device, time.monotonic() - started, info.parameters,
             info.sample_rate, info.channels, info.max_duration_s)
    if info.is_random:
        warn_random(info.name, source.path, family(source.path) if source.path is not None else "musicgen")
    if warm_up:
        try:
            log.info("warmed up %s in %.2f s", info.name, engine.warm_up())
        except InferenceError as error:
            raise ModelLoadError(f"{source.path} loaded but cannot generate: {error}") from error
    return engine


def trim_heap(*, collect: bool = True) -> None:
    """Collect (unless ``collect`` is False), and hand freed heap back to the system (glibc), so the daemon's
    resident size is what it uses, not its peak: after loading, and after each job (its transient peak: a stems
    separation's activations). A worker's trim after a job does not collect: a full collection of an unfrozen heap
    stops every thread for 0.1-0.5 s, and the collector frees per-job garbage on its own."""
    import ctypes
    import gc

    if collect:
        gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, musl): the allocator keeps its own counsel
        pass


def build_our_engine(model, processor, source: ModelSource, target, is_random: bool, **modes) -> MusicGenEngine:
    """Our decoder from the checkpoint's weights; transformers' decoder is dropped once mapped."""
    from inference.engine import EngineOptions, engine_from_hf_model

    engine = engine_from_hf_model(
        model, processor.tokenizer, options=EngineOptions(**modes), device=target,
        name=display_name(source), source_kind=source.kind, is_random=is_random,
        chroma_extractor=getattr(processor, "feature_extractor", None),
    )
    del model.decoder  # its weights now live in our decoder
    return engine


def display_name(source: ModelSource) -> str:
    if source.path is not None and has_smoke_marker(source.path):
        marker = read_marker(source.path) or {}
        return marker.get("name") or f"{source.path.name} (SMOKE: noise, not music)"
    if source.kind == "tiny":
        return TINY_NAME
    return source.spec


# What to pass for music, per family: (a hub id, a local directory of that family)
REAL_MODELS = {"musicgen": ("facebook/musicgen-small", "/path/to/a/musicgen/checkpoint"),
               "ace-step": ("ACE-Step/acestep-v15-xl-turbo-diffusers", "/path/to/an/ace-step/diffusers/pipeline")}


def warn_random(name: str, path: Path, family: str = "musicgen") -> None:
    """The loud smoke-model warning, naming a real model of the same family to load instead."""
    hub_id, local = REAL_MODELS.get(family, REAL_MODELS["musicgen"])
    bar = "!" * 72
    for line in (
        bar,
        f"!!  RANDOM SMOKE MODEL: {name}",
        f"!!  loaded from {path}",
        "!!  Its weights are random: every render is NOISE, NOT MUSIC.",
        f"!!  For music: pass --model {hub_id} (needs network once)",
        f"!!  or --model {local}.",
        bar,
    ):
        log.warning(line)
