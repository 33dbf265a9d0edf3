// One decode step of attention on the CPU: a single query per (batch, head) over n cached keys/values.
//
// A row's result depends only on its own keys, never on how many a call holds: each row attends over its own
// count, up to its last unmasked key (a batched row at position p sees p + 1 keys, as it does alone), its 16-key
// blocks start at absolute position 0, masked keys inside it weigh exactly 0 (not exp(-87)), and every sum runs in
// a fixed order. So a row alone and the same row in a batch give the same bits (tests/inference/runtime/
// test_kernels.py, tests/inference/musicgen/test_batching.py).
//
// Why: at one query, torch's SDPA pays a fixed cost per call (about 40-60 us here) and reads the
// cache at about 20 GB/s; this kernel reads each key and value once, in place, in the cache's own
// dtype (fp32, bf16, or int8 codes, linear or mu-law, dequantized in registers), and writes the output straight
// into the (B, 1, H*D) layout the output projection takes. Its schema is in ops.cpp.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#if defined(__AVX512F__)
#define CONTINUO_AVX512 1
#include <immintrin.h>
#endif

namespace {

// exp(x) for x <= 0 (softmax after subtracting the max), written so the compiler vectorizes it:
// 2^n * p(r) with x = n ln2 + r, |r| <= ln2 / 2, and a degree-6 polynomial (relative error ~2e-7).
// Below -87 (and for a masked key's -inf) it is exactly 0: a masked key adds nothing at all to the sums.
inline float exp_nonpositive(float x) {
  const bool vanishes = x < -87.f;
  x = vanishes ? -87.f : x;
  const float n = std::nearbyint(x * 1.44269504088896341f);
  const float r = x - n * 0.693145751953125f - n * 1.42860682030941723e-6f;
  float p = 1.f / 720.f;
  p = p * r + 1.f / 120.f;
  p = p * r + 1.f / 24.f;
  p = p * r + 1.f / 6.f;
  p = p * r + 0.5f;
  p = p * r + 1.f;
  p = p * r + 1.f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float two_n;
  std::memcpy(&two_n, &bits, sizeof(two_n));
  return vanishes ? 0.f : p * two_n;
}

// sum of x[0..n) in a fixed order for a given n: 16 lanes over whole blocks, the lanes added pairwise, then the
// tail in order (an `omp simd` reduction may split the loop where the compiler likes).
inline float sum_fixed(const float* x, int64_t n) {
  int64_t t = 0;
  float total = 0.f;
#ifdef CONTINUO_AVX512
  __m512 acc = _mm512_setzero_ps();
  for (; t + 16 <= n; t += 16) acc = _mm512_add_ps(acc, _mm512_loadu_ps(x + t));
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, acc);
  for (int width = 8; width >= 1; width /= 2)
    for (int i = 0; i < width; ++i) lanes[i] += lanes[i + width];
  total = lanes[0];
#endif
  for (; t < n; ++t) total += x[t];
  return total;
}

// Each (batch, head) reads its own short run of keys and values: crossing 4 KiB pages, the hardware's
// stream prefetch restarts, so a step of 8 rows at 400 positions waited on memory (35 ms a step for 24
// layers at 18 GB/s, and no faster with a 4x smaller int8 cache). Ask for the rows this far ahead.
constexpr int64_t PREFETCH_KEYS = 16;
constexpr int64_t MIN_KEYS_PER_CHUNK = 1024;  // keys a thread's share of a call must hold before it forks
inline void prefetch_row(const void* row, int64_t bytes) {
  const char* p = static_cast<const char*>(row);
  for (int64_t offset = 0; offset < bytes; offset += 64) __builtin_prefetch(p + offset, 0, 3);
}

// Element readers: the cache's storage to float, inlined into vectorizable loops.
// load16: 16 elements as fp32 in one vector (kVectorLoad kinds; mu-law's exp stays in the portable loops).
struct Fp32 {
  using T = float;
  static constexpr bool kVectorLoad = true;
  static inline float at(T x, float) { return x; }
#ifdef CONTINUO_AVX512
  static inline __m512 load16(const T* p) { return _mm512_loadu_ps(p); }
#endif
};
struct Bf16 {
  using T = at::BFloat16;
  static constexpr bool kVectorLoad = true;
  static inline float at(T x, float) { return static_cast<float>(x); }
#ifdef CONTINUO_AVX512
  static inline __m512 load16(const T* p) {  // bf16 is the top half of an fp32
    const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(raw), 16));
  }
