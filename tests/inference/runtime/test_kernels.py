"""Our C++ CPU kernels (inference/runtime/csrc) against torch's reference ops, and their stand-ins."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import inference.runtime.kernels as cpu_kernels
from inference.api import GenerationRequest
from inference.loading import load_engine, resolve_model
from inference.musicgen.engine import resolve_attention
from inference.musicgen.kv_cache import Int8KVCache, KVCache, MuLawKVCache, mulaw_decode
from inference.runtime.quantize import Int4Linear, Int8Linear, int4_codes, int4_pack, int4_unpack, quantize_int8_cpu_

needs_kernels = pytest.mark.skipif(not cpu_kernels.kernels_status().usable,
                                   reason=f"CPU kernels unavailable: {cpu_kernels.kernels_status().reason}")


def test_kernels_build_wherever_the_tools_exist():
    """A compiler and ninja present but a failed build is a bug, not a skip."""
    if cpu_kernels.missing_tools() is not None:
        pytest.skip(f"no build tools here: {cpu_kernels.missing_tools()}")
    status = cpu_kernels.kernels_status()
    assert status.usable, status.reason


def reference_attention(q, k, v, n, mask=None):
    """(B, H, 1, D) query over the first n keys -> (B, 1, H*D), by SDPA in fp32."""
    attn_mask = None if mask is None else mask[:, None, None, :]
    out = F.scaled_dot_product_attention(q, k[:, :, :n].float(), v[:, :, :n].float(), attn_mask=attn_mask)
    return out.transpose(1, 2).reshape(q.shape[0], 1, -1)


@needs_kernels
@pytest.mark.parametrize("head_dim", [64, 8])  # 64: the compiled-in MusicGen size; 8: the run-time path
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("n", [1, 7, 16, 33, 130])  # 16 keys a vector block at head size 64, and the rest
def test_decode_attention_matches_sdpa(head_dim, dtype, n):
    torch.manual_seed(n)
    op = cpu_kernels.decode_attention_op()
    q = torch.randn(3, 5, head_dim).view(3, 1, 5, head_dim).transpose(1, 2)  # a strided view, as in the model
    k, v = torch.randn(3, 5, 160, head_dim).to(dtype), torch.randn(3, 5, 160, head_dim).to(dtype)
    got = op(q, k, v, n, None, None, None, None, head_dim**-0.5)
    assert got.shape == (3, 1, 5 * head_dim)
    torch.testing.assert_close(got, reference_attention(q, k, v, n), atol=2e-5, rtol=2e-5)


@needs_kernels
def test_decode_attention_honours_the_key_mask():
    op = cpu_kernels.decode_attention_op()
    q, k, v = torch.randn(2, 4, 1, 64), torch.randn(2, 4, 12, 64), torch.randn(2, 4, 12, 64)
    mask = torch.rand(2, 12) > 0.4
    mask[:, 0] = True
    got = op(q, k, v, 12, None, None, None, mask, 0.125)
    torch.testing.assert_close(got, reference_attention(q, k, v, 12, mask), atol=2e-5, rtol=2e-5)
    assert not torch.allclose(got, op(q, k, v, 12, None, None, None, None, 0.125))


@needs_kernels
@pytest.mark.parametrize("mu", [16.0, 64.0])
def test_decode_attention_reads_the_mulaw_cache_in_place(mu):
    torch.manual_seed(0)
    cache = MuLawKVCache(2, 4, 64, 64, mu=mu)
    k, v = torch.randn(2, 4, 40, 64), torch.randn(2, 4, 40, 64)
    cache.write(torch.arange(40), k, v)
    q = torch.randn(2, 4, 1, 64)
    got = cache.attend_one(q, 40, cpu_kernels.decode_attention_op(), 0.125)
    keys = mulaw_decode(cache.k_codes, cache.k_scale, mu)
    values = mulaw_decode(cache.v_codes, cache.v_scale, mu)
    torch.testing.assert_close(got, reference_attention(q, keys, values, 40), atol=1e-4, rtol=1e-4)


@needs_kernels
@pytest.mark.parametrize("n", [5, 40])
def test_decode_attention_reads_the_int8_cache_in_place_with_a_scale_per_head(n):
    torch.manual_seed(n)
    cache = Int8KVCache(2, 4, 64, 64)
    k, v = torch.randn(2, 4, 40, 64), torch.randn(2, 4, 40, 64)
    k[:, 1] *= 0.01  # a quiet head keeps its own scale
    cache.write(torch.arange(40), k, v)
    q = torch.randn(2, 4, 1, 64)
    mask = torch.rand(2, n) < 0.8
    mask[:, 0] = True
    got = cache.attend_one(q, n, cpu_kernels.decode_attention_op(), 0.125, mask)
    keys, values = cache.read(n, torch.float32)
    torch.testing.assert_close(got, reference_attention(q, keys, values, n, mask), atol=1e-4, rtol=1e-4)
    assert (keys[:, 1] - k[:, 1, :n]).abs().max() < 0.01 * k[:, 1].abs().max()  # per-head resolution


@needs_kernels
def test_fp32_cache_write_then_attend_one_equals_update_then_sdpa():
    cache = KVCache(2, 4, 32, 64, torch.float32)
    k, v, q = torch.randn(2, 4, 9, 64), torch.randn(2, 4, 9, 64), torch.randn(2, 4, 1, 64)
    cache.write(torch.arange(9), k, v)
    got = cache.attend_one(q, 9, cpu_kernels.decode_attention_op(), 0.125)
    torch.testing.assert_close(got, reference_attention(q, k, v, 9), atol=2e-5, rtol=2e-5)


def emulate_int8_linear(x, codes, scales, bias):
    """What the VNNI path computes: each row of x quantized to int8 with its abs-max scale, exact integer dots."""
    peak = x.abs().amax(dim=-1, keepdim=True)
    x_scale = torch.where(peak > 0, peak / 127, torch.ones_like(peak))
    xq = torch.round(x * (1 / x_scale)).to(torch.int64)
    exact = xq @ codes.to(torch.int64).T
    out = exact.float() * x_scale * scales
    return out if bias is None else out + bias


@needs_kernels
@pytest.mark.parametrize("rows", [1, 2, 3, 5, 8, 13, 16, 40])  # 8 x 2 tiles from 8 rows, 4 x 4 after them
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("outputs", [96, 99])  # 99: weight rows left over after the 4 x 4 tiles
def test_int8_linear_rows(rows, bias, outputs):
    torch.manual_seed(rows)
    linear = torch.nn.Linear(256, outputs, bias=bias)
    int8 = Int8Linear(linear, cpu_kernels.int8_linear_op(), vnni=bool(torch.ops.continuo_cpu.int8_linear_uses_vnni()))
    x = torch.randn(rows, 256)
    got = int8(x)
    dequantized = F.linear(x, int8.codes.float() * int8.scales[:, None], int8.bias)
    assert got.shape == (rows, outputs)
    assert (got - dequantized).norm() / dequantized.norm() < 0.02  # activations rounded to int8 per row
    if torch.ops.continuo_cpu.int8_linear_uses_vnni():
        torch.testing.assert_close(got, emulate_int8_linear(x, int8.codes, int8.scales, int8.bias),
                                   atol=1e-5, rtol=1e-5)


@needs_kernels
@pytest.mark.parametrize("inputs", [64, 4096])
def test_int8_activations_round_half_to_even_as_the_scalar_loop_did(inputs):
    """The activations' int8 codes (continuo::quantize_row_int8, vectorised for issue 24) are round-half-even of
    x / scale, bit for bit what the scalar nearbyint loop gave: through an identity weight every output is
    code * 127 * x_scale / 127 in the kernel's own float order. Ties (x = k + 0.5 at scale 1) decide it; the control,
    rounding half away from zero, differs on them. Without VNNI (the portable build) the activations stay fp32:
    the identity gives x back, not its codes."""
    vnni = bool(torch.ops.continuo_cpu.int8_linear_uses_vnni())
    int8 = Int8Linear(torch.nn.Linear(inputs, 64, bias=False), cpu_kernels.int8_linear_op(), vnni=vnni)
    int8.codes.zero_()
    int8.codes[torch.arange(64), torch.arange(64)] = 127  # output j reads input j
    int8.row_sums.copy_(int8.codes.sum(dim=1, dtype=torch.int32))
    int8.scales.fill_(1 / 127)
    torch.manual_seed(inputs)
    x = torch.randn(3, inputs) * 20
    ties = torch.tensor([127.0, 2.5, -3.5, 0.5, -0.5, 1.5, -1.5, 126.5, -2.5, 4.5])
    x[0, :10] = ties
    x[0, 10:] = x[0, 10:].clamp(-126, 126)  # row 0's peak stays 127: scale 1, so the ties are exact
    x_scale = x.abs().amax(dim=1, keepdim=True) / 127

    def through_identity(codes):
        return (codes * 127).float() * x_scale * int8.scales[:64]

    got = int8(x)
    rounded = through_identity(torch.round(x * (1 / x_scale))[:, :64])
    if not vnni:
        torch.testing.assert_close(got, x[:, :64], atol=1e-5, rtol=1e-5)
        assert not torch.equal(got, rounded)  # control: the codes' outputs are not what the portable loop gives
        return
    assert torch.equal(got, rounded)
    away = torch.sign(x) * torch.floor(x.abs() * (1 / x_scale) + 0.5)  # control: half away from zero
    assert not torch.equal(got, through_identity(away[:, :64]))


@needs_kernels
@pytest.mark.parametrize("rows, outputs", [(5, 99), (8, 99), (13, 72), (2, 3072)])
def test_int8_linear_gives_the_same_bits_on_one_thread_and_two(rows, outputs):
    """The threads claim runs of whole 16-row weight blocks (csrc/parallel.cpp: parallel_claims), so an output is
    computed by the same code path whatever the split. at::parallel_for's halves cut blocks at 50 of 99 outputs,
    and 29 of the 5 x 99 outputs differed between 1 and 2 threads (measured 2026-12-07 before the change)."""
    torch.manual_seed(rows)
    int8 = Int8Linear(torch.nn.Linear(256, outputs), cpu_kernels.int8_linear_op(),
                      vnni=bool(torch.ops.continuo_cpu.int8_linear_uses_vnni()))
    x = torch.randn(rows, 256)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        two = int8(x)
        torch.set_num_threads(1)
        one = int8(x)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, two)
    x[-1, 0] += 1.0  # control: a changed input shows in its row
    assert not torch.equal(int8(x)[-1], two[-1])


@needs_kernels
def test_int8_linear_portable_loop_and_its_prefill_gemm():
    torch.manual_seed(0)
    linear = torch.nn.Linear(48, 32, bias=False)  # 48: not a multiple of 64, so the portable loop runs
    int8 = Int8Linear(linear, cpu_kernels.int8_linear_op(), vnni=False)
    dequantized = int8.codes.float() * int8.scales[:, None]
    for shape in [(2, 1, 48), (2, 40, 48)]:  # a decode step and a prefill (one GEMM over the dequantized weight)
        x = torch.randn(shape)
        torch.testing.assert_close(int8(x), F.linear(x, dequantized), atol=1e-4, rtol=1e-4)
    assert (dequantized - linear.weight).abs().max() <= int8.scales.max() / 2 + 1e-7  # round-to-nearest codes


def emulate_int4_linear(x, weight, bias):
    """int4_linear's VNNI arithmetic: x rounded to int8 per row (abs-max / 127), times the dequantized weight."""
    x_scale = (x.abs().amax(dim=-1, keepdim=True) / 127).clamp_min(1e-30)
    out = torch.round(x / x_scale).double() @ weight.double().T * x_scale.double()
    return (out if bias is None else out + bias.double()).float()


