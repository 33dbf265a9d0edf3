"""`continuo doctor`: what this machine can do for Continuo, and why not where it can't."""

from __future__ import annotations

import importlib
import platform
import sys
from pathlib import Path

from bridge.settings import Settings

PIP_NAMES = {"zmq": "pyzmq", "rtmidi": "python-rtmidi", "flash_attn": "flash-attn", "ray": "ray[serve]",
             "link": "LinkPython-extern"}
NVIDIA_ONLY = ("bitsandbytes", "flash_attn")  # nothing to install on a Mac for these
CHECKOUT = Path(__file__).resolve().parents[2]

OPTIONAL_PACKAGES = {
    "pedalboard": "effect chains",
    "pyloudnorm": "loudness measurement (BS.1770)",
    "soxr": "high-quality resampling",
    "soundfile": "WAV reading and writing",
    "zmq": "ZeroMQ transport",
    "mido": "MIDI",
    "rtmidi": "MIDI ports (python-rtmidi)",
    "bitsandbytes": "int8/NF4 weights on CUDA",
    "flash_attn": "flash attention on CUDA (optional extra: pip install 'continuo[gpu]')",
    "openvino": "faster stems on the CPU (optional extra: pip install 'continuo[stems-fast]')",
    "ray": "Ray Serve replicas, --cluster (optional extra: pip install 'continuo[cluster]')",
    "link": "Ableton Link jam clock (optional extra, GPL-licensed: pip install 'continuo[link]')",
}


def package_line(module: str, purpose: str) -> str:
    try:
        mod = importlib.import_module(module)
    except Exception as exc:  # an optional package may fail in many ways; doctor reports, never crashes
        why = f"{type(exc).__name__}: {str(exc).splitlines()[0][:80]}" if str(exc) else type(exc).__name__
        if module in NVIDIA_ONLY and sys.platform == "darwin":
            return f"  [no ] {module:<13} {purpose}: NVIDIA GPUs only, nothing to install on a Mac"
        fix = install_command(PIP_NAMES.get(module, module))
        return f"  [no ] {module:<13} {purpose}: not usable ({why}); fix: `{fix}`"
    return f"  [yes] {module:<13} {purpose} ({getattr(mod, '__version__', 'installed')})"


def install_kind(prefix: str | None = None) -> str:
    """How this Continuo was installed, from the receipt its installer left in the environment: pipx
    (pipx_metadata.json), uv (uv-receipt.toml, `uv tool install`), else pip."""
    folder = Path(prefix or sys.prefix)
    if (folder / "pipx_metadata.json").is_file():
        return "pipx"
    if (folder / "uv-receipt.toml").is_file():
        return "uv"
    return "pip"


def install_command(package: str, prefix: str | None = None) -> str:
    """The one command that adds package to the environment Continuo runs in."""
    kind = install_kind(prefix)
    if kind == "pipx":
        return f"pipx inject continuo '{package}'"
    if kind == "uv":
        return f"uv tool install --reinstall continuo --with '{package}'"
    python = str(Path(sys.executable))
    return f'"{python}" -m pip install "{package}"' if " " in python else f"{python} -m pip install '{package}'"


def clients_dir() -> Path | None:
    """The DAW and patcher clients: clients/ of a checkout, or <env>/share/continuo/clients from the wheel."""
    for folder in (CHECKOUT / "clients", Path(sys.prefix) / "share" / "continuo" / "clients"):
        if (folder / "max" / "Continuo.amxd").is_file():
            return folder
    return None


def platform_lines() -> list[str]:
    """What this platform still lacks for Continuo, each with the one command that fixes it; and where the clients
    are."""
    from inference.runtime.kernels import missing_tools

    lines = []
    tools = missing_tools()
    if tools is not None:
        lines.append(f"  [no ] C++ kernels: {tools}")
    if sys.platform == "darwin" and platform.machine() == "arm64":
        from inference.runtime.device import check_mps

        mps = check_mps()
        if not mps.usable:
            lines.append(f"  [no ] Apple GPU: {mps.reason}")
    folder = clients_dir()
    lines.append(f"  clients (Max device, Pd patch, Reaper scripts): {folder}" if folder is not None else
                 "  clients: not found with this install; get them from the project's clients/ folder")
    if len(lines) == 1:
        lines.insert(0, f"  [yes] nothing missing on {sys.platform} ({platform.machine()})")
    return lines


def midi_ports_line() -> str:
    try:
        import mido

        names = mido.get_input_names()
    except Exception as exc:
        return f"  MIDI inputs: none usable ({type(exc).__name__}: {exc})"
    return f"  MIDI inputs: {', '.join(names) if names else 'none found (no controller connected or no MIDI driver)'}"


