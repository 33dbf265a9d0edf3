"""Weight modes for the decoder, applied by swapping nn.Linear layers (or casting), chosen by name.

- fp32, fp16, bf16: cast the decoder (fp16 is CUDA-only). On the CPU, fp32 and bf16 linears run as
  oneDNN inner products over weights reordered once at load (PackedLinear): MKL's sgemm reads a
  batch-2 decode's weights at about 9 GB/s here, the prepacked oneDNN kernel at about 40 (fp32) and 57 (bf16).
- int8: int8 weights with one scale per output channel (Int8Linear): our C++ kernel (AVX-512 VNNI here,
  bound by reading the weights at a decode step's few rows; on CPUs without VNNI, prefill runs one GEMM
  over the dequantized weight instead). Where our kernels cannot be built, torch's dynamic int8 Linear
  (fbgemm/x86) stands in. The LM heads stay bf16 (INT8_KEEP: the logits sampling reads) unless calibration,
  under weights auto, measured int4 or int8 heads within its budget (head_keep, kept_linear; the four heads then
  run as one kernel call, fuse_rows: bf16 1.9-2.4 ms, int8 0.63-0.74, int4 0.53-0.66 ms of CPU a musicgen-small
  step at 1 thread, docs/benchmarks.md); activation outlier channels are folded into the weights at load
  (inference/musicgen/calibration.py).
- int4: 4-bit weights in groups of 32 with an fp16 scale and minimum each (Int4Linear, about 5 bits a weight):
  our C++ kernel with int8 activations on AVX-512 VNNI (portable loop elsewhere), the LM heads as for int8;
  0.62x int8's bytes per step. On CUDA `int4` means bnb-nf4. Lossier than int8: auto takes it only where
  calibration measures it within budget (inference/musicgen/calibration.py).
- bnb-int8, bnb-nf4: bitsandbytes; the CUDA memory savers. They also run on the CPU, slowly,
  which the tests use as a parity reference. To save the memory they are for, layers are swapped one at a
  time where the decoder lies and quantized on their way to the device (built on the meta device); the heads
  stay fp16 linears as transformers keeps lm_head; LLM.int8 runs with threshold 0 (its outlier pass is an
  .any() host sync in every linear; bnb-int8 stays within its CPU tolerance without it).
"""

from __future__ import annotations

import copy
import logging
from enum import Enum

import torch
from torch import nn

log = logging.getLogger("continuo.inference")


class WeightMode(str, Enum):
    AUTO = "auto"  # int8 on the CPU, fp16 on CUDA and mps
    FP32 = "fp32"
    FP16 = "fp16"
    BF16 = "bf16"
    INT8 = "int8"
    INT4 = "int4"  # CPU: our 4-bit kernel; CUDA: bitsandbytes nf4
    BNB_INT8 = "bnb-int8"
    BNB_NF4 = "bnb-nf4"

    @classmethod
    def parse(cls, name: str) -> WeightMode:
        try:
            return cls(name.strip().lower())
        except ValueError:
            names = ", ".join(mode.value for mode in cls)
            raise ValueError(f"unknown weights mode {name!r}; choose one of {names}") from None


GPU_TYPES = ("cuda", "mps")  # where fp16 weights run: NVIDIA's GPUs and Apple's (Metal)


