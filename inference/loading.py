"""Find a model (local, cache, download, or the tiny smoke model) and load it through its family's entry.

resolve_model never stalls offline: the Hub is only asked after a quick TCP
connect to its endpoint succeeded (DNS included, bounded by connect_timeout_s),
and then only by one small HTTP request bounded the same way, so an endpoint
that accepts connections but never answers cannot hang start-up either.

The config decides the family: FAMILIES is asked in order (ACE-Step's model_index.json first), and a folder no
family recognises is judged as a MusicGen checkpoint, whose problems say what it lacks. Each family is one package
whose family.py is its entry (the `Family` members: detect, problems, load, its tiny build); this module knows
no family's insides, and a third family is one folder and one row here.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import re
import shutil
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from inference.acestep import family as acestep
from inference.api import Engine
from inference.errors import InferenceError, ModelLoadError
from inference.musicgen import family as musicgen
from inference.smoke import FORMAT_VERSION, has_marker, read_marker

log = logging.getLogger("continuo.inference")


class Family(Protocol):
    """A model family's entry: its package's family.py (inference/musicgen/family.py, inference/acestep/family.py)."""

    NAME: str  # what ModelInfo.family says
    REAL_MODEL: tuple[str, str]  # (a hub id, a local folder) to name when a smoke model of the family is loaded
    TINY_FILES: frozenset[str]  # what build_tiny writes into its folder

    def detect(self, directory: Path) -> bool:
        """directory's config names this family."""
        ...

    def problems(self, directory: Path) -> list[str]:
        """What keeps directory from loading as this family; empty when nothing does."""
        ...

    def load(self, path: Path, *, name: str, source_kind: str, is_random: bool, **modes) -> Engine:
        """The model in path, not warmed up; modes (device, backend, weights, ...) the family does not take are
        ignored, a backend it does not serve is a ModelLoadError."""
        ...

    def build_tiny(self, out_dir: Path) -> Path:
        """A tiny random model of the family's real architecture in out_dir, smoke marker last."""
        ...

    def load_style_model(self, path: Path, device: str = "cpu", base_weights: str = "auto"):
        """The checkpoint in path for LoRA training (inference/runtime/lora_training.py: StyleModel; base_weights:
        its training_base_weights, QLoRA's nf4 on CUDA by default, else fp32)."""
        ...


FAMILIES: dict[str, Family] = {entry.NAME: entry for entry in (acestep, musicgen)}  # asked in this order
DEFAULT_FAMILY = musicgen.NAME  # a folder no family recognises is judged as one of these
SMOKE_FAMILY = musicgen.NAME  # the smoke model: a tiny MusicGen (built in seconds, every request type it serves)
TINY_SPEC = "tiny"  # asks for the tiny smoke model directly
DEFAULT_ENDPOINT = "https://huggingface.co"
HUB_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
IGNORED_DOWNLOADS = ["*.bin", "*.msgpack", "*.h5", "*.ot", "*.onnx", "*.tflite", "*.mlmodel"]
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
        return ModelSource(spec, local.resolve(), "local", is_random=has_marker(local))
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
        return ModelSource(spec, cached, "cache", is_random=has_marker(cached))
    tried.append(f"not complete in the Hugging Face cache at {cache_dir}")
    network = check_network(spec, offline, connect_timeout_s)
    if network is None:
        downloaded, problem = download(spec, cache_dir)
        if downloaded is not None:
            return ModelSource(spec, downloaded, "download", is_random=has_marker(downloaded))
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
        if checkpoint_problems(folder):  # e.g. a repo with .bin weights only: fetch it whole, once
            folder = Path(snapshot_download(repo_id, cache_dir=cache_dir, endpoint=hub_endpoint()))
    except Exception as error:
        return None, f"download from {hub_endpoint()} failed ({type(error).__name__}: {error})"
    problems = checkpoint_problems(folder)
    if problems:
        return None, f"downloaded {folder} is not a model any family loads: {'; '.join(problems)}"
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
    return bool(marker) and marker.get("format_version") == FORMAT_VERSION and not checkpoint_problems(directory)


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
        FAMILIES[SMOKE_FAMILY].build_tiny(staging)
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
    if has_marker(directory):
        return True
    tiny_files = FAMILIES[SMOKE_FAMILY].TINY_FILES
    return directory.is_dir() and all(entry.name in tiny_files for entry in directory.iterdir())