def test_int4_codes_pack_and_unpack_to_the_fit():
    """The layout round trip: unpack(pack(codes)) is d * q + m of every group, and the fit beats Q4_0's error."""
    torch.manual_seed(0)
    weight = torch.randn(32, 128)
    codes, d, m = int4_codes(weight)
    assert codes.dtype == torch.uint8 and int(codes.max()) <= 15 and d.shape == (32, 4)
    fitted = codes.float().view(32, 4, 32) * d.float()[..., None] + m.float()[..., None]
    unpacked = int4_unpack(*int4_pack(codes, d, m))
    assert torch.equal(unpacked, fitted.view(32, 128))
    assert (unpacked - weight).norm() / weight.norm() < 0.08  # Q4_0 (one symmetric scale) measured 0.086
    swapped = int4_unpack(*int4_pack(codes.view(32, 4, 4, 2, 4).flip(3).reshape(32, 128), d, m))  # control
    assert (swapped - weight).norm() / weight.norm() > 0.3


@needs_kernels
@pytest.mark.parametrize("rows", [1, 2, 3, 8, 11, 40])  # 8 rows per pass over a tile, and the rest
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("inputs", [64, 1024])
def test_int4_linear_matches_its_reference(rows, bias, inputs):
    torch.manual_seed(rows)
    linear = torch.nn.Linear(inputs, 48, bias=bias)
    vnni = bool(torch.ops.continuo_cpu.int8_linear_uses_vnni())
    int4 = Int4Linear(linear, cpu_kernels.int4_linear_op(), vnni)
    weight = int4_unpack(int4.packed, int4.scales)
    x = torch.randn(2, rows, inputs)
    got = int4(x)
    assert got.shape == (2, rows, 48)
    if vnni:
        torch.testing.assert_close(got, emulate_int4_linear(x, weight, int4.bias), atol=1e-4, rtol=1e-4)
    portable = cpu_kernels.int4_linear_op()(x, int4.packed, int4.scales, int4.bias, False)
    torch.testing.assert_close(portable, F.linear(x, weight, int4.bias), atol=1e-4, rtol=1e-4)
    broken = int4.packed.clone()
    broken[0, 0, 0, 0] ^= 0x11  # control: one byte of one block flipped shows
    assert not torch.allclose(cpu_kernels.int4_linear_op()(x, broken, int4.scales, int4.bias, False), portable)


