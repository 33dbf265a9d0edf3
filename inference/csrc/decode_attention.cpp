// One decode step of attention on the CPU: a single query per (batch, head) over n cached keys/values.
//
// Why: at one query, torch's SDPA pays a fixed cost per call (about 40-60 us here) and reads the
// cache at about 20 GB/s; this kernel reads each key and value once, in place, in the cache's own
// dtype (fp32, bf16, or mu-law int8 codes dequantized in registers), and writes the output straight
// into the (B, 1, H*D) layout the output projection takes. Registered as torch.ops.continuo_cpu.*.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

namespace {

// exp(x) for x <= 0 (softmax after subtracting the max), written so the compiler vectorizes it:
// 2^n * p(r) with x = n ln2 + r, |r| <= ln2 / 2, and a degree-6 polynomial (relative error ~2e-7).
inline float exp_nonpositive(float x) {
  x = x < -87.f ? -87.f : x;
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
  return p * two_n;
}

// Element readers: the cache's storage to float, inlined into vectorizable loops.
struct Fp32 {
  using T = float;
  static inline float at(T x, float) { return x; }
};
struct Bf16 {
  using T = at::BFloat16;
  static inline float at(T x, float) { return static_cast<float>(x); }
};
struct MuLaw {  // code c in [-127, 127] -> sign(c) * expm1(|c| / 127 * log1p(mu)) / mu; the caller scales per token
  using T = int8_t;
  static inline float at(T x, float log1p_mu) {
    const float c = static_cast<float>(x);
    const float magnitude = std::fabs(c) * (log1p_mu / 127.f);
    // expm1 through exp: exp(m) = 1 / exp(-m); m is at most log1p(mu), so no loss that matters at int8
    const float grown = 1.f / exp_nonpositive(-magnitude) - 1.f;
    return std::copysign(grown, c);
  }
};

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
  for (int64_t t = 0; t < n; ++t) {
    const typename Kind::T* row = k + t * k_step;
    float dot = 0.f;
#pragma omp simd reduction(+ : dot)
    for (int64_t d = 0; d < dim; ++d) dot += qs[d] * Kind::at(row[d], mu_param);
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
  float total = 0.f;
#pragma omp simd reduction(+ : total)
  for (int64_t t = 0; t < n; ++t) {
    const float p = exp_nonpositive(scores[t] - best);
    scores[t] = p;
    total += p;
  }
  if (v_scales != nullptr) {
#pragma omp simd
    for (int64_t t = 0; t < n; ++t) scores[t] *= v_scales[t];
  }
  float local[DIM > 0 ? DIM : 1];
  float* sum = DIM > 0 ? local : acc;
  for (int64_t d = 0; d < dim; ++d) sum[d] = 0.f;
  for (int64_t t = 0; t < n; ++t) {
    const float weight = scores[t];
    const typename Kind::T* row = v + t * v_step;
#pragma omp simd
    for (int64_t d = 0; d < dim; ++d) sum[d] += weight * Kind::at(row[d], mu_param);
  }
  const float inverse = 1.f / total;
  for (int64_t d = 0; d < dim; ++d) out[d] = sum[d] * inverse;
}

// q (B, H, 1, D) fp32, any strides with unit stride on D. k, v (B, H, T, D) with T >= n, unit stride on D.
// k_scales / v_scales: (B, T) per-token scales of a mu-law int8 cache (with its mu), else undefined. mask: (B, n) bool or undefined.
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
  const bool mulaw = k.scalar_type() == at::kChar;
  TORCH_CHECK(!mulaw || (k_scales && v_scales && mu), "decode_attention: int8 codes need scales and mu");
  at::Tensor ks, vs, msk;
  if (mulaw) {
    ks = (k_scales->to(at::kFloat) / *mu).contiguous();  // the 1 / mu of the mu-law expansion, per token
    vs = (v_scales->to(at::kFloat) / *mu).contiguous();
    TORCH_CHECK(ks.numel() == batch * k.size(2) && vs.numel() == ks.numel(), "decode_attention: scales must be (B, T)");
  }
  if (mask && mask->defined()) {
    msk = mask->to(at::kBool).contiguous();
    TORCH_CHECK(msk.dim() == 2 && msk.size(0) == batch && msk.size(1) == n, "decode_attention: mask must be (B, n)");
  }
  at::Tensor out = at::empty({batch, 1, heads * dim}, q.options());
  const float* q_ptr = q.data_ptr<float>();
  float* out_ptr = out.data_ptr<float>();
  const int64_t positions = k.size(2);
  const float fscale = static_cast<float>(scale);

  const float mu_param = mulaw ? static_cast<float>(std::log1p(*mu)) : 0.f;
  auto run = [&](auto kind, const auto* k_ptr, const auto* v_ptr) {
    using Kind = decltype(kind);
    auto one = dim == 64 ? &attend_one<Kind, 64> : &attend_one<Kind, 0>;
    at::parallel_for(0, batch * heads, 1, [&](int64_t begin, int64_t end) {
      std::vector<float> scores(n), acc(dim);
      for (int64_t i = begin; i < end; ++i) {
        const int64_t b = i / heads, h = i % heads;
        one(q_ptr + b * q.stride(0) + h * q.stride(1), k_ptr + b * k.stride(0) + h * k.stride(1),
                         v_ptr + b * v.stride(0) + h * v.stride(1), k.stride(2), v.stride(2), n, dim, fscale,
                         mulaw ? ks.data_ptr<float>() + b * positions : nullptr,
                         mulaw ? vs.data_ptr<float>() + b * positions : nullptr,
                         msk.defined() ? msk.data_ptr<bool>() + b * n : nullptr,
                         mu_param, scores.data(), acc.data(),
                         out_ptr + b * heads * dim + h * dim);
      }
    });
  };
  switch (k.scalar_type()) {
    case at::kFloat: run(Fp32{}, k.data_ptr<float>(), v.data_ptr<float>()); break;
    case at::kBFloat16: run(Bf16{}, k.data_ptr<at::BFloat16>(), v.data_ptr<at::BFloat16>()); break;
    case at::kChar: run(MuLaw{}, k.data_ptr<int8_t>(), v.data_ptr<int8_t>()); break;
    default: TORCH_CHECK(false, "decode_attention: cache dtype ", k.scalar_type(), " is not fp32, bf16 or int8");
  }
  return out;
}

}  // namespace

TORCH_LIBRARY(continuo_cpu, m) {
  m.def("decode_attention(Tensor q, Tensor k, Tensor v, int n, Tensor? k_scales, Tensor? v_scales, "
        "float? mu, Tensor? mask, float scale) -> Tensor");
}

TORCH_LIBRARY_IMPL(continuo_cpu, CPU, m) { m.impl("decode_attention", &decode_attention); }