def resolve_weight_mode(mode: WeightMode, device: torch.device) -> WeightMode:
    """auto -> int8 on the CPU (calibration may take int4 within its budget), fp16 on CUDA and on Apple's GPU (mps);
    int4 on CUDA is bitsandbytes nf4 (its 4-bit format there); other modes are checked against the device.

    On mps: fp16 and fp32 always, bf16 where Metal takes it (macOS 14); int8 and int4 (our CPU kernels) and
    bitsandbytes (CUDA kernels) are refused with the mode to use instead."""
    if mode == WeightMode.AUTO:
        return WeightMode.FP16 if device.type in GPU_TYPES else WeightMode.INT8
    if mode == WeightMode.INT4 and device.type == "cuda":
        mode = WeightMode.BNB_NF4
    if mode == WeightMode.INT4 and device.type != "cpu":
        raise ValueError(f"weights 'int4' is a CPU path (our kernels); on {device.type} use fp16")
    if mode == WeightMode.INT4:
        from inference.runtime.kernels import kernels_status

        status = kernels_status()
        if not status.usable:
            raise ValueError(f"weights 'int4' needs our CPU kernels, which are not here ({status.reason}); "
                             "use int8 or fp32")
    if mode == WeightMode.BF16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError("weights 'bf16' needs a GPU with bfloat16 (Ampere / RTX 30xx or newer); use fp16")
    if mode == WeightMode.BF16 and device.type == "mps":
        from inference.runtime.device import mps_bf16_supported

        if not mps_bf16_supported():
            raise ValueError("weights 'bf16' on Apple's GPU needs macOS 14 or newer; use fp16")
    if mode == WeightMode.FP16 and device.type not in GPU_TYPES:
        raise ValueError("weights 'fp16' needs a GPU, NVIDIA's (CUDA) or Apple's (mps) (fp16 matmuls are slow or "
                         "missing on the CPU); use int8 or fp32")
    if mode == WeightMode.INT8 and device.type != "cpu":
        raise ValueError("weights 'int8' is torch's CPU int8 path; on CUDA use bnb-int8, bnb-nf4, fp16 or bf16"
                         if device.type == "cuda" else f"weights 'int8' is a CPU path; on {device.type} use fp16")
    if mode in (WeightMode.BNB_INT8, WeightMode.BNB_NF4) and device.type == "mps":
        raise ValueError(f"weights {mode.value!r} needs bitsandbytes' CUDA kernels, which Apple's GPU has not; "
                         "use fp16")
    if mode == WeightMode.INT8 and not cpu_int8_engine():
        from inference.runtime.kernels import kernels_status

        status = kernels_status()
        if not status.usable:
            raise ValueError("weights 'int8' needs our CPU kernels or torch's x86/fbgemm int8 engine; neither is "
                             f"here ({status.reason}); use fp32")
    if mode in (WeightMode.BNB_INT8, WeightMode.BNB_NF4):
        try:
            import bitsandbytes  # noqa: F401
        except Exception as error:
            raise ValueError(
                f"weights {mode.value!r} needs bitsandbytes (`pip install bitsandbytes`): {error}") from None
    return mode


def activation_dtype(mode: WeightMode, device: torch.device | None = None) -> torch.dtype:
    """The dtype activations (and kv_cache auto) run in; bitsandbytes computes in fp16 on CUDA."""
    if mode in (WeightMode.BNB_INT8, WeightMode.BNB_NF4) and device is not None and device.type == "cuda":
        return torch.float16
    return {WeightMode.FP16: torch.float16, WeightMode.BF16: torch.bfloat16}.get(mode, torch.float32)


def cpu_int8_engine() -> str | None:
    engines = torch.backends.quantized.supported_engines
    return next((name for name in ("x86", "fbgemm") if name in engines), None)


def apply_weight_mode_(decoder: nn.Module, mode: WeightMode, device: torch.device,
                       keep: dict[str, str] | None = None) -> nn.Module:
    """Move the decoder to device and apply mode in place; returns it. keep: int8's linears left in higher
    precision (quantize_int8_cpu_), INT8_KEEP by default."""
    if mode in (WeightMode.FP32, WeightMode.FP16, WeightMode.BF16):
        decoder = decoder.to(device=device, dtype=activation_dtype(mode))
        return prepack_cpu_(decoder) if device.type == "cpu" and onednn_linear_available() else decoder
    if mode in (WeightMode.INT8, WeightMode.INT4):
        keep = INT8_KEEP if keep is None else keep
        quantize = quantize_int8_cpu_ if mode == WeightMode.INT8 else quantize_int4_cpu_
        return quantize(decoder.to(device="cpu", dtype=torch.float32), keep=keep)
    swap_bnb_(decoder.to(dtype=activation_dtype(mode, device)), mode, device)  # cast where it lies (the CPU)
    return decoder.to(device=device)  # what is left: heads, norms, embeddings (bnb layers are there already)


def onednn_linear_available() -> bool:
    """torch built with oneDNN (mkldnn) and its prepacked linear ops: every x86 and arm64 wheel."""
    ops = torch.ops.mkldnn
    return (torch.backends.mkldnn.is_available() and hasattr(ops, "_linear_pointwise")
            and hasattr(ops, "_reorder_linear_weight"))


