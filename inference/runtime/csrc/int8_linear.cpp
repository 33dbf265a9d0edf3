// y = x W^T (+ bias) for int8 weights with one fp32 scale per output channel. A decode step is a few
// rows of x against every weight row, each weight byte read once from memory; prefill is hundreds.
//
// With AVX-512 VNNI (Zen 4, Ice Lake and newer) each row of x is quantized to int8 with its own
// abs-max scale and the dot products run on vpdpbusd, 64 multiply-adds per instruction, so a step is
// bound by memory, not arithmetic; many rows go through 8 x 2 and 4 x 4 register tiles. Elsewhere a portable loop
// widens the weights to fp32 in registers (fp32 activations, slower); there the Python side
// (inference/runtime/quantize.py) runs prefill as one GEMM over the dequantized weight instead.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
#define CONTINUO_VNNI 1
#endif

// Shared with cache_write.cpp and int4_linear.cpp (kernels.py builds every source as one unit, this file before
// those).
namespace continuo {

// What a linear kernel starts from: x as (M, K) rows, the (M, N) output, the output's shape (x's with N last), the
// bias as fp32 (nullptr: none).
struct LinearIO {
  at::Tensor x2, out, bias;
  std::vector<int64_t> shape;
  int64_t M = 0;
  const float* bias_ptr = nullptr;
};

inline LinearIO linear_io(const char* op, const at::Tensor& x, int64_t K, int64_t N,
                          const std::optional<at::Tensor>& bias) {
  TORCH_CHECK(x.size(-1) == K, op, ": x has ", x.size(-1), " features, the weight takes ", K);
  LinearIO io;
  io.x2 = x.reshape({-1, K}).contiguous();
  io.M = io.x2.size(0);
  io.shape.assign(x.sizes().begin(), x.sizes().end());
  io.shape.back() = N;
  io.out = at::empty({io.M, N}, x.options());
  if (bias && bias->defined()) {
    io.bias = bias->to(at::kFloat).contiguous();
    TORCH_CHECK(io.bias.numel() == N, op, ": bias must have ", N, " entries");
    io.bias_ptr = io.bias.data_ptr<float>();
  }
  return io;
}

// f(std::integral_constant<int, rows>) for 1 <= rows <= MAX: kernels unrolled for each row count.
template <int MAX, typename F>
inline void by_rows(int64_t rows, F&& f) {
  if constexpr (MAX > 1) {
    if (rows < MAX) return by_rows<MAX - 1>(rows, f);
  }
  f(std::integral_constant<int, MAX>{});
}

// max |x[k]| over k < n (0 for n = 0): max is exact in any order, so the vector loop gives the scalar loop's value;
// a NaN is passed over, as std::max(peak, NaN) does. The int8 activations' and the int8 cache's scales.
inline float abs_max(const float* x, int64_t n) {
  float peak = 0.f;
  int64_t k = 0;
#if defined(__AVX512F__)
  __m512 peaks = _mm512_setzero_ps();
  for (; k + 16 <= n; k += 16) peaks = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(x + k)), peaks);
  peak = _mm512_reduce_max_ps(peaks);
#endif
  for (; k < n; ++k) peak = std::max(peak, std::fabs(x[k]));
  return peak;
}

// A row of activations' int8 scale: abs-max / 127 (1 for a row of zeros); codes are round(x / scale).
inline float int8_row_scale(const float* row, int64_t K) {
  const float peak = abs_max(row, K);
  return peak > 0.f ? peak / 127.f : 1.f;
}

// One row of activations -> int8 codes round(x * inverse), half to even (nearbyint in the default rounding mode,
// which is what vcvtps2dq does), plus OFFSET (0, or 128 for vpdpbusd's unsigned operand); group_sums (K / 32) gets
// each group of 32 codes' sum (before the offset) where it is not null. Returns the row's scale (int8_row_scale).
// Vectorised: the scalar loop (a libm round per value) cost 3 us for 2 rows of 1024 and 11 us for 2 rows of 4096
// per call, on one thread while the other waited. A musicgen-small int4 step, in one process, 25-step blocks of
// each alternated over 800 steps (2026-12-07, 2 cores AMD EPYC, 2 threads, load 1.4-1.5): 15.55 -> 14.91 and
// 14.71 -> 13.66 ms (median).
// The codes and sums are the scalar loop's bits (tests/inference/runtime/test_kernels.py holds it as the reference).
template <int OFFSET, typename Code>
inline float quantize_row_int8(const float* row, int64_t K, Code* codes, float* group_sums) {
  const float scale = int8_row_scale(row, K);
  const float inverse = 1.f / scale;
  int64_t k = 0;
#if defined(__AVX512F__)
  const __m512 inv = _mm512_set1_ps(inverse);
  const __m512i offset = _mm512_set1_epi32(OFFSET);
  for (; k + 32 <= K; k += 32) {
    const __m512i a = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(row + k), inv));
    const __m512i b = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(row + k + 16), inv));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(codes + k), _mm512_cvtepi32_epi8(_mm512_add_epi32(a, offset)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(codes + k + 16), _mm512_cvtepi32_epi8(_mm512_add_epi32(b, offset)));
    if (group_sums != nullptr)
      group_sums[k / 32] = static_cast<float>(_mm512_reduce_add_epi32(_mm512_add_epi32(a, b)));
  }
