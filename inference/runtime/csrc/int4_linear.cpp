// y = x W^T (+ bias) for 4-bit weights in groups of 32 along K, each group with its own fp16 scale d and minimum m
// (w = d * q + m, q in 0..15: Q4_1's affine code, chosen over Q4_0's symmetric one because it measured 10-20 % less
// weight error; inference/runtime/quantize.py:Int4Linear makes the codes). A decode step reads every weight byte once,
// so halving int8's bytes is the way past the memory wall (llama.cpp's Q4_0 runs about 1.8x its Q8_0 there).
//
// Layout (16 output rows x 32 inputs per block, so one vector lane is one output row):
//   packed (N/16, K/32, 4, 64) uint8: block (t, g) holds rows 16t..16t+15, inputs 32g..32g+31 as four 64-byte
//   octets o; byte r*4 + i of octet o is q[16t + r][32g + 8o + i] in its low nibble and q[..][32g + 8o + 4 + i]
//   in its high nibble;
//   scales (N/16, K/32, 2, 16) fp16: the 16 rows' d, then their m, one 64-byte line per block.
// With AVX-512 VNNI, each row of x is quantised to int8 with its own abs-max scale (as int8_linear does), and one
// vpdpbusd multiplies 16 rows' unsigned nibbles by four broadcast activation bytes: no unpacking beyond a mask and
// a shift, no horizontal sums (llama.cpp's Q4_0 x Q8_0 dot spreads one row over the lanes and sums them). Per block
// and row of x: y += d * sum(q * xq) + m * sum(xq), in fp32 lanes. Every row of x runs on its own accumulators in
// a fixed order, so a row gives the same bits alone or batched with others. Elsewhere a portable loop dequantizes
// in registers against fp32 activations.
//
// Batched rows (4 CFG jobs: 8 rows) are bound by arithmetic, not by the weight read: a block is 4096 multiply-adds
// per 8 rows, 64 vpdpbusd (64 each, the least VNNI allows), and the float work per group and row (convert, two
// FMAs) rides beside them. Measured (2026-12-07, 2 cores AMD EPYC, 1 thread CPU time, a 1024 x 1024 weight held in
// L2, the call's ~7 us of dispatch taken out, us per MB of weights): 1 row about 23, 2 rows 31, 4 rows 55, 8 rows
// 106, i.e. 13 us per MB per row at 8 rows against 15.5 at 2: batching saves the read, not the arithmetic.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/Half.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
#define CONTINUO_VNNI4 1
#include <immintrin.h>
#endif