#endif
};
struct Int8 {  // linear int8 codes; the caller scales per token (and head)
  using T = int8_t;
  static constexpr bool kVectorLoad = true;
  static inline float at(T x, float) { return static_cast<float>(x); }
#ifdef CONTINUO_AVX512
  static inline __m512 load16(const T* p) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
  }
#endif
};
struct MuLaw {  // code c in [-127, 127] -> sign(c) * expm1(|c| / 127 * log1p(mu)) / mu; the caller scales per token
  using T = int8_t;
  static constexpr bool kVectorLoad = false;
  static inline float at(T x, float log1p_mu) {
    const float c = static_cast<float>(x);
    const float magnitude = std::fabs(c) * (log1p_mu / 127.f);
    // expm1 through exp: exp(m) = 1 / exp(-m); m is at most log1p(mu), so no loss that matters at int8
    const float grown = 1.f / exp_nonpositive(-magnitude) - 1.f;
    return std::copysign(grown, c);
  }
};

#ifdef CONTINUO_AVX512
// Head size 64: 16 keys at a time. Each key's q.k is one vector of 16 partial sums (4 FMAs); the 16 vectors
// are summed across lanes together, by pairwise unpacks and lane shuffles (15 adds for 16 keys), where one
// key at a time spent a horizontal reduction on each. Scores all n keys: a last partial block runs the same
// instructions with its missing keys zeroed (it went through a scalar loop before, 8 partial sums a key).
inline __m512 sum_lanes_16(__m512 v[16]) {
  __m512 s[8], u[4];
  for (int p = 0; p < 8; ++p)  // per 128-bit lane: [a0+a2, b0+b2, a1+a3, b1+b3]
    s[p] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * p], v[2 * p + 1]), _mm512_unpackhi_ps(v[2 * p], v[2 * p + 1]));
  for (int p = 0; p < 4; ++p) {  // per 128-bit lane: that lane's sum of keys 4p .. 4p+3
    const __m512d c = _mm512_castps_pd(s[2 * p]), d = _mm512_castps_pd(s[2 * p + 1]);
    u[p] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(c, d)), _mm512_castpd_ps(_mm512_unpackhi_pd(c, d)));
  }
  const __m512 y01 = _mm512_add_ps(_mm512_shuffle_f32x4(u[0], u[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                   _mm512_shuffle_f32x4(u[0], u[1], _MM_SHUFFLE(3, 1, 3, 1)));
  const __m512 y23 = _mm512_add_ps(_mm512_shuffle_f32x4(u[2], u[3], _MM_SHUFFLE(2, 0, 2, 0)),
                                   _mm512_shuffle_f32x4(u[2], u[3], _MM_SHUFFLE(3, 1, 3, 1)));
  return _mm512_add_ps(_mm512_shuffle_f32x4(y01, y23, _MM_SHUFFLE(2, 0, 2, 0)),  // lane p: keys 4p .. 4p+3
                       _mm512_shuffle_f32x4(y01, y23, _MM_SHUFFLE(3, 1, 3, 1)));
}

template <typename Kind>
int64_t scores_64x16(const float* q, const typename Kind::T* k, int64_t k_step, int64_t n, const float* k_scales,
                     float* scores) {
  const __m512 q0 = _mm512_loadu_ps(q), q1 = _mm512_loadu_ps(q + 16), q2 = _mm512_loadu_ps(q + 32),
               q3 = _mm512_loadu_ps(q + 48);
  int64_t t = 0;
  for (; t < n; t += 16) {  // the last block may be partial: its missing keys are zeros, never read or stored
    const int keys = static_cast<int>(std::min<int64_t>(16, n - t));
    __m512 dots[16];
    for (int j = 0; j < 16; ++j) {
      if (j >= keys) {
        dots[j] = _mm512_setzero_ps();
        continue;
      }
      const typename Kind::T* row = k + (t + j) * k_step;
      prefetch_row(k + (t + j + PREFETCH_KEYS) * k_step, 64 * sizeof(typename Kind::T));
      __m512 acc = _mm512_mul_ps(q0, Kind::load16(row));
      acc = _mm512_fmadd_ps(q1, Kind::load16(row + 16), acc);
      acc = _mm512_fmadd_ps(q2, Kind::load16(row + 32), acc);
      dots[j] = _mm512_fmadd_ps(q3, Kind::load16(row + 48), acc);
    }
    __m512 block = sum_lanes_16(dots);  // each key's lanes are summed among themselves: a key's score is the same
    const __mmask16 valid = static_cast<__mmask16>((1u << keys) - 1u);  // in a whole block and a partial one
    if (k_scales != nullptr) block = _mm512_mul_ps(block, _mm512_maskz_loadu_ps(valid, k_scales + t));
    _mm512_mask_storeu_ps(scores + t, valid, block);
  }
  return n;
}

// sum[0..63] += weights[t] * v[t] over the keys, two keys per round into two sets of accumulators (a key's
// four FMAs wait on the one before in the same set); an odd last key goes into the first set. Takes all n keys.
template <typename Kind>
int64_t values_64(const float* weights, const typename Kind::T* v, int64_t v_step, int64_t n, float* sum) {
  __m512 a[4], b[4];
  for (int i = 0; i < 4; ++i) a[i] = b[i] = _mm512_setzero_ps();
  int64_t t = 0;
  for (; t + 2 <= n; t += 2) {
    const typename Kind::T* r0 = v + t * v_step;
    const typename Kind::T* r1 = r0 + v_step;
    prefetch_row(v + (t + PREFETCH_KEYS) * v_step, 64 * sizeof(typename Kind::T));
    prefetch_row(v + (t + 1 + PREFETCH_KEYS) * v_step, 64 * sizeof(typename Kind::T));
    const __m512 w0 = _mm512_set1_ps(weights[t]), w1 = _mm512_set1_ps(weights[t + 1]);
    for (int i = 0; i < 4; ++i) {
      a[i] = _mm512_fmadd_ps(w0, Kind::load16(r0 + 16 * i), a[i]);
      b[i] = _mm512_fmadd_ps(w1, Kind::load16(r1 + 16 * i), b[i]);
    }
  }
  if (t < n) {  // an odd key left: into the first set
    const typename Kind::T* r0 = v + t * v_step;
    const __m512 w0 = _mm512_set1_ps(weights[t]);
    for (int i = 0; i < 4; ++i) a[i] = _mm512_fmadd_ps(w0, Kind::load16(r0 + 16 * i), a[i]);
  }
  for (int i = 0; i < 4; ++i) _mm512_storeu_ps(sum + 16 * i, _mm512_add_ps(a[i], b[i]));
  return n;
}
#endif

// DIM > 0: the head size known at compile time (64 for every MusicGen); 0: read it at run time.
template <typename Kind, int DIM>
void attend_one(const float* q, const typename Kind::T* k, const typename Kind::T* v, int64_t k_step,
                int64_t v_step, int64_t n, int64_t runtime_dim, float scale, const float* k_scales,
                const float* v_scales, const bool* mask, float mu_param, float* scores, float* acc, float* out) {
  const int64_t dim = DIM > 0 ? DIM : runtime_dim;
  float unit_q[DIM > 0 ? DIM : 1];
  const float* qs = q;
  if (DIM > 0) {
    for (int64_t d = 0; d < DIM; ++d) unit_q[d] = q[d] * scale;
    qs = unit_q;
  }
  const float qscale = DIM > 0 ? 1.f : scale;
  int64_t t = 0;
#ifdef CONTINUO_AVX512
  if constexpr (DIM == 64 && Kind::kVectorLoad) t = scores_64x16<Kind>(qs, k, k_step, n, k_scales, scores);
#endif
  for (; t < n; ++t) {  // every key off the 64-wide path (that path scores all n, a partial last block too)
    const typename Kind::T* row = k + t * k_step;
    prefetch_row(k + (t + PREFETCH_KEYS) * k_step, dim * sizeof(typename Kind::T));
    float partial[8] = {};  // eight interleaved partial sums, added in a fixed order
    int64_t d = 0;
    for (; d + 8 <= dim; d += 8)
      for (int i = 0; i < 8; ++i) partial[i] += qs[d + i] * Kind::at(row[d + i], mu_param);
    float dot = ((partial[0] + partial[4]) + (partial[1] + partial[5])) +
                ((partial[2] + partial[6]) + (partial[3] + partial[7]));
    for (; d < dim; ++d) dot += qs[d] * Kind::at(row[d], mu_param);
    scores[t] = dot * qscale * (k_scales != nullptr ? k_scales[t] : 1.f);
  }
  if (mask != nullptr) {
    for (int64_t t = 0; t < n; ++t) scores[t] = mask[t] ? scores[t] : -std::numeric_limits<float>::infinity();
  }
  float best = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : best)
  for (int64_t t = 0; t < n; ++t) best = scores[t] > best ? scores[t] : best;
  if (best == -std::numeric_limits<float>::infinity()) {  // every key masked: zeros, as SDPA's math path gives
    for (int64_t d = 0; d < dim; ++d) out[d] = 0.f;
    return;
  }
#pragma omp simd
  for (int64_t t = 0; t < n; ++t) scores[t] = exp_nonpositive(scores[t] - best);
  const float total = sum_fixed(scores, n);
  if (v_scales != nullptr) {
#pragma omp simd
    for (int64_t t = 0; t < n; ++t) scores[t] *= v_scales[t];
  }
  float local[DIM > 0 ? DIM : 1];
  float* sum = DIM > 0 ? local : acc;
  for (int64_t d = 0; d < dim; ++d) sum[d] = 0.f;
  t = 0;
#ifdef CONTINUO_AVX512
  if constexpr (DIM == 64 && Kind::kVectorLoad) t = values_64<Kind>(scores, v, v_step, n, sum);
#endif
  for (; t < n; ++t) {
    const float weight = scores[t];
    const typename Kind::T* row = v + t * v_step;
    prefetch_row(v + (t + PREFETCH_KEYS) * v_step, dim * sizeof(typename Kind::T));
#pragma omp simd
    for (int64_t d = 0; d < dim; ++d) sum[d] += weight * Kind::at(row[d], mu_param);
  }
  const float inverse = 1.f / total;
  for (int64_t d = 0; d < dim; ++d) out[d] = sum[d] * inverse;
}

