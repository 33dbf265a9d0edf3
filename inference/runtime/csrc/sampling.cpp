// One decode step's sampling in one call, on the calling thread (no OpenMP region): for each sample b and codebook
// k, CFG combine, temperature, top-k threshold, softmax, division by the noise, argmax; inference/musicgen/decode.py
// (Sampler.__call__) calls it with noise already drawn by each sample's generator, and keeps the Python path as
// the reference and the stand-in (top-p, greedy, other devices, a build whose vector width is not torch's).
//
// Bit for bit the Python path's tokens: every element-wise step is the same IEEE operation torch runs
// ((conditional - null) * scale + null with the product rounded on its own, x / temperature, probs / noise), and
// the softmax is torch's own CPU kernel for one row (ATen/native/cpu/SoftMaxKernel.cpp, _vec_softmax_lastdim):
// the max and the sum by ATen's vec::reduce_all, exp by the same Vectorized<float>::exp (Sleef's expf, the symbol
// libtorch exports), 1 / sum times each value. It is compiled from ATen's own vector headers at the width torch
// dispatches to here (CPU_CAPABILITY below); guided_sample_capability() names that width, and the Python side
// uses the op only where it equals torch.backends.cpu.get_cpu_capability(), and checks its bits once at first use
// (decode.py: fused_op_agrees). Both matter: an AVX2 build (-march=x86-64-v3, 2026-12-07, torch 2.9.1) gave torch's
// probabilities in all 2400 comparisons against torch run with ATEN_CPU_CAPABILITY=avx2, and other bits in 738 of
// 2400 against torch's AVX-512 kernels (8 lanes summed, not 16), which fused_op_agrees refuses. Schema: ops.cpp.
//
// The vector headers are included here, at the end of the one translation unit kernels.py builds, with the
// capability macros ATen's own build defines per file; nothing earlier in the unit includes them.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <vector>

#if defined(__x86_64__) && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512DQ__) && \
    defined(__AVX512VL__) && defined(__FMA__)
#define CONTINUO_SAMPLING_CAPABILITY "AVX512"
#define CPU_CAPABILITY AVX512
#define CPU_CAPABILITY_AVX512
#elif defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__)
#define CONTINUO_SAMPLING_CAPABILITY "AVX2"
#define CPU_CAPABILITY AVX2
#define CPU_CAPABILITY_AVX2
#else
#define CONTINUO_SAMPLING_CAPABILITY "none"
#endif

#if defined(CPU_CAPABILITY)
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>
#endif

