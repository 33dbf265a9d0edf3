"""Static, preallocated self-attention caches: full precision, mu-law int8 and linear int8 (KVCacheMode).

MuLawKVCache holds int8 mu-law codes with a scale per token; Int8KVCache linear codes with an fp32 scale per row,
head and token (a quarter of fp32's bytes; mu-law's per-element exp made the fused kernel compute-bound).

Both hold (B, H, T, D) keys and values for T = max_positions allocated up
front; update(input_pos, k, v, kv_end) writes in place and returns the keys
and values to attend to: the first kv_end positions, or the whole buffer when
kv_end is None (static shapes for CUDA graphs; the caller masks).

For one decode query the fused CPU kernel reads the cache where it lies instead:
write(input_pos, k, v), then attend_one(q, kv_end, op, scale) (fp32, bf16 and mu-law caches;
fused_readable says which).

Batched decoding of several jobs (inference.musicgen.batching) gives each row its own position: write_rows puts
one token per row at that row's position, read returns the first kv_end positions of every row (a row's
later positions are masked by the caller), row_view is a cache over a range of rows (the same memory),
and copy_into / move_rows keep the rows when the scheduler grows the cache or packs its rows.
"""

from __future__ import annotations

import copy
import math
from enum import Enum

import torch
from torch import Tensor, nn


class KVCacheMode(str, Enum):
    """How the self-attention cache stores keys and values."""

    AUTO = "auto"  # int8 under int8 weights and our CPU attention (if calibration keeps it), else the weights' dtype
    FP32 = "fp32"
    FP16 = "fp16"
    BF16 = "bf16"
    MULAW8 = "mulaw8"  # int8 mu-law codes + one fp16 abs-max scale per token
    INT8 = "int8"  # int8 linear codes + one fp32 abs-max scale per head and token

    @classmethod
    def parse(cls, name: str) -> KVCacheMode:
        try:
            return cls(name.strip().lower())
        except ValueError:
            names = ", ".join(mode.value for mode in cls)
            raise ValueError(f"unknown kv_cache mode {name!r}; choose one of {names}") from None


DTYPES = {KVCacheMode.FP32: torch.float32, KVCacheMode.FP16: torch.float16, KVCacheMode.BF16: torch.bfloat16}
LOSSY_CACHES = (KVCacheMode.INT8, KVCacheMode.MULAW8)  # calibrated at load on the CPU (musicgen/calibration.py)
WRITE_OP_DTYPES = (torch.float32, torch.bfloat16, torch.int8)  # what inference/runtime/csrc's cache_write stores
DEFAULT_MU = 64.0


