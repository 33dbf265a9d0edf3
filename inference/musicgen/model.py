"""Our own MusicGen decoder: shape in ModelArgs (with a name table), weights mapped by name from the HF state dict.

The text encoder (T5) and the codec (EnCodec) stay transformers modules; this
file holds only the autoregressive decoder, the part that runs once per step.
Shapes: B batch, K codebooks, T positions, S text tokens, H heads, D head dim.

Two ways of conditioning, as the checkpoint's config says:
- "cross" (MusicGen): every layer cross-attends to the projected T5 states.
- "prefix" (MusicGen-melody): no cross-attention; the projected chroma frames and
  T5 states are a prefix of the sequence (positions 0..P-1, written into the KV
  cache by start_sequence), and the codes follow at positions P, P+1, ...

Batched decoding of several jobs (inference.musicgen.batching) runs decode_rows: one token per row, each row at its
own position (RowPositions), every row's cache read up to the furthest row and masked per row.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from inference.musicgen.kv_cache import KVCache

ATTENTION_BACKENDS = ("sdpa", "eager", "flash", "fused-cpu")


@dataclass(frozen=True)
class ModelArgs:
    dim: int = 1024
    n_layer: int = 24
    n_head: int = 16
    ffn_dim: int = 4096
    vocab_size: int = 2048  # codes per codebook; the pad/BOS id is vocab_size
    num_codebooks: int = 4
    audio_channels: int = 1
    max_positions: int = 2048
    text_dim: int = 768  # T5 hidden size; projected to dim when they differ
    activation: str = "gelu"
    norm_eps: float = 1e-5
    conditioning: str = "cross"  # "cross" (MusicGen) or "prefix" (MusicGen-melody)
    num_chroma: int = 0  # melody: chroma bins of the melody condition
    chroma_length: int = 0  # melody: chroma frames in the prefix (tiled or cut to this length)

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_head

    @property
    def pad_id(self) -> int:
        return self.vocab_size

    @classmethod
    def from_name(cls, name: str) -> ModelArgs:
        key = name.lower().removeprefix("facebook/")
        if key not in NAMED_SHAPES:
            raise ValueError(f"unknown MusicGen shape {name!r}; known: {', '.join(sorted(NAMED_SHAPES))}")
        return cls(**NAMED_SHAPES[key])

    @classmethod
    def from_hf_config(cls, decoder_config, text_dim: int, melody=None) -> ModelArgs:
        """From transformers' Musicgen(Melody)DecoderConfig; melody: the MusicgenMelodyConfig, for its chroma sizes."""
        chroma = {} if melody is None else dict(conditioning="prefix", num_chroma=melody.num_chroma,
                                                chroma_length=melody.chroma_length)
        return cls(
            **chroma,
            dim=decoder_config.hidden_size,
            n_layer=decoder_config.num_hidden_layers,
            n_head=decoder_config.num_attention_heads,
            ffn_dim=decoder_config.ffn_dim,
            vocab_size=decoder_config.vocab_size,
            num_codebooks=decoder_config.num_codebooks,
            audio_channels=decoder_config.audio_channels,
            max_positions=decoder_config.max_position_embeddings,
            text_dim=text_dim,
            activation=decoder_config.activation_function,
        )


NAMED_SHAPES: dict[str, dict] = {
    "musicgen-small": dict(dim=1024, n_layer=24, n_head=16, ffn_dim=4096),
    "musicgen-medium": dict(dim=1536, n_layer=48, n_head=24, ffn_dim=6144),
    "musicgen-large": dict(dim=2048, n_layer=48, n_head=32, ffn_dim=8192),
    "musicgen-stereo-small": dict(dim=1024, n_layer=24, n_head=16, ffn_dim=4096, num_codebooks=8, audio_channels=2),
    "musicgen-stereo-medium": dict(dim=1536, n_layer=48, n_head=24, ffn_dim=6144, num_codebooks=8, audio_channels=2),
    "musicgen-stereo-large": dict(dim=2048, n_layer=48, n_head=32, ffn_dim=8192, num_codebooks=8, audio_channels=2),
    "tiny": dict(dim=32, n_layer=2, n_head=4, ffn_dim=64, text_dim=24),
}