@needs_kernels
@pytest.mark.parametrize("quantize_x", [True, False])
def test_int4_row_alone_and_batched_give_the_same_bits(quantize_x):
    torch.manual_seed(0)
    int4 = Int4Linear(torch.nn.Linear(256, 64, bias=False), cpu_kernels.int4_linear_op(), True)
    x = torch.randn(9, 256)
    op = cpu_kernels.int4_linear_op()
    together = op(x, int4.packed, int4.scales, None, quantize_x)
    for row in range(9):
        assert torch.equal(op(x[row : row + 1], int4.packed, int4.scales, None, quantize_x), together[row : row + 1])


def test_int8_falls_back_to_torch_dynamic_int8_without_our_kernels(monkeypatch):
    monkeypatch.setattr(cpu_kernels, "int8_linear_op", lambda: None)
    model = torch.nn.Sequential(torch.nn.Linear(32, 16))
    quantize_int8_cpu_(model)
    assert type(model[0]).__module__.startswith("torch.ao.nn.quantized.dynamic")


def test_a_failed_build_is_a_reason_and_auto_attention_falls_back_to_sdpa(monkeypatch):
    def broken():
        raise RuntimeError("Error building extension 'continuo_cpu'\ncc1plus: fatal error: no space left")

    monkeypatch.setattr(cpu_kernels, "_status", None)
    monkeypatch.setattr(cpu_kernels, "build", broken)
    status = cpu_kernels.kernels_status()
    assert not status.usable and "no space left" in status.reason
    assert resolve_attention("auto", torch.device("cpu")) == "sdpa"
    with pytest.raises(RuntimeError, match="fused-cpu.*no space left"):
        cpu_kernels.decode_attention_op()


