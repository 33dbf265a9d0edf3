// One new token per row into the cache, each row at its own position: k_cache (B, H, T, D) fp32, bf16 or int8
// (then k_scale (B, H, T, 1) fp32 gets one abs-max scale per row, head and token, as
// inference/musicgen/kv_cache.py:int8_encode computes it, rounding half to even); k (B, H, 1, D) fp32; positions (B,).
// Indexing a (B, H, T, D) cache at (rows, :, positions) in torch costs a few us per call standalone, and 4-5 ms
// a step of 8 rows in the decode (48 calls, each on cache lines not read for a step); this is one pass.
// Its schema is in ops.cpp; inference/musicgen/kv_cache.py calls it for every decode step's new keys and values.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <type_traits>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace {

template <typename T>
inline void put_row(T* dst, const float* src, int64_t dim, float* scale_out) {
  if constexpr (std::is_same_v<T, int8_t>) {
    // Vectorised (the scalar loop, a division and a round per value, was most of a call's 20 us at 2 rows x 16
    // heads; 2026-12-07, 2 cores AMD EPYC): max, IEEE division and round-half-even give the scalar loop's bits.
    const float scale = std::max(continuo::abs_max(src, dim) / 127.f, 1e-12f);  // int8_linear.cpp, earlier
    int64_t d = 0;
#if defined(__AVX512F__)
    const __m512 divisor = _mm512_set1_ps(scale), top = _mm512_set1_ps(127.f), bottom = _mm512_set1_ps(-127.f);
    for (; d + 16 <= dim; d += 16) {
      const __m512 code = _mm512_roundscale_ps(_mm512_div_ps(_mm512_loadu_ps(src + d), divisor),
                                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + d),
                       _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(_mm512_min_ps(_mm512_max_ps(code, bottom), top))));
    }
#endif
    for (; d < dim; ++d) {
      const float code = std::nearbyint(src[d] / scale);
      dst[d] = static_cast<int8_t>(std::min(127.f, std::max(-127.f, code)));
    }
    *scale_out = scale;
  } else {
    for (int64_t d = 0; d < dim; ++d) dst[d] = static_cast<T>(src[d]);
  }
}

void cache_write(at::Tensor k_cache, at::Tensor v_cache, const at::Tensor& k, const at::Tensor& v,
                 const at::Tensor& positions, const std::optional<at::Tensor>& k_scale,
                 const std::optional<at::Tensor>& v_scale) {
  TORCH_CHECK(k_cache.dim() == 4 && k.dim() == 4 && k.size(2) == 1, "cache_write: caches (B, H, T, D), k/v (B, H, 1, D)");
  TORCH_CHECK(k.scalar_type() == at::kFloat && v.scalar_type() == at::kFloat, "cache_write: k and v must be float32");
  TORCH_CHECK(k_cache.sizes() == v_cache.sizes() && k_cache.scalar_type() == v_cache.scalar_type(),
              "cache_write: the k and v caches differ");
  const int64_t batch = k.size(0), heads = k.size(1), dim = k.size(3), length = k_cache.size(2);
  TORCH_CHECK(k_cache.size(0) == batch && k_cache.size(1) == heads && k_cache.size(3) == dim && v.sizes() == k.sizes(),
              "cache_write: k ", k.sizes(), " does not fit the cache ", k_cache.sizes());
  TORCH_CHECK(k_cache.stride(3) == 1 && v_cache.stride(3) == 1 && k.stride(3) == 1 && v.stride(3) == 1,
              "cache_write: D must be contiguous");
  const at::Tensor where = positions.to(at::kLong).contiguous();
  TORCH_CHECK(where.numel() == batch, "cache_write: one position per row");
  const int64_t* pos = where.data_ptr<int64_t>();
  for (int64_t b = 0; b < batch; ++b)
    TORCH_CHECK(pos[b] >= 0 && pos[b] < length, "cache_write: position ", pos[b], " outside the cache of ", length);
  const bool codes = k_cache.scalar_type() == at::kChar;
  TORCH_CHECK(!codes || (k_scale && v_scale && k_scale->scalar_type() == at::kFloat && k_scale->dim() == 4 &&
                         k_scale->size(1) == heads && k_scale->size(2) == length),
              "cache_write: an int8 cache needs fp32 scales (B, H, T, 1)");
  auto run = [&](auto* kc, auto* vc) {
    using T = std::remove_pointer_t<decltype(kc)>;
    float* ks = codes ? k_scale->data_ptr<float>() : nullptr;
    float* vs = codes ? v_scale->data_ptr<float>() : nullptr;
    float ignored = 0.f;
    // The targets are lines no step has touched since the last (24 layers of cache between): one after another,
    // each store waited on its line (260 us a call for 8 rows). Asked for all at once, the misses overlap.
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t h = 0; h < heads; ++h) {
        const int64_t at_k = b * k_cache.stride(0) + h * k_cache.stride(1) + pos[b] * k_cache.stride(2);
        const int64_t at_v = b * v_cache.stride(0) + h * v_cache.stride(1) + pos[b] * v_cache.stride(2);
        for (int64_t offset = 0; offset < dim * static_cast<int64_t>(sizeof(T)); offset += 64) {
          __builtin_prefetch(reinterpret_cast<const char*>(kc + at_k) + offset, 1, 3);
          __builtin_prefetch(reinterpret_cast<const char*>(vc + at_v) + offset, 1, 3);
        }
      }
    }
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t h = 0; h < heads; ++h) {
        const int64_t at_k = b * k_cache.stride(0) + h * k_cache.stride(1) + pos[b] * k_cache.stride(2);
        const int64_t at_v = b * v_cache.stride(0) + h * v_cache.stride(1) + pos[b] * v_cache.stride(2);
        put_row(kc + at_k, k.data_ptr<float>() + b * k.stride(0) + h * k.stride(1), dim,
                codes ? ks + b * k_scale->stride(0) + h * k_scale->stride(1) + pos[b] * k_scale->stride(2) : &ignored);
        put_row(vc + at_v, v.data_ptr<float>() + b * v.stride(0) + h * v.stride(1), dim,
                codes ? vs + b * v_scale->stride(0) + h * v_scale->stride(1) + pos[b] * v_scale->stride(2) : &ignored);
      }
    }
  };
  switch (k_cache.scalar_type()) {
    case at::kFloat: run(k_cache.data_ptr<float>(), v_cache.data_ptr<float>()); break;
    case at::kBFloat16: run(k_cache.data_ptr<at::BFloat16>(), v_cache.data_ptr<at::BFloat16>()); break;
    case at::kChar: run(k_cache.data_ptr<int8_t>(), v_cache.data_ptr<int8_t>()); break;
    default: TORCH_CHECK(false, "cache_write: cache dtype ", k_cache.scalar_type(), " is not fp32, bf16 or int8");
  }
}

}  // namespace

TORCH_LIBRARY_IMPL(continuo_cpu, CPU, m) { m.impl("cache_write", &cache_write); }
