"""How one HDemucs segment is computed: the separation paths, picked by what this machine has.

A path turns one segment (1, 2, L) at 44.1 kHz into (1, S, 2, L) stems, exactly like ``model(segment)``:

- ``fp32``: PyTorch in float32, the reference (and the fallback every other path falls back to).
- ``bf16``: PyTorch under CPU autocast to bfloat16 (oneDNN runs the convolutions and LSTMs in bf16 on
  AVX-512 BF16 / AMX; the STFT, ISTFT and the masks stay float32). Picked only where the CPU has
  bf16 in hardware (``inference.runtime.device.cpu_bf16``); elsewhere autocast emulates it and is slower.
- ``openvino-bf16`` / ``openvino-fp32``: the network between the STFT and the ISTFT (``HDemucsCore``)
  exported once to OpenVINO IR, cached beside the weights, compiled for this CPU (the optional extra
  ``continuo[stems-fast]``). The STFT, normalisation, masks and ISTFT stay in PyTorch float32.

``auto`` picks the fastest usable one (measured in docs/benchmarks.md): openvino-bf16 where the CPU has
bf16 and OpenVINO is installed, then bf16, then openvino-fp32, then fp32. A path that fails to build or to
run falls back to fp32 with one log line (``inference.stems.separator.StemSeparator``); it never breaks a job.
``continuo doctor`` shows the pick. Chosen from measurements (docs/benchmarks.md, "Stems"): OpenVINO wins
clearly; ``torch.compile`` (inductor) was dropped (7 minutes to compile on 2 cores, recompiles per layer and graph
breaks at the LSTMs); segment and overlap stay 10 s / 1 s (changing them changes the separation; no fast path
needs it); int8 was not tried (HDemucs is convolutions and LSTMs: attention and linear layers are under 1 % of
its time). Quality is held by tests on real-shaped random weights (hdemucs_high) and a synthetic mix: every stem
within -40 dB of fp32, energy within 0.5 dB, stems summing to the mix within 1e-4.

This module never imports ``bridge``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

log = logging.getLogger("continuo.stems")

PATHS: tuple[str, ...] = ("fp32", "bf16", "openvino-fp32", "openvino-bf16")
SegmentFn = Callable[[torch.Tensor], torch.Tensor]  # (1, 2, L) -> (1, S, 2, L), float32
CoreFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]  # HDemucsCore's signature
_EXPORT_LOCKS: dict[Path, threading.Lock] = {}  # one export per file at a time in this process (several workers)
_EXPORT_LOCKS_LOCK = threading.Lock()


class PathUnavailable(RuntimeError):
    """This machine cannot run the path asked for; the message says why and what to install."""


class HDemucsCore(torch.nn.Module):
    """torchaudio's ``HDemucs.forward`` between the STFT and the ISTFT, on real tensors only.

    (x (B, 2C, F, T) normalised magnitudes, xt (B, C, L) normalised wave) -> (x (B, S*2C, F, T), xt (B, S*C, L)).
    The same code as torchaudio 2.9's forward, so an exporter sees no complex numbers.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, xt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.model
        saved: list[torch.Tensor] = []
        saved_t: list[torch.Tensor] = []
        lengths: list[int] = []
        lengths_t: list[int] = []
        for idx, encode in enumerate(m.freq_encoder):
            lengths.append(x.shape[-1])
            inject = None
            if idx < len(m.time_encoder):
                lengths_t.append(xt.shape[-1])
                xt = m.time_encoder[idx](xt)
                if m.time_encoder[idx].empty:
                    inject = xt  # the time branch merges into the frequency branch here
                else:
                    saved_t.append(xt)
            x = encode(x, inject)
            if idx == 0 and m.freq_emb is not None:
                frs = torch.arange(x.shape[-2], device=x.device)
                emb = m.freq_emb(frs).t()[None, :, :, None].expand_as(x)
                x = x + m.freq_emb_scale * emb
            saved.append(x)
        x = torch.zeros_like(x)
        xt = torch.zeros_like(x)
        offset = m.depth - len(m.time_decoder)
        for idx, decode in enumerate(m.freq_decoder):
            x, pre = decode(x, saved.pop(-1), lengths.pop(-1))
            if idx >= offset:
                tdec = m.time_decoder[idx - offset]
                if tdec.empty:
                    xt, _ = tdec(pre[:, :, 0], None, lengths_t.pop(-1))
                else:
                    xt, _ = tdec(xt, saved_t.pop(-1), lengths_t.pop(-1))
        return x, xt