def test_fused_cpu_is_refused_off_the_cpu():
    with pytest.raises(ValueError, match="CPU kernel"):
        resolve_attention("fused-cpu", torch.device("cuda"))


@pytest.fixture(scope="module")
def source(tiny_model_dir, tmp_path_factory):
    return resolve_model(str(tiny_model_dir), tiny_dir=tmp_path_factory.mktemp("unused"))


@needs_kernels
@pytest.mark.parametrize("weights, kv_cache, min_agreement", [
    ("fp32", "fp32", 1.0), ("fp32", "bf16", 1.0), ("int8", "fp32", 1.0), ("fp32", "mulaw8", 0.98),
    ("int8", "int8", 0.98),
])
def test_fused_decode_agrees_with_sdpa_decode(source, weights, kv_cache, min_agreement):
    """The decode path itself (one query per step), 200 greedy steps under CFG: fused kernel vs SDPA."""
    request = GenerationRequest(prompt="warm piano chords", duration_s=4.0, seed=7, temperature=0.0,
                                guidance_scale=3.0)
    engines = [load_engine(source, device="cpu", warm_up=False, weights=weights, kv_cache=kv_cache,
                           attention=attention) for attention in ("sdpa", "fused-cpu")]
    assert engines[1].options.attention == "fused-cpu"
    sdpa, fused = (engine.generate_codes(request) for engine in engines)
    assert sdpa.shape[-1] == 200
    assert (sdpa == fused).float().mean().item() >= min_agreement