def sinusoids(positions: int, dim: int) -> Tensor:
    """(positions, dim) as transformers' MusicgenSinusoidalPositionalEmbedding: [cos | sin]."""
    half = dim // 2
    step = math.log(10000) / (half - 1)
    freqs = torch.exp(torch.arange(half, dtype=torch.float32) * -step)
    angles = torch.arange(positions, dtype=torch.float32)[:, None] * freqs[None, :]
    table = torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)
    return F.pad(table, (0, dim % 2))


@dataclass
class RowPositions:
    """One decode step of rows at different positions: positions (B,), and mask (B, kv_end) bool of the keys
    each row sees (None when every row is at the last position: no mask, as a lone request runs)."""

    positions: Tensor
    mask: Tensor | None

    @classmethod
    def build(cls, positions: Tensor, last: int, uniform: bool) -> RowPositions:
        """positions (B,) long on the device; last: the furthest of them, and uniform: all equal, both known
        on the host (no device-to-host read per step). Attend over last + 1 keys."""
        if uniform:
            return cls(positions, None)
        return cls(positions, torch.arange(last + 1, device=positions.device)[None, :] <= positions[:, None])


class Attention(nn.Module):
    """Self-attention (fused qkv, KV cache) or cross-attention (keys/values computed once per request)."""

    def __init__(self, args: ModelArgs, cross: bool):
        super().__init__()
        self.n_head, self.head_dim, self.cross = args.n_head, args.head_dim, cross
        if cross:
            self.wq = nn.Linear(args.dim, args.dim, bias=False)
            self.wkv = nn.Linear(args.dim, 2 * args.dim, bias=False)
        else:
            self.wqkv = nn.Linear(args.dim, 3 * args.dim, bias=False)
        self.wo = nn.Linear(args.dim, args.dim, bias=False)
        self.kv_cache: KVCache | None = None
        self.backend = "sdpa"
        self.decode_op = None  # fused-cpu: torch.ops.continuo_cpu.decode_attention, for one query at a time
        self.scale = self.head_dim**-0.5

    def split_heads(self, x: Tensor) -> Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.n_head, self.head_dim).transpose(1, 2)  # (B, H, T, D)

    def project_memory(self, memory: Tensor) -> tuple[Tensor, Tensor]:
        """(B, S, dim) text states -> keys, values (B, H, S, D); run once per request."""
        k, v = self.wkv(memory).chunk(2, dim=-1)
        return self.split_heads(k), self.split_heads(v)

    def forward(self, x: Tensor, input_pos: Tensor, kv_end: int | None, memory=None,
                rows: RowPositions | None = None) -> Tensor:
        # x (B, T, dim); memory: (keys, values, mask) for cross-attention, mask None when every key counts
        # rows: one token per row at its own position (decode_rows); input_pos is then unused
        fused = self.decode_op is not None and x.shape[1] == 1 and x.dtype == torch.float32
        if self.cross:
            q = self.split_heads(self.wq(x))
            k, v, mask = memory
            if fused:
                flat = None if mask is None else mask[:, 0, 0, :].expand(q.shape[0], -1)
                return self.wo(self.decode_op(q, k, v, k.shape[2], None, None, None, flat, self.scale))
        elif rows is not None:
            q, k, v = (self.split_heads(part) for part in self.wqkv(x).chunk(3, dim=-1))
            if rows.mask is None:  # every row at one position: one index copy, as a lone request writes
                self.kv_cache.write(rows.positions[:1], k, v)
            else:
                self.kv_cache.write_rows(rows.positions, k, v)
            if fused and self.kv_cache.fused_readable:
                return self.wo(self.kv_cache.attend_one(q, kv_end, self.decode_op, self.scale, rows.mask))
            k, v = self.kv_cache.read(kv_end, q.dtype)
            mask = None if rows.mask is None else rows.mask[:, None, None, :]
        else:
            q, k, v = (self.split_heads(part) for part in self.wqkv(x).chunk(3, dim=-1))
            if self.kv_cache is None:  # training (inference/musicgen/training.py): the whole sequence, no cache
                mask = causal_mask(input_pos, k.shape[2], None)
            elif fused and kv_end is not None and self.kv_cache.fused_readable:
                self.kv_cache.write(input_pos, k, v)
                return self.wo(self.kv_cache.attend_one(q, kv_end, self.decode_op, self.scale))
            else:
                k, v = self.kv_cache.update(input_pos, k, v, kv_end)
                mask = causal_mask(input_pos, k.shape[2], kv_end)
        y = attend(q, k, v, mask, self.backend)  # (B, H, T, D)
        return self.wo(y.transpose(1, 2).reshape(x.shape))