def split_forward(model: torch.nn.Module, core: CoreFn, segment: torch.Tensor) -> torch.Tensor:
    """``model(segment)`` with the middle computed by ``core``: STFT, normalisation, masks and ISTFT in float32."""
    length = segment.shape[-1]
    mag = model._magnitude(model._spec(segment))
    batch, _, freqs, frames = mag.shape
    mean, std = mag.mean(dim=(1, 2, 3), keepdim=True), mag.std(dim=(1, 2, 3), keepdim=True)
    mean_t, std_t = segment.mean(dim=(1, 2), keepdim=True), segment.std(dim=(1, 2), keepdim=True)
    x, xt = core((mag - mean) / (1e-5 + std), (segment - mean_t) / (1e-5 + std_t))
    sources = len(model.sources)
    x = x.float().view(batch, sources, -1, freqs, frames) * std[:, None] + mean[:, None]
    wave = model._ispec(model._mask(x), length)
    return xt.float().view(batch, sources, -1, length) * std_t[:, None] + mean_t[:, None] + wave


def torch_path(model: torch.nn.Module, *, bf16: bool) -> SegmentFn:
    """PyTorch eager; ``bf16`` runs it under CPU autocast (convolutions, LSTMs and matmuls in bfloat16)."""
    def run(segment: torch.Tensor) -> torch.Tensor:
        if not bf16:
            return model(segment)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return model(segment).float()
    return run


def is_hdemucs(model: torch.nn.Module) -> bool:
    """Fast paths know torchaudio's HDemucs only; any other module (a test's stand-in) runs as it is."""
    from torchaudio.models import HDemucs

    return isinstance(model, HDemucs)


def openvino_usable() -> str | None:
    """None when OpenVINO can be imported, else why not (with the install line)."""
    if importlib.util.find_spec("openvino") is None:
        return "OpenVINO is not installed; pip install 'continuo[stems-fast]'"
    return None


def openvino_path(model: torch.nn.Module, *, frames: int, bf16: bool, export_dir: Path, identity: str) -> SegmentFn:
    """The core exported once to OpenVINO IR (cached in ``export_dir``), compiled for this CPU, for segments
    of exactly ``frames`` samples (the separator pads the last one)."""
    why = openvino_usable()
    if why:
        raise PathUnavailable(why)
    import openvino as ov

    core = HDemucsCore(model).eval()
    shapes = core_input_shapes(model, frames)
    xml = export_file(export_dir, identity, frames)
    with _EXPORT_LOCKS_LOCK:
        lock = _EXPORT_LOCKS.setdefault(xml, threading.Lock())
    with lock:  # a second separator in this process waits for the first one's export, then finds the file
        if not xml.is_file():
            export_dir.mkdir(parents=True, exist_ok=True)
            started = time.monotonic()
            log.info("stems: exporting HDemucs to OpenVINO once for %d-frame segments (minutes on a small CPU) -> %s",
                     frames, xml)
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shapes are fixed per export, by design
                exported = ov.convert_model(core, example_input=tuple(torch.zeros(shape) for shape in shapes),
                                            input=[ov.PartialShape(list(shape)) for shape in shapes])
            partial = xml.with_name(f".{xml.stem}.{os.getpid()}.{threading.get_ident()}.xml")
            ov.save_model(exported, partial, compress_to_fp16=False)
            partial.with_suffix(".bin").replace(xml.with_suffix(".bin"))
            partial.replace(xml)
            log.info("stems: OpenVINO export done in %.0f s", time.monotonic() - started)
    config = {"INFERENCE_PRECISION_HINT": "bf16" if bf16 else "f32", "PERFORMANCE_HINT": "LATENCY",
              "INFERENCE_NUM_THREADS": torch.get_num_threads()}
    request = ov.Core().compile_model(str(xml), "CPU", config).create_infer_request()
    request.infer([torch.zeros(shape).numpy() for shape in shapes])  # the first inference repacks weights: not in a job

    def middle(x: torch.Tensor, xt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        result = request.infer([x.contiguous().numpy(), xt.contiguous().numpy()])
        return torch.from_numpy(result[0].copy()), torch.from_numpy(result[1].copy())

    return lambda segment: split_forward(model, middle, segment)


def export_file(export_dir: Path, identity: str, frames: int) -> Path:
    """Where the core's OpenVINO IR for these weights and segment length is cached (its .bin lies beside it)."""
    return export_dir / f"hdemucs-core-{identity}-{frames}.xml"


def core_input_shapes(model: torch.nn.Module, frames: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The core's two input shapes for one segment of ``frames`` samples."""
    with torch.no_grad():
        mag = model._magnitude(model._spec(torch.zeros(1, model.audio_channels, frames)))
    return tuple(mag.shape), (1, model.audio_channels, frames)


def weights_identity(model: torch.nn.Module) -> str:
    """A short hash of the weights, so an export never outlives the weights it was made from."""
    digest = hashlib.sha1()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        flat = tensor.detach().float().flatten()
        digest.update(flat[:: max(1, flat.numel() // 4096)].numpy().tobytes())  # a strided sample: fast, enough
    return digest.hexdigest()[:12]


def auto_order(bf16_cpu: bool, openvino: bool) -> tuple[str, ...]:
    """The paths ``auto`` tries, best first (fp32 always last)."""
    order: list[str] = []
    if bf16_cpu:
        order += ["openvino-bf16"] if openvino else []
        order += ["bf16"]
    order += ["openvino-fp32"] if openvino else []
    return (*order, "fp32")