#endif
  for (; k < K; ++k) {
    const int32_t code = static_cast<int32_t>(std::nearbyint(row[k] * inverse));
    codes[k] = static_cast<Code>(code + OFFSET);
    if (group_sums != nullptr) {
      if (k % 32 == 0) group_sums[k / 32] = 0.f;
      group_sums[k / 32] += static_cast<float>(code);
    }
  }
  return scale;
}

}  // namespace continuo

namespace {

constexpr int64_t ROWS = 4;  // rows of x per pass over a weight row
constexpr int64_t WEIGHT_BLOCK = 16;  // weight rows kept in cache while the rows of x pass over them
constexpr int64_t TILE_PREFETCH_ROWS = 8;  // a 4 x 4 tile asks for the weight rows two tiles ahead

#ifdef CONTINUO_VNNI
constexpr bool kVnni = true;

// x rows quantized to uint8 (int8 + 128) -> MB int32 dot products with one int8 weight row; K % 64 == 0.
constexpr int64_t PREFETCH_BYTES = 8192;  // weights are read in order: ask for them this far ahead

template <int MB>
inline void dot_rows_vnni(const uint8_t* xq, int64_t K, const int8_t* w, int32_t* out) {
  constexpr int CHAINS = 4;  // independent accumulators per row: vpdpbusd's latency is hidden behind the others
  __m512i acc[MB][CHAINS];
  for (int r = 0; r < MB; ++r)
    for (int c = 0; c < CHAINS; ++c) acc[r][c] = _mm512_setzero_si512();
  int64_t k = 0;
  for (; k + 64 * CHAINS <= K; k += 64 * CHAINS) {
    __m512i wv[CHAINS];
    for (int c = 0; c < CHAINS; ++c) {
      _mm_prefetch(reinterpret_cast<const char*>(w + PREFETCH_BYTES + k + 64 * c), _MM_HINT_T0);
      wv[c] = _mm512_loadu_si512(w + k + 64 * c);
    }
    for (int r = 0; r < MB; ++r)
      for (int c = 0; c < CHAINS; ++c)
        acc[r][c] = _mm512_dpbusd_epi32(acc[r][c], _mm512_loadu_si512(xq + r * K + k + 64 * c), wv[c]);
  }
  for (; k < K; k += 64) {
    const __m512i w0 = _mm512_loadu_si512(w + k);
    for (int r = 0; r < MB; ++r) acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], _mm512_loadu_si512(xq + r * K + k), w0);
  }
  for (int r = 0; r < MB; ++r) {
    __m512i total = acc[r][0];
    for (int c = 1; c < CHAINS; ++c) total = _mm512_add_epi32(total, acc[r][c]);
    out[r] = _mm512_reduce_add_epi32(total);
  }
}
// A 4 x 4 tile: 4 rows of x against 4 consecutive weight rows (row stride K), 16 int32 dot products.
// Each loaded vector of x or of the weights feeds four vpdpbusd, which is what makes prefill (hundreds
// of rows of x) bound by arithmetic rather than by loads.
inline void tile_4x4_vnni(const uint8_t* xq, int64_t K, const int8_t* w, int32_t out[4][4]) {
  __m512i acc[4][4];
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 4; ++c) acc[r][c] = _mm512_setzero_si512();
  for (int64_t k = 0; k < K; k += 64) {
    __m512i wv[4];
    for (int c = 0; c < 4; ++c) {
      _mm_prefetch(reinterpret_cast<const char*>(w + (TILE_PREFETCH_ROWS + c) * K + k), _MM_HINT_T0);
      wv[c] = _mm512_loadu_si512(w + c * K + k);
    }
    for (int r = 0; r < 4; ++r) {
      const __m512i xv = _mm512_loadu_si512(xq + r * K + k);
      for (int c = 0; c < 4; ++c) acc[r][c] = _mm512_dpbusd_epi32(acc[r][c], xv, wv[c]);
    }
  }
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 4; ++c) out[r][c] = _mm512_reduce_add_epi32(acc[r][c]);
}
// An 8 x 2 tile: 8 rows of x against 2 consecutive weight rows. Batched decoding runs 8 rows (4 jobs under
// CFG): two 4 x 4 passes read each weight block twice and spent the second pass on arithmetic alone (a step's
// linears 40 ms against 31 for 4 rows); this reads each weight row once for all 8 rows.
inline void tile_8x2_vnni(const uint8_t* xq, int64_t K, const int8_t* w, int32_t out[8][2]) {
  __m512i acc[8][2];
  for (int r = 0; r < 8; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_si512();
  for (int64_t k = 0; k < K; k += 64) {
    _mm_prefetch(reinterpret_cast<const char*>(w + TILE_PREFETCH_ROWS * K + k), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(w + (TILE_PREFETCH_ROWS + 1) * K + k), _MM_HINT_T0);
    const __m512i w0 = _mm512_loadu_si512(w + k), w1 = _mm512_loadu_si512(w + K + k);
    for (int r = 0; r < 8; ++r) {
      const __m512i xv = _mm512_loadu_si512(xq + r * K + k);
      acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], xv, w0);
      acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], xv, w1);
    }
  }
  for (int r = 0; r < 8; ++r) {
    out[r][0] = _mm512_reduce_add_epi32(acc[r][0]);
    out[r][1] = _mm512_reduce_add_epi32(acc[r][1]);
  }
}
#else
constexpr bool kVnni = false;
#endif