// One call's attention, raw: what the op below and decode_layers.cpp's layer loop both run (the loop straight from
// its buffers and the caches, with no views made per call).
struct AttentionRef {
  const float* q = nullptr;  // row b, head h at q + b * q_b + h * q_h (D contiguous)
  int64_t q_b = 0, q_h = 0;
  const void* k = nullptr;  // the cache's keys and values (B, H, T, D), D contiguous, by these strides
  const void* v = nullptr;
  int64_t k_b = 0, k_h = 0, k_t = 0, v_b = 0, v_h = 0, v_t = 0;
  at::ScalarType dtype = at::kFloat;  // fp32, bf16, int8 (linear codes; mu-law with mulaw)
  bool mulaw = false;
  float mu_param = 0.f;  // log1p(mu) for mu-law codes
  const float* k_scales = nullptr;  // int8 codes: per token (B, T) or per head and token (B, H, T), contiguous
  const float* v_scales = nullptr;
  int64_t scale_heads = 1, positions = 0;  // positions: T, the scales' row length
  const bool* mask = nullptr;  // (B, n): the keys each row sees, or nullptr: all n
  int64_t batch = 0, heads = 0, dim = 0, n = 0;
  float scale = 1.f;
  float* out = nullptr;  // (B, H * D)

  // k and v (B, H, T, D) tensors: their data, strides, dtype and T (as positions)
  void set_keys(const at::Tensor& keys, const at::Tensor& values) {
    k = keys.data_ptr();
    v = values.data_ptr();
    k_b = keys.stride(0);
    k_h = keys.stride(1);
    k_t = keys.stride(2);
    v_b = values.stride(0);
    v_h = values.stride(1);
    v_t = values.stride(2);
    dtype = keys.scalar_type();
    positions = keys.size(2);
  }
};