namespace {

constexpr int64_t TILE = 16;   // output rows per block (one per vector lane)
constexpr int64_t GROUP = 32;  // inputs per scale
constexpr int64_t BLOCK_BYTES = TILE * GROUP / 2;
constexpr int64_t MAX_ROWS = 8;  // rows of x per pass over a tile of weights

#ifdef CONTINUO_VNNI4
// Blocks of weights asked for ahead, every 64-byte line of each (the stream runs on into the next tile), and the
// scales' line. Before (2026-12-07, 2 cores AMD EPYC, load 3-4): 8 blocks ahead, two of a block's eight lines
// asked for; cold weights (24 matrices of 4096 x 1024, 1 thread, us per MB read, min of 15): 8 rows 160-174 ->
// 109-144, 2 rows 70-80 -> 62-84 (noise of the load); bits unchanged.
constexpr int64_t PREFETCH_BLOCKS = 16;

// MB rows of x (int8, row stride K; xsum (MB, G) their sums per group, as floats) against tile t's weights ->
// out (MB, 16). Per group and row the integer dot is exact in any order; the float work after it (convert, d * dot,
// m * xsum) is the same sequence for every MB, so a row gives the same bits alone and batched.
template <int MB>
inline void tile_vnni(const int8_t* xq, const float* xsum, int64_t K, const uint8_t* w, const c10::Half* s,
                      float out[MB][TILE]) {
  // Up to 4 rows, two chains per row (even and odd nibbles: half the latency of one); from 5 rows one chain: the
  // rows' chains already overlap, and the integer add that joins two chains is work at every group and row.
  constexpr int CHAINS = MB <= 4 ? 2 : 1;
  const int64_t G = K / GROUP;
  const __m512i low = _mm512_set1_epi8(0x0F);
  __m512 acc[MB];
  for (int r = 0; r < MB; ++r) acc[r] = _mm512_setzero_ps();
  for (int64_t g = 0; g < G; ++g) {
    const uint8_t* block = w + g * BLOCK_BYTES;
    for (int64_t line = 0; line < BLOCK_BYTES; line += 64)
      _mm_prefetch(reinterpret_cast<const char*>(block + PREFETCH_BLOCKS * BLOCK_BYTES + line), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(s + (g + PREFETCH_BLOCKS) * 2 * TILE), _MM_HINT_T0);
    __m512i dot[MB][CHAINS];
    for (int r = 0; r < MB; ++r)
      for (int c = 0; c < CHAINS; ++c) dot[r][c] = _mm512_setzero_si512();
    for (int o = 0; o < 4; ++o) {
      const __m512i packed = _mm512_loadu_si512(block + o * 64);
      const __m512i lo = _mm512_and_si512(packed, low);
      const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(packed, 4), low);
      const int64_t k = g * GROUP + o * 8;
      for (int r = 0; r < MB; ++r) {
        const int32_t* x4 = reinterpret_cast<const int32_t*>(xq + r * K + k);
        dot[r][0] = _mm512_dpbusd_epi32(dot[r][0], lo, _mm512_set1_epi32(x4[0]));
        dot[r][CHAINS - 1] = _mm512_dpbusd_epi32(dot[r][CHAINS - 1], hi, _mm512_set1_epi32(x4[1]));
      }
    }
    const c10::Half* sg = s + g * 2 * TILE;
    const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(sg)));
    const __m512 m = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(sg + TILE)));
    for (int r = 0; r < MB; ++r) {
      const __m512i total = CHAINS == 2 ? _mm512_add_epi32(dot[r][0], dot[r][CHAINS - 1]) : dot[r][0];
      acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(total), d, acc[r]);
      acc[r] = _mm512_fmadd_ps(m, _mm512_set1_ps(xsum[r * G + g]), acc[r]);
    }
  }
  for (int r = 0; r < MB; ++r) _mm512_storeu_ps(out[r], acc[r]);
}
#endif

// The portable loop: MB rows of fp32 x against tile t, each weight dequantized to fp32 (d * q + m) as it is read.
template <int MB>
inline void tile_portable(const float* x, int64_t K, const uint8_t* w, const c10::Half* s, float out[MB][TILE]) {
  const int64_t G = K / GROUP;
  for (int r = 0; r < MB; ++r)
    for (int64_t lane = 0; lane < TILE; ++lane) out[r][lane] = 0.f;
  for (int64_t g = 0; g < G; ++g) {
    const uint8_t* block = w + g * BLOCK_BYTES;
    const c10::Half* sg = s + g * 2 * TILE;
    for (int64_t lane = 0; lane < TILE; ++lane) {
      const float d = static_cast<float>(sg[lane]), m = static_cast<float>(sg[TILE + lane]);
      float weights[GROUP];
      for (int o = 0; o < 4; ++o)
        for (int i = 0; i < 4; ++i) {
          const uint8_t byte = block[o * 64 + lane * 4 + i];
          weights[o * 8 + i] = d * static_cast<float>(byte & 0x0F) + m;
          weights[o * 8 + 4 + i] = d * static_cast<float>(byte >> 4) + m;
        }
      for (int r = 0; r < MB; ++r) {
        const float* xr = x + r * K + g * GROUP;
        float total = 0.f;
        for (int64_t j = 0; j < GROUP; ++j) total += xr[j] * weights[j];
        out[r][lane] += total;
      }
    }
  }
}