// MB rows of fp32 x against one int8 weight row widened to fp32; LANES partial sums per row keep the
// FMA units busy (one running sum would wait on the previous FMA's latency every step).
constexpr int64_t LANES = 64;

template <int MB>
inline void dot_rows_fp32(const float* x, int64_t K, const int8_t* w, float* out) {
  float acc[MB][LANES] = {};
  int64_t k = 0;
  for (; k + LANES <= K; k += LANES) {
#pragma omp simd
    for (int64_t j = 0; j < LANES; ++j) {
      const float wk = static_cast<float>(w[k + j]);
      for (int r = 0; r < MB; ++r) acc[r][j] += x[r * K + k + j] * wk;
    }
  }
  for (int r = 0; r < MB; ++r) {
    float total = 0.f;
#pragma omp simd reduction(+ : total)
    for (int64_t j = 0; j < LANES; ++j) total += acc[r][j];
    for (int64_t tail = k; tail < K; ++tail) total += x[r * K + tail] * static_cast<float>(w[tail]);
    out[r] = total;
  }
}

// out (M, N) = x (M, K) W^T + bias for w (N, K) int8, scales (N,), row_sums (N,), raw: what the op below and
// decode_layers.cpp's layer loop both call (the loop on its own buffers, with no tensor made per call).
void int8_linear_rows(const float* xp, int64_t M, int64_t K, int64_t N, const int8_t* wp, const float* sp,
                      const int32_t* rs, const float* bp, float* op) {
  const bool vnni = kVnni && K % 64 == 0;
  // per call scratch, kept per thread between calls (a decode step makes up to 144 of these calls)
  static thread_local std::vector<uint8_t> xq;
  static thread_local std::vector<float> x_scale;
  if (vnni) xq.resize(M * K);
  x_scale.assign(M, 1.f);
  if (vnni) {  // per row: int8 = round(x / (absmax / 127)), stored + 128 for vpdpbusd's unsigned operand
    for (int64_t m = 0; m < M; ++m)
      x_scale[m] = continuo::quantize_row_int8<128>(xp + m * K, K, xq.data() + m * K, nullptr);
  }
  const uint8_t* xqp = xq.data();  // the workers see these through the pointers (their thread_locals are others)
  const float* xs = x_scale.data();
  // out[row, col] from an integer dot product of the +128-offset activations: undo the offset, then scale.
  auto store_vnni = [&](int64_t row, int64_t col, int32_t dot) {
    const int32_t exact = dot - 128 * rs[col];
    op[row * N + col] = static_cast<float>(exact) * xs[row] * sp[col] + (bp != nullptr ? bp[col] : 0.f);
  };
  continuo::parallel_claims(N, WEIGHT_BLOCK, [&](int64_t n0, int64_t n1) {
    // A block of weight rows stays in L1/L2 while every ROWS-row block of x passes over it, so x is
    // read from cache once per block, not once per weight row (prefill has hundreds of rows of x).
    for (int64_t nb = n0; nb < n1; nb += WEIGHT_BLOCK) {
      const int64_t ne = std::min<int64_t>(nb + WEIGHT_BLOCK, n1);
      int64_t m = 0;
#ifdef CONTINUO_VNNI
      for (; vnni && m + 8 <= M; m += 8) {  // 8 rows at a time, then the rest below
        int64_t n = nb;
        for (; n + 2 <= ne; n += 2) {
          int32_t tile[8][2];
          tile_8x2_vnni(xqp + m * K, K, wp + n * K, tile);
          for (int64_t r = 0; r < 8; ++r)
            for (int64_t c = 0; c < 2; ++c) store_vnni(m + r, n + c, tile[r][c]);
        }
        for (; n < ne; ++n) {  // an odd weight row left in the block
          for (int64_t half = 0; half < 8; half += 4) {
            int32_t dots[4];
            dot_rows_vnni<4>(xqp + (m + half) * K, K, wp + n * K, dots);
            for (int64_t r = 0; r < 4; ++r) store_vnni(m + half + r, n, dots[r]);
          }
        }
      }
#endif
      for (; m < M; m += ROWS) {
        const int64_t rows = std::min<int64_t>(ROWS, M - m);
        int64_t n = nb;
#ifdef CONTINUO_VNNI
        if (vnni && rows == ROWS) {  // full 4 x 4 tiles first; the rest of the block row by row below
          for (; n + 4 <= ne; n += 4) {
            int32_t tile[4][4];
            tile_4x4_vnni(xqp + m * K, K, wp + n * K, tile);
            for (int64_t r = 0; r < 4; ++r)
              for (int64_t c = 0; c < 4; ++c) store_vnni(m + r, n + c, tile[r][c]);
          }
        }
#endif
        for (; n < ne; ++n) {
          const int8_t* wr = wp + n * K;
          const float bias_n = bp != nullptr ? bp[n] : 0.f;
          float* out_n = op + m * N + n;
          if (vnni) {
#ifdef CONTINUO_VNNI
            int32_t dots[ROWS];
            continuo::by_rows<ROWS>(rows, [&](auto mb) {
              dot_rows_vnni<decltype(mb)::value>(xqp + m * K, K, wr, dots);
            });
            for (int64_t r = 0; r < rows; ++r) store_vnni(m + r, n, dots[r]);
#endif
          } else {
            float dots[ROWS];
            continuo::by_rows<ROWS>(rows, [&](auto mb) {
              dot_rows_fp32<decltype(mb)::value>(xp + m * K, K, wr, dots);
            });
            for (int64_t r = 0; r < rows; ++r) out_n[r * N] = dots[r] * sp[n] + bias_n;
          }
        }
      }
    }
  });
}