def family_of(directory: Path) -> Family:
    """The family whose config directory holds, asked in FAMILIES' order; else DEFAULT_FAMILY's."""
    return next((entry for entry in FAMILIES.values() if entry.detect(directory)), FAMILIES[DEFAULT_FAMILY])


def family(directory: Path) -> str:
    """The name of family_of(directory): "ace-step", "musicgen", ..."""
    return family_of(directory).NAME


def load_style_model(directory: Path, device: str = "cpu", base_weights: str = "auto"):
    """directory's model loaded by its family for style training (inference/runtime/lora_training.py:StyleModel)."""
    return family_of(Path(directory)).load_style_model(Path(directory), device=device, base_weights=base_weights)


def checkpoint_problems(directory: Path) -> list[str]:
    """What keeps directory from loading as its family; empty when nothing does."""
    return family_of(directory).problems(Path(directory))


BACKENDS = ("engine", "transformers")  # the family's own engine; transformers' generate (MusicGen's reference)


QUIET_LIBRARIES = ("transformers", "diffusers")  # their warnings and progress bars stay out of the daemon's log


def quiet_third_party() -> None:
    """The daemon's start: transformers' and diffusers' own warnings below ERROR (e.g. "Model config: pad_token_id
    must be `None` or an integer within the vocabulary", which MusicGen's checkpoints trip by design: their pad id
    is the codebook size) and no "Loading weights: 100%" bars; their errors still show. Our own log says what was
    loaded and how."""
    for library in QUIET_LIBRARIES:
        os.environ.setdefault(f"{library.upper()}_VERBOSITY", "error")  # read when the library sets its logger up
        if importlib.util.find_spec(library) is None:
            continue
        library_logging = importlib.import_module(f"{library}.utils.logging")
        library_logging.set_verbosity_error()
        library_logging.disable_progress_bar()
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


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
    lora: str = "",
) -> Engine:
    """Load source.path through its family's entry and warm it up.

    The modes go to the family's load, which takes the ones it knows: MusicGen the weights / kv_cache /
    attention / compile modes and max_batch (concurrent jobs decoded together) for our engine, or backend
    "transformers" for the reference; ACE-Step the DiT's weights and memory_budget_gb (its three-phase
    placement on CUDA). lora: a MusicGen adapter merged into our engine's weights at load (inference/musicgen/lora.py).
    """
    if backend not in BACKENDS:
        raise ModelLoadError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if source.path is None:
        raise ModelLoadError(f"model {source.spec!r} has no directory to load from")
    entry = family_of(source.path)
    started = time.monotonic()
    engine = entry.load(source.path, name=display_name(source), source_kind=source.kind,
                        is_random=source.is_random or has_marker(source.path), device=device, backend=backend,
                        weights=weights, kv_cache=kv_cache, attention=attention, compile=compile,
                        max_batch=max_batch, memory_budget_gb=memory_budget_gb, lora=lora)
    return announce_loaded(engine, source, f"{entry.NAME}, {backend} backend", started, warm_up=warm_up)


def announce_loaded(engine: Engine, source: ModelSource, how: str, started: float, *, warm_up: bool) -> Engine:
    """Every family's last step of loading: one log line, the smoke-model warning, the warm-up."""
    info = engine.info
    log.info("loaded %s (%s, %s) on %s in %.1f s: %d parameters, %d Hz, %d channel(s), up to %.1f s",
             info.name, info.source_kind, how, info.device, time.monotonic() - started, info.parameters,
             info.sample_rate, info.channels, info.max_duration_s)
    if info.is_random:
        warn_random(info.name, source.path, family(source.path) if source.path is not None else DEFAULT_FAMILY)
    if warm_up:
        try:
            log.info("warmed up %s in %.2f s", info.name, engine.warm_up())
        except InferenceError as error:
            raise ModelLoadError(f"{source.path} loaded but cannot generate: {error}") from error
    return engine


def display_name(source: ModelSource) -> str:
    """The smoke marker's name for a random model (the tiny one always has a marker), else what was asked for."""
    if source.path is not None and has_marker(source.path):
        marker = read_marker(source.path) or {}
        return marker.get("name") or f"{source.path.name} (SMOKE: noise, not music)"
    return source.spec


def warn_random(name: str, path: Path, family: str = DEFAULT_FAMILY) -> None:
    """The loud smoke-model warning, naming a real model of the same family to load instead."""
    hub_id, local = FAMILIES.get(family, FAMILIES[DEFAULT_FAMILY]).REAL_MODEL
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