// out (M, N) = x (M, K) W^T + bias for packed (N/16, K/32, 4, 64) and scales (N/16, K/32, 2, 16), raw: what the op
// below and decode_layers.cpp's layer loop both call (the loop on its own buffers, with no tensor made per call).
void int4_linear_rows(const float* xp, int64_t M, int64_t K, int64_t N, const uint8_t* wp, const c10::Half* sp,
                      const float* bp, bool quantize_x, float* op) {
  const int64_t tiles = N / TILE, G = K / GROUP;
#ifdef CONTINUO_VNNI4
  const bool vnni = quantize_x;
#else
  const bool vnni = false;
#endif
  // per call scratch, kept per thread between calls (a decode step makes 144 of these calls)
  static thread_local std::vector<int8_t> xq;
  static thread_local std::vector<float> xsum, x_scale;
  if (vnni) {
    xq.resize(M * K);
    xsum.resize(M * G);  // exact: |sum| <= 32 * 127
  }
  x_scale.assign(M, 1.f);
  if (vnni) {  // per row: int8 = round(x / (absmax / 127)); and the sum of each group's codes
    for (int64_t m = 0; m < M; ++m)
      x_scale[m] = continuo::quantize_row_int8<0>(xp + m * K, K, xq.data() + m * K, xsum.data() + m * G);
  }
  const int8_t* xqp = xq.data();
  const float* xsp = xsum.data();
  const float* scale = x_scale.data();
  continuo::parallel_claims(tiles, 4, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const uint8_t* w = wp + t * G * BLOCK_BYTES;
      const c10::Half* s = sp + t * G * 2 * TILE;
      for (int64_t m = 0; m < M; m += MAX_ROWS) {
        const int64_t rows = std::min<int64_t>(MAX_ROWS, M - m);
        float tile[MAX_ROWS][TILE];
        continuo::by_rows<MAX_ROWS>(rows, [&](auto mb) {
          constexpr int MB = decltype(mb)::value;
#ifdef CONTINUO_VNNI4
          if (vnni) {
            tile_vnni<MB>(xqp + m * K, xsp + m * G, K, w, s, reinterpret_cast<float(*)[TILE]>(tile));
            return;
          }
#endif
          tile_portable<MB>(xp + m * K, K, w, s, reinterpret_cast<float(*)[TILE]>(tile));
        });
        for (int64_t r = 0; r < rows; ++r) {
          float* y = op + (m + r) * N + t * TILE;
          for (int64_t lane = 0; lane < TILE; ++lane)
            y[lane] = tile[r][lane] * scale[m + r] + (bp != nullptr ? bp[t * TILE + lane] : 0.f);
        }
      }
    }
  });
}

// packed (N/16, K/32, 4, 64) uint8 and scales (N/16, K/32, 2, 16) fp16, checked for op (the op below and
// decode_layers.cpp's plan) -> (N, K)
std::pair<int64_t, int64_t> int4_shape(const char* op, const at::Tensor& packed, const at::Tensor& scales) {
  TORCH_CHECK(packed.scalar_type() == at::kByte && packed.dim() == 4 && packed.size(2) == 4 && packed.size(3) == 64 &&
                  packed.is_contiguous(),
              op, ": int4 packed weights must be (N/16, K/32, 4, 64) uint8");
  const int64_t tiles = packed.size(0), G = packed.size(1);
  TORCH_CHECK(scales.scalar_type() == at::kHalf && scales.is_contiguous() && scales.numel() == tiles * G * 2 * TILE,
              op, ": int4 scales must be (N/16, K/32, 2, 16) float16");
  return {tiles * TILE, G * GROUP};
}

// x (..., K) fp32; packed (N/16, K/32, 4, 64) uint8; scales (N/16, K/32, 2, 16) fp16; bias (N,) or undefined.
at::Tensor int4_linear(const at::Tensor& x, const at::Tensor& packed, const at::Tensor& scales,
                       const std::optional<at::Tensor>& bias, bool quantize_x) {
  TORCH_CHECK(x.scalar_type() == at::kFloat, "int4_linear: x must be float32, got ", x.scalar_type());
  const auto [N, K] = int4_shape("int4_linear", packed, scales);
  const continuo::LinearIO io = continuo::linear_io("int4_linear", x, K, N, bias);  // int8_linear.cpp
  int4_linear_rows(io.x2.data_ptr<float>(), io.M, K, N, packed.data_ptr<uint8_t>(), scales.data_ptr<c10::Half>(),
                   io.bias_ptr, quantize_x, io.out.data_ptr<float>());
  return io.out.view(io.shape);
}

}  // namespace

TORCH_LIBRARY_IMPL(continuo_cpu, CPU, m) { m.impl("int4_linear", &int4_linear); }