// w (N, K) int8, scales (N,) fp32 and row_sums (N,) int32, checked for op (the op below and decode_layers.cpp's
// plan) -> (N, K)
std::pair<int64_t, int64_t> int8_shape(const char* op, const at::Tensor& w, const at::Tensor& scales,
                                       const at::Tensor& row_sums) {
  TORCH_CHECK(w.scalar_type() == at::kChar && w.dim() == 2 && w.is_contiguous(), op, ": int8 w must be (N, K) int8");
  const int64_t N = w.size(0);
  TORCH_CHECK(scales.scalar_type() == at::kFloat && scales.numel() == N && scales.is_contiguous(),
              op, ": int8 scales must be (N,) float32");
  TORCH_CHECK(row_sums.scalar_type() == at::kInt && row_sums.numel() == N && row_sums.is_contiguous(),
              op, ": int8 row_sums must be (N,) int32");
  return {N, w.size(1)};
}

// x (..., K) fp32; w (N, K) int8; scales (N,) fp32 per output channel; row_sums (N,) int32 = sum_k w[n, k];
// bias (N,) or undefined -> (..., N) fp32.
at::Tensor int8_linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& scales, const at::Tensor& row_sums,
                       const std::optional<at::Tensor>& bias) {
  TORCH_CHECK(x.scalar_type() == at::kFloat, "int8_linear: x must be float32, got ", x.scalar_type());
  const auto [N, K] = int8_shape("int8_linear", w, scales, row_sums);
  const continuo::LinearIO io = continuo::linear_io("int8_linear", x, K, N, bias);
  int8_linear_rows(io.x2.data_ptr<float>(), io.M, K, N, w.data_ptr<int8_t>(), scales.data_ptr<float>(),
                   row_sums.data_ptr<int32_t>(), io.bias_ptr, io.out.data_ptr<float>());
  return io.out.view(io.shape);
}

bool int8_linear_uses_vnni() { return kVnni; }

}  // namespace

TORCH_LIBRARY_IMPL(continuo_cpu, CPU, m) { m.impl("int8_linear", &int8_linear); }
TORCH_LIBRARY_IMPL(continuo_cpu, CatchAll, m) { m.impl("int8_linear_uses_vnni", &int8_linear_uses_vnni); }