@needs_kernels
def test_a_built_library_loads_without_any_build_tools(tmp_path):
    """Later starts load the cached library directly: no compiler, no ninja needed (a fresh process)."""
    import os
    import shutil
    import subprocess
    import sys

    name = cpu_kernels.library_name()
    built = cpu_kernels.kernels_dir() / name / f"{name}.so"
    assert built.is_file()
    (tmp_path / name).mkdir()
    shutil.copy(built, tmp_path / name / built.name)
    env = {**os.environ, "CONTINUO_KERNELS_DIR": str(tmp_path), "CXX": "/nonexistent/c++"}
    script = "from inference.runtime.kernels import kernels_status; print(kernels_status().usable)"
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "True", result.stderr[-2000:]


def test_a_stale_build_lock_is_removed_so_no_start_waits_forever(monkeypatch, tmp_path):
    import os
    import time

    monkeypatch.setenv("CONTINUO_KERNELS_DIR", str(tmp_path))
    lock = tmp_path / cpu_kernels.library_name() / "lock"
    lock.parent.mkdir()
    lock.touch()
    an_hour_ago = time.time() - 3600
    os.utime(lock, (an_hour_ago, an_hour_ago))
    monkeypatch.setattr(cpu_kernels, "missing_tools", lambda: "stop here")  # build no further in this process
    status = cpu_kernels.build()
    assert not lock.exists() and status.reason == "stop here"


def test_an_unwritable_cache_falls_back_to_the_temp_dir(tmp_path):
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("")
    chosen = cpu_kernels.writable(blocked / "continuo_cpu_x")
    assert chosen.is_dir() and chosen.name == "continuo_cpu_x" and not chosen.is_relative_to(blocked)