class PackedLinear(nn.Module):
    """nn.Linear whose weight oneDNN reordered once into its blocked layout; same arithmetic, faster small batches."""

    def __init__(self, linear: nn.Linear, batch_hint: int = 2):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        weight = linear.weight.detach()
        self.register_buffer("packed", torch.ops.mkldnn._reorder_linear_weight(weight, batch_hint), persistent=False)
        bias = None if linear.bias is None else linear.bias.detach()
        self.register_buffer("bias", bias, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


def prepack_cpu_(decoder: nn.Module) -> nn.Module:
    """Swap every nn.Linear (fp32 or bf16, on the CPU) for PackedLinear."""
    for parent, name, linear in list(linears(decoder)):
        setattr(parent, name, PackedLinear(linear))
    return decoder


def onednn_bf16_available() -> bool:
    ops = torch.ops.mkldnn
    return (torch.backends.mkldnn.is_available() and hasattr(ops, "_linear_pointwise")
            and hasattr(ops, "_reorder_linear_weight") and torch.ops.mkldnn._is_mkldnn_bf16_supported())


class Bf16Linear(nn.Module):
    """bf16 weights reordered once for oneDNN (AMX where the CPU has it); fp32 activations in and out."""

    def __init__(self, linear: nn.Linear, rows_hint: int = 2):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        weight = linear.weight.detach().to(torch.bfloat16)
        self.register_buffer("packed", torch.ops.mkldnn._reorder_linear_weight(weight, max(rows_hint, 1)),
                             persistent=False)
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().float(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.ops.mkldnn._linear_pointwise(x.to(torch.bfloat16), self.packed, None, "none", [], "").float()
        return out if self.bias is None else out + self.bias

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Int8Linear(nn.Module):
    """int8 weights, one fp32 scale per output channel (symmetric abs-max), fp32 activations in and out."""

    # Without VNNI the kernel's portable loop is a plain dot product per row: past this many rows of x
    # (prefill) one GEMM over the dequantized weight is faster. With VNNI the kernel's 4 x 4 tiles are
    # faster at any count measured (1000 rows of 1024 -> 4096: 10 ms against 48 ms), so it runs everything.
    PORTABLE_ROWS = 16

    def __init__(self, linear: nn.Linear, op, vnni: bool):
        super().__init__()
        self.in_features, self.out_features, self.op = linear.in_features, linear.out_features, op
        self.max_rows = None if vnni else self.PORTABLE_ROWS
        weight = linear.weight.detach().float()
        scales = (weight.abs().amax(dim=1) / 127).clamp_min(1e-12)
        codes = torch.round(weight / scales[:, None]).clamp(-127, 127).to(torch.int8).contiguous()
        self.register_buffer("codes", codes, persistent=False)
        self.register_buffer("scales", scales.contiguous(), persistent=False)
        self.register_buffer("row_sums", codes.sum(dim=1, dtype=torch.int32), persistent=False)
        bias = None if linear.bias is None else linear.bias.detach().float()
        self.register_buffer("bias", bias, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.max_rows is None or x.numel() // self.in_features <= self.max_rows:
            return self.op(x, self.codes, self.scales, self.row_sums, self.bias)
        return nn.functional.linear(x, self.codes.float() * self.scales[:, None], self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


INT4_GROUP = 32  # inputs per scale and minimum
INT4_TILE = 16  # output rows per block of the kernel's layout


def int4_codes(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """weight (N, K) -> codes (N, K) uint8 in 0..15, d and m (N, K/32) fp16: w ~ d * q + m per group of 32.

    Each group takes the better (smaller squared error) of two fits: min/max (Q4_1: d = (max - min) / 15,
    m = min) and that code refitted twice by least squares (d, m for the codes, then the codes again). The
    refit is 6 % closer on Gaussian weights, min/max closer on heavy tails (an outlier it keeps exact); relative
    error 0.073 Gaussian, 0.091 Student-t(3), against Q4_0's 0.086 / 0.115 (symmetric, one scale).
    The codes are those of the fp16-rounded d and m the kernel reads."""
    groups = weight.detach().float().reshape(weight.shape[0], -1, INT4_GROUP)
    low, high = groups.amin(dim=2, keepdim=True), groups.amax(dim=2, keepdim=True)
    fits = [(((high - low) / 15).clamp_min(1e-8), low)]
    d, m = fits[0]
    for _ in range(2):
        q = torch.clamp(torch.round((groups - m) / d), 0, 15)
        count, sum_q, sum_qq = INT4_GROUP, q.sum(2, keepdim=True), (q * q).sum(2, keepdim=True)
        sum_w, sum_qw = groups.sum(2, keepdim=True), (q * groups).sum(2, keepdim=True)
        det = count * sum_qq - sum_q * sum_q
        solvable = det > 1e-6
        d = torch.where(solvable, (count * sum_qw - sum_q * sum_w) / det.clamp_min(1e-6), d).clamp_min(1e-8)
        m = torch.where(solvable, (sum_w - d * sum_q) / count, m)
    fits.append((d, m))
    best = None
    for d, m in fits:
        d, m = d.half().float().clamp_min(6e-8), m.half().float()  # what the kernel reads
        q = torch.clamp(torch.round((groups - m) / d), 0, 15)
        error = ((q * d + m - groups) ** 2).sum(2, keepdim=True)
        if best is None:
            best = (error, q, d, m)
        else:
            better = error < best[0]
            best = tuple(torch.where(better, new, old) for new, old in zip((error, q, d, m), best))
    _, q, d, m = best
    return q.reshape(weight.shape).to(torch.uint8), d[..., 0].half(), m[..., 0].half()


def int4_pack(codes: torch.Tensor, d: torch.Tensor, m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """codes (N, K) uint8, d and m (N, K/32) -> the kernel's packed (N/16, K/32, 4, 64) uint8 and scales
    (N/16, K/32, 2, 16) fp16 (layout: inference/runtime/csrc/int4_linear.cpp)."""
    n, k = codes.shape
    tiles, groups = n // INT4_TILE, k // INT4_GROUP
    # k = 32 g + 8 o + 4 h + i; byte (o, 4 r + i) holds h = 0 low, h = 1 high
    q = codes.reshape(tiles, INT4_TILE, groups, 4, 2, 4).permute(0, 2, 3, 4, 1, 5)  # (t, g, o, h, r, i)
    packed = (q[:, :, :, 0] | (q[:, :, :, 1] << 4)).reshape(tiles, groups, 4, 64).contiguous()
    scales = torch.stack([part.reshape(tiles, INT4_TILE, groups).transpose(1, 2) for part in (d, m)], dim=2)
    return packed, scales.contiguous()


def int4_unpack(packed: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """The fp32 weight (N, K) the packed codes stand for (the reference the kernel is tested against)."""
    tiles, groups = packed.shape[:2]
    low, high = packed & 0x0F, packed >> 4
    q = torch.stack([low.reshape(tiles, groups, 4, 16, 4), high.reshape(tiles, groups, 4, 16, 4)], dim=3)
    q = q.permute(0, 4, 1, 2, 3, 5).reshape(tiles * INT4_TILE, groups, INT4_GROUP).float()  # (t, r, g, o, h, i)
    d, m = (scales[:, :, part].transpose(1, 2).reshape(tiles * INT4_TILE, groups, 1).float() for part in (0, 1))
    return (q * d + m).reshape(tiles * INT4_TILE, groups * INT4_GROUP)


def int4_fits(linear: nn.Linear) -> bool:
    """The kernel's layout takes this linear: outputs a multiple of 16, inputs of 32."""
    return linear.out_features % INT4_TILE == 0 and linear.in_features % INT4_GROUP == 0


class Int4Linear(nn.Module):
    """4-bit weights in groups of 32 (fp16 scale and minimum each, about 5 bits a weight), fp32 activations in and
    out: int4_linear, with int8 activations on AVX-512 VNNI. Without VNNI, more rows than PORTABLE_ROWS (prefill)
    run one GEMM over the dequantized weight, as Int8Linear does."""

    PORTABLE_ROWS = 16

    def __init__(self, linear: nn.Linear, op, vnni: bool):
        super().__init__()
        self.in_features, self.out_features, self.op, self.vnni = linear.in_features, linear.out_features, op, vnni
        packed, scales = int4_pack(*int4_codes(linear.weight))
        self.register_buffer("packed", packed, persistent=False)
        self.register_buffer("scales", scales, persistent=False)
        bias = None if linear.bias is None else linear.bias.detach().float()
        self.register_buffer("bias", bias, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.vnni or x.numel() // self.in_features <= self.PORTABLE_ROWS:
            return self.op(x, self.packed, self.scales, self.bias, self.vnni)
        return nn.functional.linear(x, int4_unpack(self.packed, self.scales), self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


def quantize_int4_cpu_(decoder: nn.Module, keep: dict[str, str] | None = None) -> nn.Module:
    """Swap every nn.Linear for Int4Linear (our kernel; int8 where the layout does not fit it); keep as for
    quantize_int8_cpu_ (INT8_KEEP: the LM heads bf16)."""
    from inference.runtime.kernels import int4_linear_op

    if int4_linear_op() is None:
        from inference.runtime.kernels import kernels_status

        raise ValueError(f"weights 'int4' needs our CPU kernels ({kernels_status().reason}); use int8 or fp32")
    keep = keep or {}
    names = {id(module): name for name, module in decoder.named_modules()}
    for parent, name, linear in list(linears(decoder)):
        kind = next((kind for prefix, kind in keep.items() if names[id(linear)].startswith(prefix)), None)
        setattr(parent, name, kept_linear(linear, kind) if kind is not None else kernel_linear(linear, "int4"))
    return decoder


def quantize_int8_cpu_(decoder: nn.Module, keep: dict[str, str] | None = None) -> nn.Module:
    """Swap every nn.Linear for Int8Linear; torch's dynamic int8 Linear where our kernels cannot be built.

    keep: name prefix -> "bf16" or "fp32": the linears under it stay in that precision (kept_linear)."""
    from inference.runtime.kernels import int8_linear_op

    keep = keep or {}
    names = {id(module): name for name, module in decoder.named_modules()}

    def kept(linear: nn.Linear) -> str | None:
        name = names[id(linear)]
        return next((kind for prefix, kind in keep.items() if name.startswith(prefix)), None)

    op = int8_linear_op()
    if op is None:
        from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear
        from torch.ao.quantization import per_channel_dynamic_qconfig

        torch.backends.quantized.engine = cpu_int8_engine()
    vnni = op is not None and bool(torch.ops.continuo_cpu.int8_linear_uses_vnni())
    for parent, name, linear in list(linears(decoder)):
        kind = kept(linear)
        if kind is not None:
            setattr(parent, name, kept_linear(linear, kind))
        elif op is not None:
            setattr(parent, name, Int8Linear(linear, op, vnni))
        else:
            linear.qconfig = per_channel_dynamic_qconfig
            setattr(parent, name, DynamicInt8Linear.from_float(linear))
    return decoder


def kept_linear(linear: nn.Linear, kind: str) -> nn.Module:
    """A linear in the precision `kind` names beside the decoder's weight mode: "bf16" (bf16 weights through oneDNN,
    fp32 in and out, where it has bf16 kernels, else fp32), "fp32" (prepacked where oneDNN is), or "int8" / "int4"
    (our kernels: the LM heads where calibration took them; int8 where int4's layout does not fit)."""
    if kind in ("int8", "int4"):
        return kernel_linear(linear, kind)
    if kind == "bf16" and onednn_bf16_available():
        return Bf16Linear(linear)
    return PackedLinear(linear) if onednn_linear_available() else linear


def kernel_linear(linear: nn.Linear, kind: str) -> nn.Module:
    """linear as Int4Linear or Int8Linear on our kernels (int8 where int4's layout does not fit it)."""
    from inference.runtime.kernels import int4_linear_op, int8_linear_op, kernels_status

    op = int4_linear_op() if kind == "int4" else int8_linear_op()
    if op is None:
        raise ValueError(f"{kind} LM heads need our CPU kernels ({kernels_status().reason}); use bf16 heads")
    vnni = bool(torch.ops.continuo_cpu.int8_linear_uses_vnni())
    if kind == "int4" and int4_fits(linear):
        return Int4Linear(linear, op, vnni)
    return Int8Linear(linear, op if kind == "int8" else int8_linear_op(), vnni)


def fuse_rows(parts: list[nn.Module]) -> nn.Module | None:
    """One Int8Linear or Int4Linear computing every part's outputs, concatenated (the four LM heads in one kernel
    call), or None when the parts are not all one such kind. The parts' buffers become views of the fused one's:
    no byte is held twice."""
    kind = type(parts[0])
    if kind not in (Int8Linear, Int4Linear) or any(type(part) is not kind for part in parts):
        return None
    if kind is Int8Linear and (parts[0].op is None or any(part.max_rows != parts[0].max_rows for part in parts)):
        return None
    if kind is Int4Linear and any(part.vnni != parts[0].vnni or part.op is not parts[0].op for part in parts):
        return None
    if any(part.in_features != parts[0].in_features or (part.bias is None) != (parts[0].bias is None)
           for part in parts):
        return None
    fused = copy.copy(parts[0])  # the kind's settings (op, vnni, rows); its buffers replaced below
    fused._buffers = dict(parts[0]._buffers)
    fused.out_features = sum(part.out_features for part in parts)
    for name, tensor in parts[0]._buffers.items():
        if tensor is None:
            continue
        whole = torch.cat([part._buffers[name] for part in parts]).contiguous()
        fused._buffers[name] = whole
        offset = 0
        for part in parts:
            rows = part._buffers[name].shape[0]
            part._buffers[name] = whole[offset : offset + rows]
            offset += rows
    return fused


HEAD_MODES = ("bf16", "int8", "int4")  # the LM heads' precision beside int8 / int4 weights


def check_heads(heads: str) -> str:
    """heads, when it is one of HEAD_MODES; else a ValueError that lists them."""
    if heads not in HEAD_MODES:
        raise ValueError(f"LM heads must be one of {', '.join(HEAD_MODES)}, got {heads!r}")
    return heads


def head_keep(heads: str) -> dict[str, str]:
    """The keep table (quantize_int8_cpu_, quantize_int4_cpu_) that puts the LM heads in `heads` (HEAD_MODES)."""
    return {"heads.": check_heads(heads)}


INT8_KEEP = head_keep("bf16")  # int8 / int4 weights keep the LM heads bf16 unless calibration measured int8 or int4
# heads within its budget (inference/musicgen/calibration.py; docs/benchmarks.md, "Quality")
BNB_KEEP = ("heads.",)  # stay in the activation dtype, as transformers keeps lm_head: logits need the precision


def swap_bnb_(decoder: nn.Module, mode: WeightMode, device: torch.device,
              compute_dtype: torch.dtype | None = None) -> nn.Module:
    """Swap every nn.Linear (but the heads) for a bitsandbytes layer, one at a time, from wherever the decoder
    lies (the CPU at load): each layer is quantized on its move to the device, so the device never holds the
    unquantized decoder, and the bnb layers are built on the meta device (no random fp32 weights first).
    compute_dtype: nf4's matmul dtype (default the activation dtype; QLoRA training takes bf16 where the GPU has it).

    LLM.int8 runs with threshold 0: no outlier decomposition, whose `if outliers.any()` is a host sync in
    every linear of every step (and stops graph capture); the weights are int8 with one scale per row either way.
    """
    import bitsandbytes as bnb

    compute = compute_dtype or activation_dtype(mode, device)
    keep = {id(module) for name, module in decoder.named_modules() if name.startswith(BNB_KEEP)}
    for parent, name, linear in list(linears(decoder)):
        if id(linear) in keep:
            continue
        with torch.device("meta"):
            if mode == WeightMode.BNB_INT8:
                swapped = bnb.nn.Linear8bitLt(linear.in_features, linear.out_features, bias=linear.bias is not None,
                                              has_fp16_weights=False, threshold=0.0)
            else:
                swapped = bnb.nn.Linear4bit(linear.in_features, linear.out_features, bias=linear.bias is not None,
                                            compute_dtype=compute, quant_type="nf4")
        weight = linear.weight.data.cpu()
        if mode == WeightMode.BNB_INT8:
            swapped.weight = bnb.nn.Int8Params(weight, requires_grad=False, has_fp16_weights=False)
        else:
            swapped.weight = bnb.nn.Params4bit(weight, requires_grad=False, quant_type="nf4")
        if linear.bias is not None:
            swapped.bias = nn.Parameter(linear.bias.data.to(compute), requires_grad=False)
        setattr(parent, name, swapped.to(device))  # bitsandbytes quantizes on the move to the device
        del linear, weight
    return decoder


def linears(module: nn.Module):
    """(parent, attribute name, nn.Linear) for every plain nn.Linear below module."""
    for parent in module.modules():
        for name, child in parent.named_children():
            if type(child) is nn.Linear:
                yield parent, name, child


def weight_bytes(module: nn.Module) -> int:
    """Bytes of parameters, buffers and packed quantized weights (what a decode step reads)."""
    total = sum(t.numel() * t.element_size() for t in module.parameters())
    total += sum(t.numel() * t.element_size() for name, t in module.named_buffers() if not name.endswith("positions"))
    for child in module.modules():
        if hasattr(child, "weight") and callable(child.weight):  # torch dynamic int8 Linear: packed weight
            weight = child.weight()
            total += weight.numel() + weight.q_per_channel_scales().numel() * 8
    return total