void attention_rows(const AttentionRef& a) {
  const int64_t batch = a.batch, heads = a.heads, dim = a.dim, n = a.n;
  const bool codes = a.dtype == at::kChar;
  auto scale_offset = [&](int64_t b, int64_t h) {
    return (b * a.scale_heads + (a.scale_heads > 1 ? h : 0)) * a.positions;
  };
  // Each row's own key count: up to its last unmasked key (all n without a mask). Keys past it are not read.
  std::vector<int64_t> lengths(batch, n);
  if (a.mask != nullptr) {
    for (int64_t b = 0; b < batch; ++b) {
      int64_t last = n;
      while (last > 0 && !a.mask[b * n + last - 1]) --last;
      lengths[b] = last;
    }
  }
  // How the (row, head) pairs are split over threads: a chunk of at least MIN_KEYS_PER_CHUNK keys, so a call with
  // little work (cross-attention over a dozen text tokens: 2 rows x 16 heads x 12 keys, about 8 us) runs on the
  // calling thread instead of paying a parallel region's fork and barrier. Measured (2026-12-07, 2 cores AMD EPYC,
  // 2 threads, load 3.3-3.5, alternated with the code before, us a call, CPU min / median): that call 79-110 /
  // 318-456 -> 9.4-9.7 / 13-25; at 1 thread nothing changes (it ran inline already). Tried and left out: asking
  // for the next pair's first keys while one pair computes (cold cache, 1 thread, us min: 12 text keys 22-26 ->
  // 19-26, 100 int8 keys 56-57 -> 48-61: no gain above the noise). Also left out (2026-12-07, musicgen-small int4
  // step, in one process, alternated): every key and value of a small chunk asked for at its start, and the next
  // pair's opening keys and values for a large one: into L1 the cross-attention went 0.81 -> 1.47 ms a step (the
  // burst evicted itself), into L2 0.86 -> 0.88; the self-attention 1.85 -> 1.77 and 2.01 -> 1.97 (noise).
  int64_t total_keys = 0;
  for (int64_t b = 0; b < batch; ++b) total_keys += lengths[b] * heads;
  const int64_t pairs = batch * heads;
  const int64_t grain =
      std::max<int64_t>(1, (MIN_KEYS_PER_CHUNK * pairs + total_keys - 1) / std::max<int64_t>(total_keys, 1));
  auto run = [&](auto kind, const auto* k_ptr, const auto* v_ptr) {
    using Kind = decltype(kind);
    auto one = dim == 64 ? &attend_one<Kind, 64> : &attend_one<Kind, 0>;
    continuo::parallel_claims(pairs, grain, [&](int64_t begin, int64_t end) {
      std::vector<float> scores(n), acc(dim);
      for (int64_t i = begin; i < end; ++i) {
        const int64_t b = i / heads, h = i % heads;
        float* out = a.out + b * heads * dim + h * dim;
        if (lengths[b] == 0) {  // every key masked: zeros, as SDPA's math path gives
          std::fill_n(out, dim, 0.f);
          continue;
        }
        one(a.q + b * a.q_b + h * a.q_h, k_ptr + b * a.k_b + h * a.k_h, v_ptr + b * a.v_b + h * a.v_h, a.k_t, a.v_t,
            lengths[b], dim, a.scale, codes ? a.k_scales + scale_offset(b, h) : nullptr,
            codes ? a.v_scales + scale_offset(b, h) : nullptr, a.mask != nullptr ? a.mask + b * n : nullptr,
            a.mu_param, scores.data(), acc.data(), out);
      }
    });
  };
  switch (a.dtype) {
    case at::kFloat: run(Fp32{}, static_cast<const float*>(a.k), static_cast<const float*>(a.v)); break;
    case at::kBFloat16:
      run(Bf16{}, static_cast<const at::BFloat16*>(a.k), static_cast<const at::BFloat16*>(a.v));
      break;
    case at::kChar:
      if (a.mulaw) run(MuLaw{}, static_cast<const int8_t*>(a.k), static_cast<const int8_t*>(a.v));
      else run(Int8{}, static_cast<const int8_t*>(a.k), static_cast<const int8_t*>(a.v));
      break;
    default: TORCH_CHECK(false, "decode_attention: cache dtype ", a.dtype, " is not fp32, bf16 or int8");
  }
}

