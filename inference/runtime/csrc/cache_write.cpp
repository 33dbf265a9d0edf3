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

// Where one layer's cache lives, raw: codes or values (B, H, T, D) with their strides (k and v alike), and an int8
// cache's scales (B, H, T, 1) with theirs (nullptr: no scales).
struct CacheRef {
  void* k = nullptr;
  void* v = nullptr;
  at::ScalarType dtype = at::kFloat;
  int64_t stride_b = 0, stride_h = 0, stride_t = 0, length = 0;
  float* k_scale = nullptr;
  float* v_scale = nullptr;
  int64_t scale_b = 0, scale_h = 0, scale_t = 0;
};

// k rows (b, h) at k + b * k_strides[0] + h * k_strides[1] (D contiguous), and v's by v_strides, into the cache at
// pos[b], raw: what the op below and decode_layers.cpp's layer loop both call (the loop straight from its qkv
// buffer, no views).
void cache_write_rows(const CacheRef& c, const float* k, const int64_t k_strides[2], const float* v,
                      const int64_t v_strides[2], int64_t batch, int64_t heads, int64_t dim, const int64_t* pos) {
  const bool codes = c.dtype == at::kChar;
  auto run = [&](auto* kc, auto* vc) {
    using T = std::remove_pointer_t<decltype(kc)>;
    float ignored = 0.f;
    // The targets are lines no step has touched since the last (24 layers of cache between): one after another,
    // each store waited on its line (260 us a call for 8 rows). Asked for all at once, the misses overlap.
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t h = 0; h < heads; ++h) {
        const int64_t at = b * c.stride_b + h * c.stride_h + pos[b] * c.stride_t;
        for (int64_t offset = 0; offset < dim * static_cast<int64_t>(sizeof(T)); offset += 64) {
          __builtin_prefetch(reinterpret_cast<const char*>(kc + at) + offset, 1, 3);
          __builtin_prefetch(reinterpret_cast<const char*>(vc + at) + offset, 1, 3);
        }
      }
    }
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t h = 0; h < heads; ++h) {
        const int64_t at = b * c.stride_b + h * c.stride_h + pos[b] * c.stride_t;
        const int64_t at_scale = b * c.scale_b + h * c.scale_h + pos[b] * c.scale_t;
        put_row(kc + at, k + b * k_strides[0] + h * k_strides[1], dim, codes ? c.k_scale + at_scale : &ignored);
        put_row(vc + at, v + b * v_strides[0] + h * v_strides[1], dim, codes ? c.v_scale + at_scale : &ignored);
      }
    }
  };
  switch (c.dtype) {
    case at::kFloat: run(static_cast<float*>(c.k), static_cast<float*>(c.v)); break;
    case at::kBFloat16: run(static_cast<at::BFloat16*>(c.k), static_cast<at::BFloat16*>(c.v)); break;
    case at::kChar: run(static_cast<int8_t*>(c.k), static_cast<int8_t*>(c.v)); break;
    default: TORCH_CHECK(false, "cache_write: cache dtype ", c.dtype, " is not fp32, bf16 or int8");
  }
}

// caches (B', H, T, D) and an int8 cache's scales (B', H, T, 1) as a CacheRef, checked (rows 0..B'-1 all usable)
CacheRef cache_ref(const at::Tensor& k_cache, const at::Tensor& v_cache, const std::optional<at::Tensor>& k_scale,
                   const std::optional<at::Tensor>& v_scale) {
  TORCH_CHECK(k_cache.dim() == 4 && k_cache.sizes() == v_cache.sizes() && k_cache.strides() == v_cache.strides() &&
                  k_cache.scalar_type() == v_cache.scalar_type() && k_cache.stride(3) == 1,
              "cache_write: the k and v caches must be (B, H, T, D) alike, D contiguous");
  CacheRef c;
  c.k = k_cache.data_ptr();
  c.v = v_cache.data_ptr();
  c.dtype = k_cache.scalar_type();
  c.stride_b = k_cache.stride(0);
  c.stride_h = k_cache.stride(1);
  c.stride_t = k_cache.stride(2);
  c.length = k_cache.size(2);
  if (c.dtype == at::kChar) {
    TORCH_CHECK(k_scale && v_scale && k_scale->defined() && v_scale->defined() &&
                    k_scale->scalar_type() == at::kFloat && k_scale->dim() == 4 &&
                    k_scale->size(0) == k_cache.size(0) && k_scale->size(1) == k_cache.size(1) &&
                    k_scale->size(2) == c.length && k_scale->sizes() == v_scale->sizes() &&
                    k_scale->strides() == v_scale->strides() && v_scale->scalar_type() == at::kFloat,
                "cache_write: an int8 cache needs fp32 scales (B, H, T, 1)");
    c.k_scale = k_scale->data_ptr<float>();
    c.v_scale = v_scale->data_ptr<float>();
    c.scale_b = k_scale->stride(0);
    c.scale_h = k_scale->stride(1);
    c.scale_t = k_scale->stride(2);
  }
  return c;
}

void cache_write(at::Tensor k_cache, at::Tensor v_cache, const at::Tensor& k, const at::Tensor& v,
                 const at::Tensor& positions, const std::optional<at::Tensor>& k_scale,
                 const std::optional<at::Tensor>& v_scale) {
  TORCH_CHECK(k_cache.dim() == 4 && k.dim() == 4 && k.size(2) == 1, "cache_write: caches (B, H, T, D), k/v (B, H, 1, D)");
  TORCH_CHECK(k.scalar_type() == at::kFloat && v.scalar_type() == at::kFloat, "cache_write: k and v must be float32");
  const int64_t batch = k.size(0), heads = k.size(1), dim = k.size(3), length = k_cache.size(2);
  TORCH_CHECK(k_cache.size(0) == batch && k_cache.size(1) == heads && k_cache.size(3) == dim && v.sizes() == k.sizes(),
              "cache_write: k ", k.sizes(), " does not fit the cache ", k_cache.sizes());
  TORCH_CHECK(k.stride(3) == 1 && v.stride(3) == 1, "cache_write: D must be contiguous");
  const CacheRef c = cache_ref(k_cache, v_cache, k_scale, v_scale);
  const at::Tensor where = positions.to(at::kLong).contiguous();
  TORCH_CHECK(where.numel() == batch, "cache_write: one position per row");
  const int64_t* pos = where.data_ptr<int64_t>();
  for (int64_t b = 0; b < batch; ++b)
    TORCH_CHECK(pos[b] >= 0 && pos[b] < length, "cache_write: position ", pos[b], " outside the cache of ", length);
  const int64_t k_strides[2] = {k.stride(0), k.stride(1)}, v_strides[2] = {v.stride(0), v.stride(1)};
  cache_write_rows(c, k.data_ptr<float>(), k_strides, v.data_ptr<float>(), v_strides, batch, heads, dim, pos);
}

}  // namespace

TORCH_LIBRARY_IMPL(continuo_cpu, CPU, m) { m.impl("cache_write", &cache_write); }