def causal_mask(input_pos: Tensor, keys: int, kv_end: int | None) -> Tensor | None:
    """(T, keys) bool: a query at position p sees keys at <= p. None for one query over a trimmed cache."""
    if kv_end is not None and input_pos.shape[0] == 1:
        return None
    return torch.arange(keys, device=input_pos.device)[None, :] <= input_pos[:, None]


def attend(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, backend: str) -> Tensor:
    if backend in ("sdpa", "fused-cpu"):  # fused-cpu handles one query; many (prefill) go to SDPA
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    if backend == "flash":
        return attend_flash(q, k, v, mask)
    return attend_eager(q, k, v, mask)


def attend_eager(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
    """The reference: softmax(q k^T / sqrt(D)) v in the activation dtype."""
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    return torch.softmax(scores.float(), dim=-1).to(q.dtype) @ v


FLASH_DEVICE_TYPES = ("cuda",)  # where flash-attn runs (the CPU tests add "cpu" with a stand-in module)


def attend_flash(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
    """flash-attn on CUDA for the unmasked cases (one decode query, full cross-attention); SDPA otherwise."""
    if mask is not None or q.device.type not in FLASH_DEVICE_TYPES or q.dtype not in (torch.float16, torch.bfloat16):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    from flash_attn import flash_attn_func

    out = flash_attn_func(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))  # takes (B, T, H, D)
    return out.transpose(1, 2)


class FeedForward(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.w1 = nn.Linear(args.dim, args.ffn_dim, bias=False)
        self.w2 = nn.Linear(args.ffn_dim, args.dim, bias=False)
        self.activation = args.activation

    def forward(self, x: Tensor) -> Tensor:
        hidden = self.w1(x)
        hidden = F.gelu(hidden) if self.activation == "gelu" else F.relu(hidden)
        return self.w2(hidden)


class Block(nn.Module):
    """Pre-norm: self-attention, cross-attention on the text, feed-forward; each with a residual."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.attention_norm = nn.LayerNorm(args.dim, eps=args.norm_eps)
        self.attention = Attention(args, cross=False)
        self.cross_attention_norm = self.cross_attention = None
        if args.conditioning == "cross":
            self.cross_attention_norm = nn.LayerNorm(args.dim, eps=args.norm_eps)
            self.cross_attention = Attention(args, cross=True)
        self.ffn_norm = nn.LayerNorm(args.dim, eps=args.norm_eps)
        self.ffn = FeedForward(args)

    def forward(self, x: Tensor, input_pos: Tensor, kv_end: int | None, memory,
                rows: RowPositions | None = None) -> Tensor:
        x = x + self.attention(self.attention_norm(x), input_pos, kv_end, rows=rows)
        if self.cross_attention is not None:
            x = x + self.cross_attention(self.cross_attention_norm(x), input_pos, kv_end, memory)
        return x + self.ffn(self.ffn_norm(x))


@dataclass
class Prefix:
    """The melody conditioning: (B, P, dim) states that sit at positions 0..P-1 ahead of the codes."""

    states: Tensor

    @property
    def length(self) -> int:
        return self.states.shape[1]


class MusicGenDecoder(nn.Module):
    """tokens (B, K, T) -> logits (B, K, T, V); setup_caches before the first forward."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.embeddings = nn.ModuleList(nn.Embedding(args.vocab_size + 1, args.dim) for _ in range(args.num_codebooks))
        self.layers = nn.ModuleList(Block(args) for _ in range(args.n_layer))
        self.norm = nn.LayerNorm(args.dim, eps=args.norm_eps)
        self.heads = nn.ModuleList(nn.Linear(args.dim, args.vocab_size, bias=False) for _ in range(args.num_codebooks))
        self.text_projection = nn.Linear(args.text_dim, args.dim) if args.text_dim != args.dim else None
        self.chroma_projection = (nn.Linear(args.num_chroma, args.dim)
                                  if args.conditioning == "prefix" and args.num_chroma != args.dim else None)
        self.register_buffer("positions", sinusoids(args.max_positions, args.dim), persistent=False)

    def set_attention_backend(self, backend: str) -> None:
        if backend not in ATTENTION_BACKENDS:
            raise ValueError(f"attention backend must be one of {', '.join(ATTENTION_BACKENDS)}, got {backend!r}")
        decode_op = None
        if backend == "fused-cpu":
            from inference.runtime.kernels import decode_attention_op

            decode_op = decode_attention_op()  # raises with the reason when it cannot be built here
        for layer in self.layers:
            for attention in (layer.attention, layer.cross_attention):
                if attention is not None:
                    attention.backend, attention.decode_op = backend, decode_op

    def setup_caches(self, cache_factory) -> None:
        """cache_factory(layer_index) -> a KVCache; called again when batch or length must grow. The one-call
        step's lists of the old caches and memory go too (they would hold the old caches' memory)."""
        self.__dict__.pop("_fast_caches", None)
        self.__dict__.pop("_fast_memory", None)
        for index, layer in enumerate(self.layers):
            layer.attention.kv_cache = cache_factory(index)

    def cache_bytes(self) -> int:
        return sum(layer.attention.kv_cache.nbytes() for layer in self.layers if layer.attention.kv_cache is not None)

    def encode_prefix(self, text_states: Tensor, text_mask: Tensor, chroma: Tensor) -> Prefix:
        """Melody conditioning: [projected chroma; projected text] as transformers builds it.

        text_states (B, S, text_dim) with text_mask (B, S): padded tokens are zeroed, yet attended to
        (transformers passes no mask for the prefix). chroma (B, F, num_chroma): one-hot chroma frames,
        tiled or cut to chroma_length.
        """
        text = self.text_projection(text_states) if self.text_projection is not None else text_states
        text = text * text_mask[..., None].to(text.dtype)
        audio = self.chroma_projection(chroma.to(text.dtype)) if self.chroma_projection is not None else chroma
        length = self.args.chroma_length
        audio = audio.repeat(1, math.ceil(length / audio.shape[1]), 1)[:, :length]
        return Prefix(torch.cat([audio, text], dim=1))

    def start_sequence(self, memory) -> None:
        """Write the melody prefix into the KV cache (positions 0..P-1); nothing for cross-attention models."""
        if not isinstance(memory, Prefix):
            return
        x = memory.states + self.positions[: memory.length].to(memory.states.dtype)
        input_pos = torch.arange(memory.length, device=x.device)
        for layer in self.layers:
            x = layer(x, input_pos, memory.length, None)

    def encode_memory(self, text_states: Tensor, text_mask: Tensor) -> list[tuple[Tensor, Tensor, Tensor]]:
        """Cross-attention keys/values for every layer, once per request.

        text_states (B, S, text_dim), text_mask (B, S) 1 = real token. Padded tokens
        are zeroed as transformers does; a row with no real token (the CFG null
        condition) attends to zeros, which gives exactly zero, as in transformers.
        """
        states = self.text_projection(text_states) if self.text_projection is not None else text_states
        states = states * text_mask[..., None].to(states.dtype)
        mask = text_mask.bool()
        mask = mask | ~mask.any(dim=1, keepdim=True)  # (B, S); an empty row sees its zero states
        mask = None if bool(mask.all()) else mask[:, None, None, :]  # (B, 1, 1, S); None: every key counts
        memory = []
        for layer in self.layers:
            keys, values = layer.cross_attention.project_memory(states)
            memory.append((keys, values, mask))
        return memory

    def forward(self, tokens: Tensor, input_pos: Tensor, memory, kv_end: int | None = None,
                last_only: bool = True) -> Tensor:
        # tokens (B, K, T); input_pos (T,); kv_end: keys to attend to (None: whole cache, masked; static shapes)
        # memory: per-layer cross-attention keys/values, or a Prefix already in the cache (start_sequence)
        layer_memory = memory
        if isinstance(memory, Prefix):  # the codes sit after the prefix
            input_pos = input_pos + memory.length
            kv_end = None if kv_end is None else kv_end + memory.length
            layer_memory = [None] * len(self.layers)
        return self.logits(tokens, input_pos, layer_memory, kv_end, last_only)

    def logits(self, tokens: Tensor, input_pos: Tensor, layer_memory, kv_end: int | None = None,
               last_only: bool = True) -> Tensor:
        """forward's body once the prefix offset is in input_pos; layer_memory: per layer (keys, values, mask) or
        None. With kv_end None and fixed-shape inputs it is the one graph compiled decode replays."""
        x = sum(embedding(tokens[:, k]) for k, embedding in enumerate(self.embeddings))  # (B, T, dim)
        x = x + self.positions[input_pos].to(x.dtype)
        for layer, per_layer in zip(self.layers, layer_memory):
            x = layer(x, input_pos, kv_end, per_layer)
        return self.head_logits(x[:, -1:] if last_only else x)

    def head_logits(self, x: Tensor) -> Tensor:
        """The final norm and the LM heads: (B, T, dim) -> logits (B, K, T, V). Heads quantized to one kind (int8 or
        int4, as calibration takes them: inference/musicgen/calibration.py) run as one kernel call over the four
        heads' rows (fused_heads); bf16 or fp32 heads one linear each (one fused bf16 GEMM measured the same,
        docs/benchmarks.md)."""
        x = self.norm(x)
        fused = self.fused_heads()
        if fused is not None:
            logits = fused(x)  # (B, T, K * V)
            shape = (x.shape[0], x.shape[1], len(self.heads), logits.shape[-1] // len(self.heads))
            return logits.view(shape).transpose(1, 2).contiguous()  # no copy at T = 1 (a decode step)
        return torch.stack([head(x) for head in self.heads], dim=1).float()  # (B, K, T, V)

    def fused_heads(self) -> nn.Module | None:
        """The LM heads as one Int8Linear / Int4Linear (quantize.fuse_rows), kept while the head modules are the
        same objects (held and checked by identity through `_modules`, as fast_layers does); None when they are not
        all one quantized kind."""
        heads = list(self.heads._modules.values())
        held = self.__dict__.get("_fast_heads")
        if held is None or len(held[0]) != len(heads) or any(a is not b for a, b in zip(held[0], heads)):
            from inference.runtime.quantize import fuse_rows

            held = (heads, fuse_rows(heads))
            self.__dict__["_fast_heads"] = held
        return held[1]

    def decode_rows(self, tokens: Tensor, rows: RowPositions, kv_end: int, layer_memory) -> Tensor:
        """One token per row, each at its own position (a melody prefix already counted in rows.positions):
        tokens (B, K, 1) -> logits (B, K, 1, V). layer_memory: per layer (keys, values, mask) or None.

        On the CPU fast path (fast_layers) every layer runs in one C++ call (decode_layers.cpp)."""
        x = self.embed_rows(tokens, rows.positions)
        fast = self.fast_layers(x, layer_memory)
        if fast is not None:
            plan = self.fast_plan(fast, x.shape[0])
            x = torch.ops.continuo_cpu.decode_planned(x, plan.number, rows.positions, kv_end, rows.mask)
            return self.head_logits(x)
        for layer, per_layer in zip(self.layers, layer_memory):
            x = layer(x, rows.positions, kv_end, per_layer, rows)
        return self.head_logits(x)

    def embed_rows(self, tokens: Tensor, positions: Tensor) -> Tensor:
        """tokens (B, K, 1) at positions (B,) -> the step's input (B, 1, dim): the codebooks' embeddings summed, plus
        the position's. On the CPU fast path one C++ call (decode_layers.cpp: embed_rows, the same bits; a dozen
        torch ops cost about 0.2 ms a step)."""
        tables = [embedding.weight for embedding in self.embeddings]
        held = self.__dict__.get("_fast_weights")  # the one-call step was built: our kernels are loaded
        if (self.fast_step and held is not None and held[1] is not None and tokens.device.type == "cpu"
                and self.positions.dtype == torch.float32 and self.positions.is_contiguous()
                and all(table.dtype == torch.float32 and table.is_contiguous() for table in tables)):
            return torch.ops.continuo_cpu.embed_rows(tokens, tables, self.positions, positions)
        x = sum(embedding(tokens[:, k]) for k, embedding in enumerate(self.embeddings))  # (B, 1, dim)
        return x + self.positions[positions][:, None].to(x.dtype)

    fast_step = True  # False: decode_rows keeps the layer loop in Python (the A/B and the tests' reference)
    skip_silent_cross = True  # the one-call step skips rows whose text memory is zeros (fast_memory); False: the A/B
    # what the one-call step (fast_layers) and the fused heads (fused_heads) keep between steps, in __dict__
    KEPT_CALLS = ("_fast_weights", "_fast_caches", "_fast_memory", "_fast_heads", "_fast_plan", "_fast_watch")

    def structure_watch(self) -> tuple:
        """What fast_layers' lists hang on, and how a step checks it: the `_modules` dicts from the decoder down to
        each layer's linears, norms and cache with a snapshot of their values (a module replaced in any of them
        makes its tuple differ; the tuples hold the modules, so nothing is mistaken for a new object at an old
        address), the attentions' __dict__ with their decode_op, the key the weight lists are kept by (every
        watched module but the caches, and the decode ops: a new cache, as batching's row views make, rebuilds only
        the cache slots) and the cache objects. The snapshot's check costs a step 120 us with the caches cold after
        the call (17 us warm), where walking the layers for the key cost 142."""
        dicts, attentions, cache_key = [self._modules, self.layers._modules], [], []
        for layer in self.layers:
            modules = layer._modules
            attention, ffn, cross = modules["attention"], modules["ffn"], modules.get("cross_attention")
            own = attention._modules
            dicts += [modules, own, ffn._modules] + ([] if cross is None else [cross._modules])
            attentions += [attention.__dict__] + ([] if cross is None else [cross.__dict__])
            cache_key.append(own.get("kv_cache"))
        ops = [d.get("decode_op") for d in attentions]
        key = [module for d in dicts for name, module in d.items() if name != "kv_cache"] + ops
        return dicts, [tuple(d.values()) for d in dicts], attentions, ops, key, cache_key

    def fast_plan(self, fast: tuple, rows: int) -> KeptPlan:
        """The one-call step's plan for fast_layers' lists (decode_layers.cpp: decode_plan): every pointer checked
        once and the lists held in C++, so a step passes none of them (turning their 888 items into IValues at the
        call, and checking them, cost a step about 0.3 ms). Kept while the lists are the same objects and the rows
        as many; a new plan frees the last."""
        params, kinds, caches, memory, cross_rows, vnni = fast
        held = self.__dict__.get("_fast_plan")
        if (held is None or held.rows != rows or held.lists[0] is not params or held.lists[1] is not caches
                or held.lists[2] is not memory):
            layer = self.layers[0]
            number = torch.ops.continuo_cpu.decode_plan(
                params, kinds, caches, memory, cross_rows, rows, self.args.dim, layer.attention.scale,
                self.args.n_head, self.args.activation == "gelu", layer.attention_norm.eps, vnni)
            held = KeptPlan(number, (params, caches, memory), rows)
            self.__dict__["_fast_plan"] = held
        return held

    def kept_calls(self) -> list:
        """The objects the step keeps between calls (KEPT_CALLS): a copy of the modules rebuilds its own."""
        return [self.__dict__[name] for name in self.KEPT_CALLS if name in self.__dict__]

    def forget_kept_calls(self) -> None:
        for name in self.KEPT_CALLS:
            self.__dict__.pop(name, None)

    def fast_weights_built(self) -> bool:
        """Whether the last decode step ran the one-call path (decode_layers.cpp) as far as the weights go."""
        weights = self.__dict__.get("_fast_weights")
        return bool(self.fast_step and weights is not None and weights[1] is not None)

    def fast_layers(self, x: Tensor, layer_memory):
        """(params, kinds, caches, memory, cross_rows, vnni) for decode_layers when every layer runs the CPU fast
        path: int4 or int8 linears on our kernels, fused attention, fp32 activations, caches our kernels write and
        read in place (fp32, bf16, linear int8); else None. Each list is built once and kept while the modules, the
        cache objects and the memory list it came from are the same (checked by identity through `_modules`, not
        nn.Module's attribute lookup: that check alone cost 0.24 ms a step at musicgen-small)."""
        if not self.fast_step or x.dtype != torch.float32 or x.device.type != "cpu":
            return None
        watch = self.__dict__.get("_fast_watch")
        if (watch is None or [tuple(d.values()) for d in watch[0]] != watch[1]
                or [d.get("decode_op") for d in watch[2]] != watch[3]):
            watch = self.structure_watch()
            self.__dict__["_fast_watch"] = watch
        key, cache_key = watch[4], watch[5]
        held = self.__dict__.get("_fast_weights")
        if held is None or held[0] != key:
            held = (key, fast_weights(self))
            self.__dict__["_fast_weights"] = held
            self.__dict__.pop("_fast_caches", None)
        if held[1] is None:
            return None
        params, kinds, vnni = held[1]
        caches = self.__dict__.get("_fast_caches")
        if caches is None or len(caches[0]) != len(cache_key) or any(a is not b for a, b in zip(caches[0], cache_key)):
            caches = (cache_key, fast_caches(cache_key))
            self.__dict__["_fast_caches"] = caches
        if caches[1] is None:
            return None
        memory = self.__dict__.get("_fast_memory")
        if (memory is None or memory[0] is not layer_memory or memory[1] != x.shape[0]
                or memory[2] != self.skip_silent_cross):
            memory = (layer_memory, x.shape[0], self.skip_silent_cross,
                      *fast_memory(layer_memory, x.shape[0], self.skip_silent_cross))
            self.__dict__["_fast_memory"] = memory
        return params, kinds, caches[1], memory[3], memory[4], vnni


class KeptPlan:
    """A decode plan our kernels keep under a number (decode_layers.cpp: decode_plan), freed when this goes; the lists
    it was made from (held by the plan in C++ too) and its rows. A copy is None: a copied decoder makes its own."""

    __slots__ = ("number", "lists", "rows")

    def __init__(self, number: int, lists: tuple, rows: int):
        self.number, self.lists, self.rows = number, lists, rows

    def __del__(self) -> None:
        try:
            torch.ops.continuo_cpu.decode_plan_free(self.number)
        except Exception:  # the interpreter shutting down: the library may be gone first
            pass

    def __copy__(self) -> None:
        return None

    def __deepcopy__(self, memo: dict) -> None:
        return None


def fast_caches(caches: list) -> list | None:
    """decode_layers' cache slots for each layer's cache, or None when one is not a kind our kernels read in place."""
    from inference.musicgen.kv_cache import Int8KVCache, MuLawKVCache

    slots = []
    for cache in caches:
        if isinstance(cache, Int8KVCache):
            slots += [cache.k_codes, cache.v_codes, cache.k_scale, cache.v_scale]
        elif isinstance(cache, MuLawKVCache) or cache is None or cache.k_cache.dtype not in (torch.float32,
                                                                                          torch.bfloat16):
            return None
        else:
            slots += [cache.k_cache, cache.v_cache, None, None]
    return slots


def fast_memory(layer_memory, rows: int, skip_silent: bool = True) -> tuple[list, Tensor | None]:
    """decode_layers' memory slots (per layer the cross-attention keys, values and (R, S) mask, or Nones) and its
    cross_rows: the R rows whose values are not all zeros in some layer, or None when that is every row.

    A row whose values are zeros in every layer (the CFG null condition: encode_memory zeroes a row with no text
    token, and the projections have no bias) gets exactly zero from the cross-attention, whatever its query, so
    decode_layers skips it (its header says why the result is the same); its keys, values and mask are left out of
    the slots. Decided from the values themselves, once per memory (the step keeps it with the memory list), so a
    model whose null row is not zeros simply runs every row. skip_silent False: every row (the tests' reference)."""
    present = [per_layer for per_layer in layer_memory if per_layer is not None]
    cross_rows = None
    if skip_silent and present and present[0][1].shape[0] == rows:
        live = torch.stack([values.reshape(rows, -1).ne(0).any(dim=1) for _, values, _ in present]).any(dim=0)
        if not bool(live.all()):
            cross_rows = live.nonzero().flatten()
    memory = []
    for per_layer in layer_memory:
        if per_layer is None:
            memory += [None, None, None]
            continue
        keys, values, mask = per_layer
        mask = None if mask is None else mask[:, 0, 0, :].expand(rows, -1)
        if cross_rows is not None:
            keys, values = keys[cross_rows], values[cross_rows]
            mask = None if mask is None else mask[cross_rows].contiguous()
        memory += [keys, values, mask]
    return memory, cross_rows


def fast_weights(decoder: MusicGenDecoder) -> tuple[list, list[int], bool] | None:
    """The per-layer slots decode_layers.cpp takes (its header), or None when a layer is off its fast path."""
    from inference.runtime.quantize import Int4Linear, Int8Linear

    params: list = []
    kinds: list[int] = []
    vnni = None

    def linear(module) -> bool:
        nonlocal vnni
        if module is None:
            params.extend([None] * 4)
            kinds.append(0)
            return True
        if isinstance(module, Int4Linear):
            if vnni is not None and vnni != module.vnni:
                return False
            vnni = module.vnni
            params.extend([module.packed, module.scales, None, module.bias])
            kinds.append(4)
            return True
        if isinstance(module, Int8Linear) and module.op is not None:
            params.extend([module.codes, module.scales, module.row_sums, module.bias])
            kinds.append(8)
            return True
        return False

    def norm(module) -> bool:
        if module is None:
            params.extend([None, None])
            return True
        if not isinstance(module, nn.LayerNorm) or module.weight is None or module.weight.dtype != torch.float32:
            return False
        params.extend([module.weight.detach(), module.bias.detach()])
        return True

    for layer in decoder.layers:
        cross = layer.cross_attention
        if layer.attention.decode_op is None or (cross is not None and cross.decode_op is None):
            return None
        if layer.ffn.activation not in ("gelu", "relu"):
            return None
        steps = (norm(layer.attention_norm), linear(layer.attention.wqkv), linear(layer.attention.wo),
                 norm(layer.cross_attention_norm), linear(None if cross is None else cross.wq),
                 linear(None if cross is None else cross.wo), norm(layer.ffn_norm), linear(layer.ffn.w1),
                 linear(layer.ffn.w2))
        if not all(steps):
            return None
    return params, kinds, bool(vnni) if vnni is not None else True


HF_NAME_TABLE: tuple[tuple[str, str], ...] = (
    (r"^enc_to_dec_proj\.(weight|bias)$", r"text_projection.\1"),
    (r"^decoder\.model\.decoder\.embed_tokens\.(\d+)\.weight$", r"embeddings.\1.weight"),
    (r"^decoder\.model\.decoder\.layer_norm\.(weight|bias)$", r"norm.\1"),
    (r"^decoder\.lm_heads\.(\d+)\.weight$", r"heads.\1.weight"),
    (r"^decoder\.model\.decoder\.layers\.(\d+)\.self_attn_layer_norm\.(weight|bias)$", r"layers.\1.attention_norm.\2"),
    (r"^decoder\.model\.decoder\.layers\.(\d+)\.self_attn\.out_proj\.weight$", r"layers.\1.attention.wo.weight"),
    (r"^decoder\.model\.decoder\.layers\.(\d+)\.encoder_attn_layer_norm\.(weight|bias)$",
     r"layers.\1.cross_attention_norm.\2"),
    (r"^decoder\.model\.decoder\.layers\.(\d+)\.encoder_attn\.out_proj\.weight$",
     r"layers.\1.cross_attention.wo.weight"),
    (r"^decoder\.model\.decoder\.layers\.(\d+)\.encoder_attn\.q_proj\.weight$", r"layers.\1.cross_attention.wq.weight"),
    (r"^decoder\.model\.decoder\.layers\.(\d+)\.final_layer_norm\.(weight|bias)$", r"layers.\1.ffn_norm.\2"),
    (r"^decoder\.model\.decoder\.layers\.(\d+)\.fc1\.weight$", r"layers.\1.ffn.w1.weight"),
    (r"^decoder\.model\.decoder\.layers\.(\d+)\.fc2\.weight$", r"layers.\1.ffn.w2.weight"),
)
FUSED = (  # (our name, HF names concatenated along the output dimension)
    ("layers.{i}.attention.wqkv.weight", ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj")),
    ("layers.{i}.cross_attention.wkv.weight", ("encoder_attn.k_proj", "encoder_attn.v_proj")),
)
MELODY_NAMES = ((r"^audio_enc_to_dec_proj\.(weight|bias)$", r"chroma_projection.\1"),)


def convert_hf_state_dict(hf: dict[str, Tensor], args: ModelArgs) -> dict[str, Tensor]:
    """Map a MusicgenForConditionalGeneration state dict (decoder + enc_to_dec_proj) onto MusicGenDecoder names."""
    ours: dict[str, Tensor] = {}
    table = HF_NAME_TABLE + (MELODY_NAMES if args.conditioning == "prefix" else ())
    for name, tensor in hf.items():
        for pattern, replacement in table:
            if re.match(pattern, name):
                ours[re.sub(pattern, replacement, name)] = tensor
                break
    prefix = "decoder.model.decoder.layers.{i}."
    for i in range(args.n_layer):
        for target, parts in FUSED:
            if "cross_attention" in target and args.conditioning != "cross":
                continue
            ours[target.format(i=i)] = torch.cat([hf[prefix.format(i=i) + part + ".weight"] for part in parts])
    return ours


def build_decoder(args: ModelArgs, hf_state: dict[str, Tensor]) -> MusicGenDecoder:
    """Build on the meta device, then assign the mapped weights (no second copy, no random init)."""
    with torch.device("meta"):
        decoder = MusicGenDecoder(args)
    state = convert_hf_state_dict(hf_state, args)
    missing, unexpected = decoder.load_state_dict(state, strict=False, assign=True)
    if missing or unexpected:
        raise ValueError(f"checkpoint does not fit the MusicGen decoder: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}")
    decoder.positions = sinusoids(args.max_positions, args.dim)
    return decoder.eval()