@needs_kernels
@pytest.mark.parametrize("make", [
    lambda rows: KVCache(rows, 4, 1536, 64, torch.float32),
    lambda rows: KVCache(rows, 4, 1536, 64, torch.bfloat16),
    lambda rows: Int8KVCache(rows, 4, 1536, 64),
    lambda rows: MuLawKVCache(rows, 4, 1536, 64),
], ids=["fp32", "bf16", "int8", "mulaw8"])
def test_a_row_alone_and_in_a_batch_gives_the_same_bits_at_head_size_64(make):
    """Rows at positions up to 1499 (block edges, the tail, position 0) in one call with a mask give each row the
    bits it gets alone over its own keys: the batching claim at MusicGen's head size. The control: SDPA, one kernel
    over every key of the call, does not (so bitwise equality is something this kernel must earn)."""
    torch.manual_seed(0)
    positions = torch.tensor([1499, 37, 640, 1023, 16, 0, 1100, 15, 31])
    rows, n = len(positions), int(positions.max()) + 1
    cache = make(rows)
    cache.write_span(torch.arange(1536), torch.randn(rows, 4, 1536, 64) * 2, torch.randn(rows, 4, 1536, 64))
    q = torch.randn(rows, 4, 1, 64) * 2
    mask = torch.arange(n)[None, :] <= positions[:, None]
    op = cpu_kernels.decode_attention_op()
    batched = cache.attend_one(q, n, op, 0.125, mask)
    for row, position in enumerate(positions.tolist()):
        alone = cache.row_view(row, row + 1).attend_one(q[row : row + 1], position + 1, op, 0.125)
        assert torch.equal(alone[0], batched[row]), f"row at position {position} differs alone and batched"
    keys, values = cache.read(n, torch.float32)
    sdpa_batched = reference_attention(q, keys, values, n, mask)
    sdpa_alone = [reference_attention(q[r : r + 1], keys[r : r + 1], values[r : r + 1], p + 1)[0]
                  for r, p in enumerate(positions.tolist())]
    assert any(not torch.equal(alone, sdpa_batched[r]) for r, alone in enumerate(sdpa_alone))


@needs_kernels
@pytest.mark.parametrize("n", [12, 300])  # 12: below the split over threads (runs on the caller); 300: split
def test_decode_attention_gives_the_same_bits_on_one_thread_and_two(n):
    """Each (row, head) pair is computed on its own, so how a call splits the pairs over threads (or runs them on
    the calling thread when they hold little work) never shows in the bits. Control: a changed key does."""
    torch.manual_seed(n)
    op = cpu_kernels.decode_attention_op()
    q, k, v = torch.randn(2, 16, 1, 64), torch.randn(2, 16, n, 64), torch.randn(2, 16, n, 64)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = op(q, k, v, n, None, None, None, None, 0.125)
        torch.set_num_threads(2)
        two = op(q, k, v, n, None, None, None, None, 0.125)
        k[1, 15, n - 1] += 1.0
        changed = op(q, k, v, n, None, None, None, None, 0.125)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, two)
    assert not torch.equal(changed, two)


@needs_kernels
def test_masked_keys_inside_a_row_weigh_exactly_nothing():
    """A masked key before a row's last key adds 0, not exp(-87): the row equals the same keys with that one
    left out (removed from the cache, so the sums run over the others alone)."""
    torch.manual_seed(1)
    op = cpu_kernels.decode_attention_op()
    q, k, v = torch.randn(1, 2, 1, 64), torch.randn(1, 2, 40, 64), torch.randn(1, 2, 40, 64)
    k[:, :, 5] = 10.0 * q[:, :, 0].sign()  # a key that would dominate: masked, it must vanish
    mask = torch.ones(1, 40, dtype=torch.bool)
    mask[0, 5] = False
    keep = [t for t in range(40) if t != 5]
    with_mask = op(q, k, v, 40, None, None, None, mask, 0.125)
    without = op(q, k[:, :, keep].contiguous(), v[:, :, keep].contiguous(), 39, None, None, None, None, 0.125)
    torch.testing.assert_close(with_mask, without, rtol=1e-6, atol=1e-6)
    assert not torch.allclose(with_mask, op(q, k, v, 40, None, None, None, None, 0.125))


def test_a_long_compile_says_it_is_still_going(caplog):
    """The first start's kernel build logs 'compiling CPU kernels (once per machine): N s so far' while it runs and
    'done in' after, so it does not look hung (it took ~49 s on a cold 2-core start with one line before)."""
    import logging
    import time

    from inference.runtime.kernels import progress_lines

    with caplog.at_level(logging.INFO, logger="continuo.inference"), progress_lines("compiling x", every_s=0.05):
        time.sleep(0.23)
    lines = [r.getMessage() for r in caplog.records]
    assert sum("so far" in line for line in lines) >= 3 and lines[-1].startswith("compiling x: done in")