namespace continuo_sampling {

#if defined(CPU_CAPABILITY)
using Vec = at::vec::Vectorized<float>;
#if defined(CPU_CAPABILITY_AVX512)
using Register = __m512;
#else
using Register = __m256;
#endif

// The value as it is, out of the compiler's reach: a product passed through here is rounded on its own and never
// fused with the add after it (GCC contracts a * b + c into an FMA across statements by default; torch's separate
// mul_ and add_ kernels never fuse). Without it (2026-12-07, g++ -O3 -march=native) the build had 4 FMAs and other
// probabilities in 1200 of 2400 comparisons, which fused_op_agrees refuses; with it, no FMA in this file's code.
inline Vec opaque(Vec value) {
  Register raw = value;
  __asm__("" : "+v"(raw));
  return Vec(raw);
}

// One row of the decoder's logits after guidance and temperature into out[0..V): as guide and filter_logits
// compute it, (conditional - null) * scale + null, then / temperature where it is not 1.
void guided_row(const float* conditional, const float* null, float scale, float temperature, bool divide,
                float* out, int64_t vocab) {
  const Vec scale_vec(scale), temperature_vec(temperature);
  for (int64_t d = 0; d < vocab; d += Vec::size()) {
    const int count = static_cast<int>(std::min<int64_t>(Vec::size(), vocab - d));
    Vec x = Vec::loadu(conditional + d, count);
    if (null != nullptr) {
      const Vec n = Vec::loadu(null + d, count);
      x = opaque((x - n) * scale_vec) + n;
    }
    if (divide) x = x / temperature_vec;
    x.store(out + d, count);
  }
}

// filter_logits' top-k: the k-th largest value (topk's values, ties and all, their minimum) is the threshold, and
// values below it become -inf. A NaN is topk's largest value, so the minimum of the k is NaN and nothing compares
// below it: nothing is masked. scratch holds V floats.
void top_k_mask(float* row, int64_t vocab, int64_t top_k, float* scratch) {
  for (int64_t d = 0; d < vocab; ++d) {
    if (std::isnan(row[d])) return;
    scratch[d] = row[d];
  }
  std::nth_element(scratch, scratch + (top_k - 1), scratch + vocab, std::greater<float>());
  const float threshold = scratch[top_k - 1];
  const float minus_inf = -std::numeric_limits<float>::infinity();
  for (int64_t d = 0; d < vocab; ++d) {
    if (row[d] < threshold) row[d] = minus_inf;
  }
}

// torch's CPU softmax of one row (SoftMaxKernel.cpp: _vec_softmax_lastdim) up to the last multiplication:
// exp(x - max) into row, and 1 / their sum returned.
float softmax_exp(float* row, int64_t vocab) {
  using at::vec::map;
  using at::vec::reduce_all;
  const float max_input = reduce_all<float>([](Vec& x, Vec& y) { return at::vec::maximum(x, y); }, row, vocab);
  map([max_input](Vec x) { return (x - Vec(max_input)).exp(); }, row, row, vocab);
  float sum = reduce_all<float>([](Vec x, Vec y) { return x + y; }, row, vocab);
  sum = 1 / sum;
  return sum;
}

// argmax(row * inverse_sum / noise) as torch's argmax takes it: the first NaN, else the first of the largest.
int64_t noisy_argmax(const float* row, float inverse_sum, const float* noise, int64_t vocab, float* scratch) {
  const Vec inverse(inverse_sum);
  for (int64_t d = 0; d < vocab; d += Vec::size()) {
    const int count = static_cast<int>(std::min<int64_t>(Vec::size(), vocab - d));
    ((Vec::loadu(row + d, count) * inverse) / Vec::loadu(noise + d, count)).store(scratch + d, count);
  }
  int64_t best = 0;
  float best_value = scratch[0];
  if (std::isnan(best_value)) return 0;
  for (int64_t d = 1; d < vocab; ++d) {
    const float value = scratch[d];
    if (std::isnan(value)) return d;
    if (value > best_value) {
      best_value = value;
      best = d;
    }
  }
  return best;
}

struct Rows {
  int64_t samples, codebooks, vocab;
};

Rows check(const at::Tensor& logits, std::optional<double> guidance_scale, double temperature) {
  TORCH_CHECK(logits.device().is_cpu() && logits.scalar_type() == at::kFloat && logits.dim() == 3 &&
                  logits.is_contiguous(),
              "guided_sample: logits must be (B', K, V) contiguous fp32 on the CPU");
  TORCH_CHECK(temperature > 0, "guided_sample: temperature must be > 0 (greedy stays in Python)");
  const int64_t copies = guidance_scale.has_value() ? 2 : 1;
  TORCH_CHECK(logits.size(0) % copies == 0, "guided_sample: CFG needs [conditional; null] rows");
  return {logits.size(0) / copies, logits.size(1), logits.size(2)};
}

// The guided, filtered softmax of sample b, codebook k into probs (without the last multiplication by 1 / sum,
// which is returned).
float row_softmax(const at::Tensor& logits, const Rows& rows, std::optional<double> guidance_scale,
                  double temperature, int64_t top_k, int64_t b, int64_t k, float* row, float* scratch) {
  const float* data = logits.data_ptr<float>();
  const int64_t vocab = rows.vocab;
  const float* conditional = data + (b * rows.codebooks + k) * vocab;
  const float* null = guidance_scale.has_value() ? conditional + rows.samples * rows.codebooks * vocab : nullptr;
  const float scale = static_cast<float>(guidance_scale.value_or(1.0));
  const float temp = static_cast<float>(temperature);
  guided_row(conditional, null, scale, temp, temperature != 1.0, row, vocab);
  if (top_k > 0 && top_k < vocab) top_k_mask(row, vocab, top_k, scratch);
  return softmax_exp(row, vocab);
}

at::Tensor guided_sample(const at::Tensor& logits, std::optional<double> guidance_scale, double temperature,
                         int64_t top_k, const at::Tensor& noise) {
  const Rows rows = check(logits, guidance_scale, temperature);
  TORCH_CHECK(noise.device().is_cpu() && noise.scalar_type() == at::kFloat && noise.is_contiguous() &&
                  noise.dim() == 3 && noise.size(0) == rows.samples && noise.size(1) == rows.codebooks &&
                  noise.size(2) == rows.vocab,
              "guided_sample: noise must be (B, K, V) contiguous fp32 on the CPU");
  at::Tensor tokens = at::empty({rows.samples, rows.codebooks}, logits.options().dtype(at::kLong));
  int64_t* out = tokens.data_ptr<int64_t>();
  std::vector<float> buffers(2 * rows.vocab);
  float *row = buffers.data(), *scratch = row + rows.vocab;
  const float* noise_data = noise.data_ptr<float>();
  for (int64_t b = 0; b < rows.samples; ++b) {
    for (int64_t k = 0; k < rows.codebooks; ++k) {
      const float inverse_sum = row_softmax(logits, rows, guidance_scale, temperature, top_k, b, k, row, scratch);
      out[b * rows.codebooks + k] =
          noisy_argmax(row, inverse_sum, noise_data + (b * rows.codebooks + k) * rows.vocab, rows.vocab, scratch);
    }
  }
  return tokens;
}

// The probabilities guided_sample draws from, (B, K, V): the tests hold them to torch's softmax bit for bit.
at::Tensor guided_probs(const at::Tensor& logits, std::optional<double> guidance_scale, double temperature,
                        int64_t top_k) {
  const Rows rows = check(logits, guidance_scale, temperature);
  at::Tensor probs = at::empty({rows.samples, rows.codebooks, rows.vocab}, logits.options());
  std::vector<float> scratch(rows.vocab);
  for (int64_t b = 0; b < rows.samples; ++b) {
    for (int64_t k = 0; k < rows.codebooks; ++k) {
      float* row = probs.data_ptr<float>() + (b * rows.codebooks + k) * rows.vocab;
      const float inverse_sum =
          row_softmax(logits, rows, guidance_scale, temperature, top_k, b, k, row, scratch.data());
      at::vec::map([inverse_sum](Vec x) { return x * Vec(inverse_sum); }, row, row, rows.vocab);
    }
  }
  return probs;
}
#else
at::Tensor guided_sample(const at::Tensor&, std::optional<double>, double, int64_t, const at::Tensor&) {
  TORCH_CHECK(false, "guided_sample: not built for this CPU (no AVX2 / AVX-512 vector width of torch's)");
}

at::Tensor guided_probs(const at::Tensor&, std::optional<double>, double, int64_t) {
  TORCH_CHECK(false, "guided_probs: not built for this CPU (no AVX2 / AVX-512 vector width of torch's)");
}
#endif

std::string guided_sample_capability() { return CONTINUO_SAMPLING_CAPABILITY; }

}  // namespace continuo_sampling

TORCH_LIBRARY_IMPL(continuo_cpu, CPU, m) {
  m.impl("guided_sample", &continuo_sampling::guided_sample);
  m.impl("guided_probs", &continuo_sampling::guided_probs);
}

TORCH_LIBRARY_IMPL(continuo_cpu, CatchAll, m) {
  m.impl("guided_sample_capability", &continuo_sampling::guided_sample_capability);
}