// q (B, H, 1, D) fp32, any strides with unit stride on D. k, v (B, H, T, D) with T >= n, unit stride on D.
// k_scales / v_scales: the per-token scales of an int8 cache, (B, T) or (B, H, T): mu-law codes with mu, linear
// codes without; else undefined. mask: (B, n) bool or undefined.
// Returns (B, 1, H * D) fp32.
at::Tensor decode_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t n,
                            const std::optional<at::Tensor>& k_scales, const std::optional<at::Tensor>& v_scales,
                            const std::optional<double>& mu, const std::optional<at::Tensor>& mask,
                            double scale) {
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, "decode_attention: q, k, v must be (B, H, T, D)");
  TORCH_CHECK(q.size(2) == 1, "decode_attention takes one query per (batch, head), got ", q.size(2));
  TORCH_CHECK(q.scalar_type() == at::kFloat, "decode_attention: q must be float32");
  TORCH_CHECK(k.scalar_type() == v.scalar_type(), "decode_attention: k and v dtypes differ");
  TORCH_CHECK(q.stride(3) == 1 && k.stride(3) == 1 && v.stride(3) == 1, "decode_attention: D must be contiguous");
  const int64_t batch = q.size(0), heads = q.size(1), dim = q.size(3);
  TORCH_CHECK(k.size(0) == batch && k.size(1) == heads && k.size(3) == dim && v.sizes() == k.sizes(),
              "decode_attention: k/v shape ", k.sizes(), " does not fit q ", q.sizes());
  TORCH_CHECK(n >= 1 && n <= k.size(2), "decode_attention: n=", n, " outside the cache of ", k.size(2));
  const bool codes = k.scalar_type() == at::kChar;  // int8: mu-law codes with mu, linear codes without
  const bool mulaw = codes && mu.has_value();
  TORCH_CHECK(!codes || (k_scales && v_scales), "decode_attention: int8 codes need scales");
  at::Tensor ks, vs, msk;
  AttentionRef a;
  if (codes) {
    ks = k_scales->to(at::kFloat).contiguous();  // a linear cache's fp32 scales: read in place
    vs = v_scales->to(at::kFloat).contiguous();
    if (mulaw) {  // the 1 / mu of the mu-law expansion, per token
      ks = ks / *mu;
      vs = vs / *mu;
    }
    a.scale_heads = ks.numel() == batch * heads * k.size(2) ? heads : 1;
    TORCH_CHECK(ks.numel() == batch * a.scale_heads * k.size(2) && vs.numel() == ks.numel(),
                "decode_attention: scales must be (B, T) or (B, H, T)");
    a.k_scales = ks.data_ptr<float>();
    a.v_scales = vs.data_ptr<float>();
  }
  if (mask && mask->defined()) {
    msk = mask->to(at::kBool).contiguous();
    TORCH_CHECK(msk.dim() == 2 && msk.size(0) == batch && msk.size(1) == n, "decode_attention: mask must be (B, n)");
    a.mask = msk.data_ptr<bool>();
  }
  at::Tensor out = at::empty({batch, 1, heads * dim}, q.options());
  a.q = q.data_ptr<float>();
  a.q_b = q.stride(0);
  a.q_h = q.stride(1);
  a.set_keys(k, v);
  a.mulaw = mulaw;
  a.mu_param = mulaw ? static_cast<float>(std::log1p(*mu)) : 0.f;
  a.batch = batch;
  a.heads = heads;
  a.dim = dim;
  a.n = n;
  a.scale = static_cast<float>(scale);
  a.out = out.data_ptr<float>();
  attention_rows(a);
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(continuo_cpu, CPU, m) { m.impl("decode_attention", &decode_attention); }