class KVCache(nn.Module):
    def __init__(self, batch: int, heads: int, positions: int, head_dim: int, dtype: torch.dtype, device=None):
        super().__init__()
        shape = (batch, heads, positions, head_dim)
        self.register_buffer("k_cache", torch.zeros(shape, dtype=dtype, device=device), persistent=False)
        self.register_buffer("v_cache", torch.zeros(shape, dtype=dtype, device=device), persistent=False)

    def update(self, input_pos: Tensor, k: Tensor, v: Tensor, kv_end: int | None) -> tuple[Tensor, Tensor]:
        # input_pos (T,), k/v (B, H, T, D)
        self.write(input_pos, k, v)
        keys, values = (self.k_cache, self.v_cache) if kv_end is None else (
            self.k_cache[:, :, :kv_end], self.v_cache[:, :, :kv_end])
        return keys.to(k.dtype), values.to(v.dtype)

    kernel_writes = True  # inference/runtime/csrc's cache_write stores this cache's format (not mu-law)

    def write(self, input_pos: Tensor, k: Tensor, v: Tensor) -> None:
        """Every row's tokens at positions input_pos (T,): k/v (B, H, T, D)."""
        if input_pos.shape[0] == 1 and self.write_op(k) is not None:  # a decode step
            self.write_rows(input_pos.expand(k.shape[0]), k, v)
        else:
            self.write_span(input_pos, k, v)

    def write_span(self, input_pos: Tensor, k: Tensor, v: Tensor) -> None:
        """Torch's write of every row's tokens at input_pos (a prefill, or where the kernel does not write)."""
        self.k_cache.index_copy_(2, input_pos, k.to(self.k_cache.dtype))
        self.v_cache.index_copy_(2, input_pos, v.to(self.v_cache.dtype))

    def write_op(self, k: Tensor):
        """Our CPU kernel's cache_write where it takes this cache and k, else None (torch writes)."""
        buffer = self.row_buffers()[0]
        if not self.kernel_writes or buffer.device.type != "cpu" or k.dtype != torch.float32 \
                or buffer.dtype not in WRITE_OP_DTYPES:
            return None
        if torch.compiler.is_compiling():  # compiled decode traces torch's writes (the kernel is opaque to it)
            return None
        from inference.runtime.kernels import cache_write_op

        return cache_write_op()

    def write_rows(self, positions: Tensor, k: Tensor, v: Tensor) -> None:
        """One token per row at that row's own position: positions (B,), k/v (B, H, 1, D)."""
        op = self.write_op(k)
        if op is not None:
            op(self.k_cache, self.v_cache, k, v, positions, None, None)
            return
        rows = torch.arange(positions.shape[0], device=positions.device)
        self.k_cache[rows, :, positions] = k[:, :, 0].to(self.k_cache.dtype)
        self.v_cache[rows, :, positions] = v[:, :, 0].to(self.v_cache.dtype)

    def read(self, kv_end: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """Keys and values (B, H, kv_end, D) of every row, in dtype."""
        return self.k_cache[:, :, :kv_end].to(dtype), self.v_cache[:, :, :kv_end].to(dtype)

    @property
    def fused_readable(self) -> bool:
        return self.k_cache.device.type == "cpu" and self.k_cache.dtype in (torch.float32, torch.bfloat16)

    def attend_one(self, q: Tensor, kv_end: int, op, scale: float, mask: Tensor | None = None) -> Tensor:
        """q (B, H, 1, D) fp32 over the first kv_end positions -> (B, 1, H*D), by the fused kernel op.

        mask (B, kv_end) bool: the keys each row sees (rows at different positions); None: all of them."""
        return op(q, self.k_cache, self.v_cache, kv_end, None, None, None, mask, scale)

    def nbytes(self) -> int:
        return sum(buffer.numel() * buffer.element_size() for name, buffer in self.named_buffers() if name != "table")

    @property
    def rows(self) -> int:
        return self.row_buffers()[0].shape[0]

    @property
    def positions(self) -> int:
        return self.row_buffers()[0].shape[2]

    def row_buffers(self) -> list[Tensor]:
        """The buffers that hold rows (B, ., T, .): everything but a lookup table."""
        return [buffer for name, buffer in self._buffers.items() if name != "table"]

    def row_view(self, start: int, stop: int) -> KVCache:
        """A cache over rows start..stop-1 of this one: the same memory, writes land here."""
        view = copy.copy(self)
        view._buffers = {name: buffer if name == "table" else buffer[start:stop]
                         for name, buffer in self._buffers.items()}
        return view

    def copy_into(self, other: KVCache) -> None:
        """Every row and position of this cache into the first rows and positions of a larger one."""
        for mine, theirs in zip(self.row_buffers(), other.row_buffers()):
            theirs[: mine.shape[0], :, : mine.shape[2]].copy_(mine)

    def move_rows(self, source: int, target: int, count: int, positions: int) -> None:
        """Rows source..source+count-1 (their first positions) to target..target+count-1."""
        for buffer in self.row_buffers():
            buffer[target : target + count, :, :positions] = buffer[source : source + count, :, :positions].clone()


def mulaw_encode(x: Tensor, mu: float = DEFAULT_MU) -> tuple[Tensor, Tensor]:
    """x (B, H, T, D) -> int8 codes (B, H, T, D) and one fp16 abs-max scale per token (B, 1, T, 1)."""
    scale = x.abs().amax(dim=(1, 3), keepdim=True).float().clamp_min(1e-8)
    unit = x.float() / scale  # in [-1, 1]
    companded = torch.sign(unit) * torch.log1p(mu * unit.abs()) / math.log1p(mu)
    return torch.round(companded * 127).to(torch.int8), scale.to(torch.float16)


def mulaw_table(mu: float = DEFAULT_MU, dtype: torch.dtype = torch.float32, device=None) -> Tensor:
    """(256,) unit value of every int8 code, indexed by code + 128."""
    companded = torch.arange(-128, 128, dtype=torch.float64) / 127
    unit = torch.sign(companded) * torch.expm1(companded.abs() * math.log1p(mu)) / mu
    return unit.to(dtype=dtype, device=device)


def mulaw_decode(codes: Tensor, scale: Tensor, mu: float = DEFAULT_MU, dtype: torch.dtype = torch.float32,
                 table: Tensor | None = None) -> Tensor:
    """int8 codes (B, H, T, D) and scales (B, 1, T, 1) -> values; a lookup table, then one multiply."""
    table = mulaw_table(mu, dtype, codes.device) if table is None else table
    return table[codes.int() + 128] * scale.to(dtype)  # int32 indices: half the traffic of int64, same values


class MuLawKVCache(KVCache):
    """int8 mu-law keys/values, one fp16 abs-max scale per (batch, token) over all heads: about 0.25x of fp32."""

    def __init__(self, batch: int, heads: int, positions: int, head_dim: int, mu: float = DEFAULT_MU, device=None):
        nn.Module.__init__(self)
        self.mu = mu
        self.register_buffer("table", mulaw_table(mu, device=device), persistent=False)
        shape, scale_shape = (batch, heads, positions, head_dim), (batch, 1, positions, 1)
        for name in ("k", "v"):
            self.register_buffer(f"{name}_codes", torch.zeros(shape, dtype=torch.int8, device=device), persistent=False)
            self.register_buffer(
                f"{name}_scale", torch.zeros(scale_shape, dtype=torch.float16, device=device), persistent=False
            )

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x (B, H, T, D) -> (codes, scales) as this cache stores them."""
        return mulaw_encode(x, self.mu)

    kernel_writes = False  # the kernel's int8 writes are linear (Int8KVCache)

    def write_span(self, input_pos: Tensor, k: Tensor, v: Tensor) -> None:
        for codes, scales, x in ((self.k_codes, self.k_scale, k), (self.v_codes, self.v_scale, v)):
            new_codes, new_scales = self.encode(x)
            codes.index_copy_(2, input_pos, new_codes)
            scales.index_copy_(2, input_pos, new_scales)

    def write_rows(self, positions: Tensor, k: Tensor, v: Tensor) -> None:
        op = self.write_op(k)
        if op is not None:
            op(self.k_codes, self.v_codes, k, v, positions, self.k_scale, self.v_scale)
            return
        rows = torch.arange(positions.shape[0], device=positions.device)
        for codes, scales, x in ((self.k_codes, self.k_scale, k), (self.v_codes, self.v_scale, v)):
            new_codes, new_scales = self.encode(x)  # the scale is per row and token: rows stay apart
            codes[rows, :, positions] = new_codes[:, :, 0]
            scales[rows, :, positions] = new_scales[:, :, 0]

    def read(self, kv_end: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        table = self.table.to(dtype)
        keys = mulaw_decode(self.k_codes[:, :, :kv_end], self.k_scale[:, :, :kv_end], self.mu, dtype, table)
        values = mulaw_decode(self.v_codes[:, :, :kv_end], self.v_scale[:, :, :kv_end], self.mu, dtype, table)
        return keys, values

    @property
    def fused_readable(self) -> bool:
        return self.k_codes.device.type == "cpu"

    def attend_one(self, q: Tensor, kv_end: int, op, scale: float, mask: Tensor | None = None) -> Tensor:
        batch, positions = self.k_scale.shape[0], self.k_scale.shape[2]
        return op(q, self.k_codes, self.v_codes, kv_end, self.k_scale.view(batch, positions),
                  self.v_scale.view(batch, positions), self.mu, mask, scale)

    def update(self, input_pos: Tensor, k: Tensor, v: Tensor, kv_end: int | None) -> tuple[Tensor, Tensor]:
        self.write(input_pos, k, v)
        return self.read(self.k_codes.shape[2] if kv_end is None else kv_end, k.dtype)


class Int8KVCache(MuLawKVCache):
    """int8 keys/values, linear, one fp32 abs-max scale per (row, head, token): about 0.27x of fp32.

    One loud K channel coarsens the other 63 of its token (13.8 % attention error at x100, 8.7 % at x30, against
    1.8 % at x1): calibration at load folds each K channel's range into Q (inference/musicgen/calibration.py),
    which keeps it at 1.5-1.9 % at any gain, with this format and kernel unchanged (docs/benchmarks.md, "Quality").

    The batching cache: a step of 8 rows at 350 positions read 550 MB of fp32 cache (36 ms of a 99 ms step,
    bound by memory), so its bytes are the cost of every row added. Linear codes are read by the fused kernel
    with a convert and a multiply per element (mu-law needs an exp), and the scale is per head, so a quiet
    head keeps its own resolution."""

    def __init__(self, batch: int, heads: int, positions: int, head_dim: int, device=None):
        nn.Module.__init__(self)
        self.mu = None
        shape, scale_shape = (batch, heads, positions, head_dim), (batch, heads, positions, 1)
        for name in ("k", "v"):
            self.register_buffer(f"{name}_codes", torch.zeros(shape, dtype=torch.int8, device=device), persistent=False)
            self.register_buffer(f"{name}_scale", torch.zeros(scale_shape, dtype=torch.float32, device=device),
                                 persistent=False)

    kernel_writes = True

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return int8_encode(x)

    def read(self, kv_end: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        return tuple(codes[:, :, :kv_end].to(dtype) * scales[:, :, :kv_end].to(dtype)
                     for codes, scales in ((self.k_codes, self.k_scale), (self.v_codes, self.v_scale)))

    def attend_one(self, q: Tensor, kv_end: int, op, scale: float, mask: Tensor | None = None) -> Tensor:
        return op(q, self.k_codes, self.v_codes, kv_end, self.k_scale[..., 0], self.v_scale[..., 0], None, mask,
                  scale)


def int8_encode(x: Tensor) -> tuple[Tensor, Tensor]:
    """x (B, H, T, D) -> int8 codes (B, H, T, D) and one fp32 abs-max scale per (row, head, token) (B, H, T, 1)."""
    scale = (x.abs().amax(dim=3, keepdim=True).float() / 127).clamp_min(1e-12)
    return torch.round(x.float() / scale).clamp(-127, 127).to(torch.int8), scale


def build_cache_factory(mode: KVCacheMode, *, batch: int, heads: int, positions: int, head_dim: int,
                        activation_dtype: torch.dtype, device, mu: float = DEFAULT_MU):
    """A layer_index -> cache callable for MusicGenDecoder.setup_caches."""
    if mode == KVCacheMode.MULAW8:
        return lambda index: MuLawKVCache(batch, heads, positions, head_dim, mu=mu, device=device)
    if mode == KVCacheMode.INT8:
        return lambda index: Int8KVCache(batch, heads, positions, head_dim, device=device)
    dtype = DTYPES.get(mode, activation_dtype)
    return lambda index: KVCache(batch, heads, positions, head_dim, dtype, device=device)