def model_line(settings: Settings) -> str:
    """Where --model would come from; the doctor itself never downloads."""
    from inference.errors import ModelLoadError
    from inference.loading import check_network, resolve_model

    try:
        source = resolve_model(settings.model, tiny_dir=Path(settings.smoke_model_dir).expanduser(),
                               allow_tiny_fallback=False, offline=True)
    except ModelLoadError as exc:
        network = check_network(settings.model, None, 2.0) if "/" in settings.model else "not a hub id"
        if network is None:
            return f"  model {settings.model!r}: not on this machine yet; `continuo serve` will download it"
        fallback = ("the daemon would serve the tiny RANDOM smoke model (noise, not music)"
                    if settings.allow_smoke_model else "the daemon would refuse to start")
        return f"  model {settings.model!r}: not on this machine: {exc}\n  hub: {network}\n  -> {fallback}"
    line = f"  model {settings.model!r}: {source.kind} at {source.path}" + (
        "  (RANDOM smoke model: noise, not music)" if source.is_random else "")
    return "\n".join([line, *quality_lines(source.path)])


def quality_lines(path: Path | None) -> list[str]:
    """The lossy-mode decisions saved for this checkpoint on this machine (calibration, DiT plan), and the speed
    the engine measured at its last warm-up here (the real-time factor: does it keep up with playback)."""
    from inference.runtime.plans import SPEED, describe_plans

    if path is None:
        return []
    try:
        saved = describe_plans(path)
    except OSError as exc:
        return [f"  quality decisions: unreadable ({exc})"]
    decisions = [f"  quality decision: {kind} ({settings}): {summary}" for kind, settings, summary in saved
                 if not kind.endswith(SPEED)]
    speeds = [f"  speed on this machine: {summary} [{settings}]" for kind, settings, summary in saved
              if kind.endswith(SPEED)]
    return [*(decisions or ["  quality decisions: none saved yet (the first load measures lossy modes against "
                            "fp32, a few seconds)"]),
            *(speeds or ["  speed on this machine: not measured yet (`continuo serve` times a 1 s take at warm-up; "
                         "a running daemon's figure from finished jobs: `continuo status`, seconds_per_audio_s)"])]


def run_doctor(settings: Settings) -> int:
    import torch

    from inference.runtime.device import describe_accelerations, describe_modes, pick_device

    if settings.cluster and not settings.cluster.startswith("local:"):
        from bridge.cluster.spec import use_token_auth

        use_token_auth()  # before the package list imports Ray: Ray reads its auth mode when first imported
    print(f"continuo doctor: Python {sys.version.split()[0]} on {platform.platform()}")
    print(f"  torch {torch.__version__}; device for --device {settings.device}: {pick_device(settings.device)}")
    print(f"this platform ({install_kind()} install at {sys.prefix}):")
    for line in platform_lines():
        print(line)
    print("accelerations:")
    for row in describe_accelerations():
        print(f"  [{'yes' if row.usable else 'no '}] {row.name:<22} {row.reason}")
    print("engine modes (settings weights / kv_cache / attention / compile_decode):")
    for row in describe_modes(pick_device(settings.device)):
        print(f"  [{'yes' if row.usable else 'no '}] {row.name:<22} {row.reason}")
    print("stems separation paths (inference/stems/paths.py; auto falls back to fp32 if a path fails):")
    from inference.stems.separator import describe_paths

    for row in describe_paths():
        print(f"  [{'yes' if row.usable else 'no '}] {row.name:<22} {row.reason}")
    print("packages:")
    for module, purpose in OPTIONAL_PACKAGES.items():
        print(package_line(module, purpose))
    print("MIDI:")
    print(midi_ports_line())
    print("model:")
    print(model_line(settings))
    print("cluster:")
    for line in cluster_lines(settings):
        print(line)
    return 0


def cluster_lines(settings: Settings) -> list[str]:
    """The cluster the `cluster` setting names: its replicas, their devices and warm models."""
    if not settings.cluster:
        return ["  none set (--cluster local:N or ADDRESS runs the engine as Ray Serve replicas)"]
    from bridge.errors import ConfigError

    try:
        from bridge.cluster.connection import describe_cluster

        return describe_cluster(settings)
    except ConfigError as exc:
        return [f"  {exc.message}"]
    except Exception as exc:  # an unreachable cluster is reported, never a crash
        return [f"  cannot reach {settings.cluster}: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}"]
