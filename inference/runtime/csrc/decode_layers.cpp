// One decode step through every layer of the MusicGen decoder in one call: LayerNorms, the int4 / int8 linears,
// the cache writes, self- and cross-attention, GELU and the residual adds, for one token per row.
//
// Why: a step of musicgen-small is about 220 torch calls from Python (24 layers of norm, linear, view, chunk,
// cache write, attention, add ...), and each costs 5-25 us of Python and dispatch: 5.4-6.1 ms per step measured
// with the layers' arithmetic made negligible (24 layers at width 64), a fifth of an int4 step. Here the layer
// loop is C++, and it calls the kernels' raw entry points (int4_linear_rows, int8_linear_rows, cache_write_rows,
// attention_rows: the code the ops run, so the same bits) on pointers and buffers made once: no dispatcher call,
// tensor view, output tensor or scratch vector per op. Through the dispatcher each op cost about 4 us at 1 thread
// (a linear's input view, output tensor and vectors; the cache write's and attention's views of the qkv output and
// the cache), and the outputs, new each call, came cold. Measured in one process, 25-step blocks alternated over
// 1000 steps (2026-12-07, musicgen-small int4, int8 cache, 2 threads, quiet, load 1.3-1.5): the call 15.19 ->
// 14.46 ms (cache writes 0.61 -> 0.22 ms), the step 17.15 -> 16.65 ms (median); at 1 thread 18.66 -> 16.66 ms.
//
// A step on a plan (decode_plan, decode_planned): make_plan checks every argument list once and turns it into
// pointers (LinearRef, CacheRef, AttentionRef) while holding the lists; MusicGenDecoder.fast_plan keeps one until
// the lists change. decode_layers, the per-call op, builds a plan and runs it (the tests' and the A/B's entry).
//
// It runs only the CPU fast path (inference/musicgen/model.py:MusicGenDecoder.fast_layers decides): every linear
// Int4Linear or Int8Linear, fused attention, a cache our kernels write and read (fp32, bf16, linear int8), fp32
// activations. Each row is computed on its own, in the same order as in the Python path's kernels, so a row alone
// and batched still give the same bits.
//
// Arguments (per layer, fixed slots; None where a slot is unused):
//   params: 30 per layer: attention_norm (w, b), wqkv (4), wo (4), cross_norm (w, b), cross wq (4), cross wo (4),
//           ffn_norm (w, b), w1 (4), w2 (4); a linear's 4 are int4 (packed, scales, None, bias) or int8 (codes,
//           scales, row_sums, bias)
//   kinds: 6 per layer, one per linear: 4 int4, 8 int8, 0 absent (a melody model's cross-attention)
//   caches: 4 per layer: k, v (B', H, T, D) and for int8 their scales (B', H, T, 1); rows 0..B-1 are used
//   memory: 3 per layer: cross-attention keys, values (R, H, S, D) and mask (R, S) bool or None, for the rows
//           cross_rows names (all B rows when it is None)
//   cross_rows: (R,) int64, ascending: the rows whose text memory is not all zeros; None: every row. A row whose
//           cross-attention values are all zeros in every layer (the CFG null condition: no text token, so its
//           states are zeroed, and MusicGen's projections have no bias) gets exactly zero from the attention for any
//           finite query, and the output projection turns a zero row into its bias alone (a zero row's int8 codes
//           are zeros, so the int4 and int8 kernels give +0 before the bias). Such a row skips its cross-attention
//           norm, both linears and the attention, and gets the bias added (when there is one): the same values as
//           computing it (only a -0 in the residual stream could come out +0). The rows that do run go through the
//           same per-row kernels, so they keep their bits (tests/inference/musicgen/test_model.py).
#include <ATen/ATen.h>
#include <torch/library.h>

#include <array>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <tuple>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace {

// CONTINUO_STEP_PROFILE=1 (read once per process): seconds spent per op class inside decode_layers, wall clock and
// the calling thread's CPU time (on a shared machine the CPU time leaves out the time the thread waited for a
// core), summed over calls until decode_layers_profile(reset) reads them (inference/bench/step_profile.py prints
// them). Off, a timer point costs one predictable branch.
enum Part : int {
  NORM, QKV, CACHE_WRITE, SELF_ATTENTION, SELF_OUT, CROSS_Q, CROSS_ATTENTION, CROSS_OUT, FFN_IN, ACTIVATION, FFN_OUT,
  RESIDUAL, SETUP, TOTAL, CALLS, PARTS
};
std::array<double, PARTS> profile_wall{}, profile_cpu{};

bool profiling() {
  static const bool enabled = [] {
    const char* flag = std::getenv("CONTINUO_STEP_PROFILE");
    return flag != nullptr && std::strcmp(flag, "") != 0 && std::strcmp(flag, "0") != 0;
  }();
  return enabled;
}

double thread_cpu_s() {
  timespec now{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return static_cast<double>(now.tv_sec) + 1e-9 * static_cast<double>(now.tv_nsec);
}

double wall_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Times from its creation (or the last lap) to each lap, into the part's totals; nothing when not profiling.
struct Laps {
  bool on = profiling();
  double first_wall = on ? wall_s() : 0.0, first_cpu = on ? thread_cpu_s() : 0.0;
  double wall = first_wall, cpu = first_cpu;
  void lap(Part part) {
    if (!on) return;
    const double now_wall = wall_s(), now_cpu = thread_cpu_s();
    profile_wall[part] += now_wall - wall;
    profile_cpu[part] += now_cpu - cpu;
    wall = now_wall;
    cpu = now_cpu;
  }
  void finish() {
    if (!on) return;
    lap(RESIDUAL);
    profile_wall[TOTAL] += wall - first_wall;
    profile_cpu[TOTAL] += cpu - first_cpu;
    profile_wall[CALLS] += 1.0;
    profile_cpu[CALLS] += 1.0;
  }
};

// The totals: PARTS wall-clock values, then PARTS CPU-time values (the CALLS slot holds the count of calls).
std::vector<double> decode_layers_profile(bool reset) {
  std::vector<double> out(profile_wall.begin(), profile_wall.end());
  out.insert(out.end(), profile_cpu.begin(), profile_cpu.end());
  if (reset) {
    profile_wall.fill(0.0);
    profile_cpu.fill(0.0);
  }
  return out;
}

constexpr int64_t PARAMS = 30, LINEARS = 6, CACHES = 4, MEMORY = 3;
constexpr int64_t LINEAR_SLOTS[LINEARS] = {2, 6, 12, 16, 22, 26};  // each linear's first slot in a layer's params
constexpr int64_t NORM_SLOTS[3] = {0, 10, 20};  // each LayerNorm's weight slot (its bias is the next)

using Opt = std::optional<at::Tensor>;

at::Tensor need(const c10::List<Opt>& list, int64_t index) {
  const Opt item = list.get(index);
  TORCH_CHECK(item.has_value() && item->defined(), "decode_layers: argument ", index, " is missing");
  return *item;
}

// One linear's weights as the raw kernels take them (int4_linear.cpp / int8_linear.cpp: *_rows), checked once a
// call: the layer loop runs 144 linears a step of musicgen-small, and through the dispatcher each made its input
// view, output tensor and scratch vectors (about 4 us a call at 1 thread with the arithmetic made negligible).
struct LinearRef {
  int64_t kind = 0, N = 0, K = 0;  // kind 4: int4, 8: int8, 0: absent
  const void* weights = nullptr;   // int4 packed (N/16, K/32, 4, 64) uint8 / int8 codes (N, K)
  const void* scales = nullptr;    // int4 (N/16, K/32, 2, 16) fp16 / int8 (N,) fp32
  const int32_t* row_sums = nullptr;
  at::Tensor bias;  // (N,) fp32, or undefined
};

LinearRef linear_ref(const c10::List<Opt>& params, int64_t slot, int64_t kind) {
  LinearRef ref;
  ref.kind = kind;
  if (kind == 0) return ref;
  const at::Tensor w = need(params, slot), s = need(params, slot + 1);
  if (kind == 4) {
    std::tie(ref.N, ref.K) = int4_shape("decode_layers", w, s);  // int4_linear.cpp
  } else {
    TORCH_CHECK(kind == 8, "decode_layers: linear kind ", kind, " is not int4 (4) or int8 (8)");
    const at::Tensor row_sums = need(params, slot + 2);
    std::tie(ref.N, ref.K) = int8_shape("decode_layers", w, s, row_sums);  // int8_linear.cpp
    ref.row_sums = row_sums.data_ptr<int32_t>();
  }
  ref.weights = w.data_ptr();
  ref.scales = s.data_ptr();
  const Opt bias = params.get(slot + 3);
  if (bias.has_value() && bias->defined()) {
    ref.bias = bias->to(at::kFloat).contiguous();
    TORCH_CHECK(ref.bias.numel() == ref.N, "decode_layers: a bias must have ", ref.N, " entries");
  }
  return ref;
}

// out (M, N) = x (M, K) W^T + bias, on the kernels' raw entry points (the same code the ops run: the same bits)
void run_linear(const LinearRef& l, const float* x, int64_t M, float* out, bool vnni) {
  const float* bias = l.bias.defined() ? l.bias.data_ptr<float>() : nullptr;
  if (l.kind == 4)
    int4_linear_rows(x, M, l.K, l.N, static_cast<const uint8_t*>(l.weights), static_cast<const c10::Half*>(l.scales),
                     bias, vnni, out);
  else
    int8_linear_rows(x, M, l.K, l.N, static_cast<const int8_t*>(l.weights), static_cast<const float*>(l.scales),
                     l.row_sums, bias, out);
}

// out (B, dim) = LayerNorm(x) per row, two-pass mean and variance in double as torch computes them (in fp32 the
// sums moved bf16 roundings of the int4 step's logits past the parity test's 2e-3), in `omp simd` lanes.
void layer_norm(const float* x, const float* w, const float* b, float* out, int64_t rows, int64_t dim, double eps) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * dim;
    double mean = 0.0;
#pragma omp simd reduction(+ : mean)
    for (int64_t i = 0; i < dim; ++i) mean += xr[i];
    mean /= static_cast<double>(dim);
    double var = 0.0;
#pragma omp simd reduction(+ : var)
    for (int64_t i = 0; i < dim; ++i) {
      const double centred = xr[i] - mean;
      var += centred * centred;
    }
    const float rstd = static_cast<float>(1.0 / std::sqrt(var / static_cast<double>(dim) + eps));
    const float fmean = static_cast<float>(mean);
    float* o = out + r * dim;
#pragma omp simd
    for (int64_t i = 0; i < dim; ++i) o[i] = (xr[i] - fmean) * rstd * w[i] + b[i];
  }
}

// x = GELU(x) = x * Phi(x), exact (erf) form, in place, vectorised: erfc(|x| / sqrt 2) by Abramowitz & Stegun 7.1.26
// (absolute error below 1.5e-7) with exp_nonpositive (decode_attention.cpp, earlier in the same translation unit:
// kernels.py builds the sources as one). torch's gelu_ on (2, 4096) cost 23 us a call here, 0.55 ms a step.
void gelu_inplace(float* x, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    const float z = std::fabs(v) * 0.70710678118654752f;
    const float t = 1.f / (1.f + 0.3275911f * z);
    const float poly = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f +
                                                                                    t * 1.061405429f))));
    const float tail = poly * exp_nonpositive(-z * z);  // erfc(|v| / sqrt 2)
    x[i] = v >= 0.f ? v - 0.5f * v * tail : 0.5f * v * tail;
  }
}

// Ask for bytes at p into L2 (prefetcht1), a line at a time. The layer loop asks for the cross-attention's and the
// feed-forward's LayerNorm weights (8 KB each, evicted by every step's 255 MB of weights) one linear before they are
// read. Measured in one process, 25-step blocks alternated over 1000 steps (2026-12-07, musicgen-small int4, 1
// thread, load 1.2-1.4): norms 0.181 -> 0.137 ms a step, the call 14.61 -> 14.56 ms. Also asking for the text
// keys and values (98 KB for one row) before the self-attention's output projection: the cross-attention 0.347 ->
// 0.166 ms, but that linear 0.776 -> 1.102 ms (the burst held its weight stream), the call 15.31 -> 15.36: left out.
inline void prefetch_l2(const void* p, int64_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (int64_t offset = 0; offset < bytes; offset += 64) __builtin_prefetch(c + offset, 0, 2);
}

void relu_inplace(float* x, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) x[i] = x[i] > 0.f ? x[i] : 0.f;
}

void add_into(float* x, const float* y, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

// What a step needs that stays the same from step to step: every linear's, cache's and text memory's checked raw
// pointers, the LayerNorms' weights, the rows that run the cross-attention, and the argument lists that hold all
// of it alive. decode_layers builds one per call; decode_plan keeps one under a number for decode_planned, so a
// step passes no list at all. Passing the lists cost a step about 0.2 ms (888 list items turned into IValues at
// the call) and checking them 0.1 ms (issue 24; 2026-12-07, musicgen-small int4, 2 threads).
struct Plan {
  c10::List<Opt> params, caches, memory;  // hold the tensors the pointers below point into
  std::vector<int64_t> kinds;
  int64_t layers = 0, rows = 0, dim = 0, ffn = 0, n_head = 0, head_dim = 0, R = 0;
  double eps = 1e-5;
  bool gelu = true, vnni = true, some_silent = false;
  std::vector<int64_t> cross_rows, silent_rows;  // cross_rows: those that run the cross-attention (R of them)
  std::vector<LinearRef> refs;                   // LINEARS per layer
  std::vector<const float*> norms;               // 6 per layer: attention, cross-attention, feed-forward (w, b)
  std::vector<CacheRef> cache_refs;
  std::vector<AttentionRef> self_refs;           // all but q, out, n and the mask, which a step sets
  std::vector<AttentionRef> cross_refs;          // all but q and out, which a step sets
  std::vector<at::Tensor> cross_masks;
};

const float* norm_weight(const c10::List<Opt>& params, int64_t slot, int64_t dim) {
  const Opt item = params.get(slot);
  if (!item.has_value() || !item->defined()) return nullptr;
  TORCH_CHECK(item->scalar_type() == at::kFloat && item->is_contiguous() && item->numel() == dim,
              "decode_layers: a LayerNorm's weights must be (", dim, ",) float32");
  return item->data_ptr<float>();
}

std::shared_ptr<Plan> make_plan(const c10::List<Opt>& params, at::IntArrayRef kinds, const c10::List<Opt>& caches,
                                const c10::List<Opt>& memory, const Opt& cross_rows_in, int64_t B, int64_t dim,
                                double scale, int64_t n_head, bool gelu, double eps, bool vnni) {
  auto plan = std::make_shared<Plan>();
  Plan& P = *plan;
  const int64_t layers = static_cast<int64_t>(kinds.size()) / LINEARS;
  TORCH_CHECK(static_cast<int64_t>(params.size()) == layers * PARAMS &&
                  static_cast<int64_t>(caches.size()) == layers * CACHES &&
                  static_cast<int64_t>(memory.size()) == layers * MEMORY,
              "decode_layers: ", layers, " layers need ", PARAMS, " params, ", CACHES, " caches and ", MEMORY,
              " memory slots each");
  TORCH_CHECK(n_head > 0 && dim % n_head == 0, "decode_layers: ", n_head, " heads do not divide a width of ", dim);
  P.params = params;
  P.caches = caches;
  P.memory = memory;
  P.kinds.assign(kinds.begin(), kinds.end());
  P.layers = layers;
  P.rows = B;
  P.dim = dim;
  P.n_head = n_head;
  P.head_dim = dim / n_head;
  P.eps = eps;
  P.gelu = gelu;
  P.vnni = vnni;
  const int64_t head_dim = P.head_dim;
  // the rows that run the cross-attention (cross_rows, or every row) and those that only get its bias
  P.some_silent = cross_rows_in.has_value() && cross_rows_in->defined();
  if (P.some_silent) {
    const at::Tensor rows = cross_rows_in->to(at::kLong).contiguous();
    const int64_t* r = rows.data_ptr<int64_t>();
    P.cross_rows.assign(r, r + rows.numel());
    for (size_t i = 0; i < P.cross_rows.size(); ++i)
      TORCH_CHECK(P.cross_rows[i] >= 0 && P.cross_rows[i] < B && (i == 0 || P.cross_rows[i] > P.cross_rows[i - 1]),
                  "decode_layers: cross_rows must be ascending rows of the batch of ", B);
    for (int64_t b = 0, i = 0; b < B; ++b) {
      if (i < static_cast<int64_t>(P.cross_rows.size()) && P.cross_rows[i] == b) ++i;
      else P.silent_rows.push_back(b);
    }
  }
  const int64_t R = P.R = P.some_silent ? static_cast<int64_t>(P.cross_rows.size()) : B;
  // every layer's linears and norms
  P.refs.resize(layers * LINEARS);
  P.norms.resize(layers * 6);
  for (int64_t layer = 0; layer < layers; ++layer) {
    for (int64_t i = 0; i < LINEARS; ++i)
      P.refs[layer * LINEARS + i] = linear_ref(params, layer * PARAMS + LINEAR_SLOTS[i], kinds[layer * LINEARS + i]);
    for (int64_t i = 0; i < 3; ++i) {
      const int64_t slot = layer * PARAMS + NORM_SLOTS[i];
      P.norms[layer * 6 + 2 * i] = norm_weight(params, slot, dim);
      P.norms[layer * 6 + 2 * i + 1] = norm_weight(params, slot + 1, dim);
      TORCH_CHECK((i == 1 && kinds[layer * LINEARS + 2] == 0) ||
                      (P.norms[layer * 6 + 2 * i] != nullptr && P.norms[layer * 6 + 2 * i + 1] != nullptr),
                  "decode_layers: layer ", layer, "'s LayerNorm ", i, " is missing");
    }
  }
  const int64_t ffn = P.ffn = layers > 0 ? P.refs[4].N : 0;
  for (int64_t layer = 0; layer < layers; ++layer) {
    const LinearRef* l = P.refs.data() + layer * LINEARS;
    TORCH_CHECK(l[0].N == 3 * dim && l[0].K == dim && l[1].N == dim && l[1].K == dim && l[4].N == ffn &&
                    l[4].K == dim && l[5].N == dim && l[5].K == ffn &&
                    (l[2].kind == 0 || (l[2].N == dim && l[2].K == dim && l[3].N == dim && l[3].K == dim)),
                "decode_layers: layer ", layer, "'s linears do not fit a width of ", dim, " and ", ffn);
  }
  // every layer's cache (rows 0..B-1 are the step's) and text memory
  P.cache_refs.resize(layers);
  P.self_refs.resize(layers);
  P.cross_refs.resize(layers);
  P.cross_masks.resize(layers);
  for (int64_t layer = 0; layer < layers; ++layer) {
    const int64_t c = layer * CACHES;
    const at::Tensor k_cache = need(caches, c), v_cache = need(caches, c + 1);
    const Opt k_scale = caches.get(c + 2), v_scale = caches.get(c + 3);
    TORCH_CHECK(k_cache.dim() == 4 && k_cache.size(0) >= B && k_cache.size(1) == n_head && k_cache.size(3) == head_dim,
                "decode_layers: layer ", layer, "'s cache ", k_cache.sizes(), " does not hold ", B, " rows of ",
                n_head, " heads of ", head_dim);
    const CacheRef& cr = P.cache_refs[layer] = cache_ref(k_cache, v_cache, k_scale, v_scale);  // cache_write.cpp
    AttentionRef& a = P.self_refs[layer];  // decode_attention.cpp
    a.k = cr.k;
    a.v = cr.v;
    a.k_b = a.v_b = cr.stride_b;
    a.k_h = a.v_h = cr.stride_h;
    a.k_t = a.v_t = cr.stride_t;
    a.dtype = cr.dtype;
    a.positions = cr.length;
    if (cr.k_scale != nullptr) {  // the attention reads the scales as (B, H, T) rows
      TORCH_CHECK(cr.scale_t == 1 && cr.scale_h == cr.length && cr.scale_b == n_head * cr.length,
                  "decode_layers: an int8 cache's scales must be contiguous (B, H, T, 1)");
      a.k_scales = cr.k_scale;
      a.v_scales = cr.v_scale;
      a.scale_heads = n_head;
    }
    a.batch = B;
    a.heads = n_head;
    a.dim = head_dim;
    a.scale = static_cast<float>(scale);
    if (kinds[layer * LINEARS + 2] == 0 || R == 0) continue;
    const int64_t m = layer * MEMORY;
    const at::Tensor keys = need(memory, m), values = need(memory, m + 1);
    TORCH_CHECK(keys.scalar_type() == values.scalar_type() && keys.dim() == 4 && keys.sizes() == values.sizes() &&
                    keys.size(0) == R && keys.size(1) == n_head && keys.size(3) == head_dim && keys.size(2) >= 1 &&
                    keys.stride(3) == 1 && values.stride(3) == 1 &&
                    (keys.scalar_type() == at::kFloat || keys.scalar_type() == at::kBFloat16),
                "decode_layers: layer ", layer, "'s text keys and values ", keys.sizes(), " must be (", R, ", ",
                n_head, ", S, ", head_dim, ") fp32 or bf16, the rows cross_rows names");
    AttentionRef& t = P.cross_refs[layer];  // decode_attention.cpp
    t.set_keys(keys, values);
    const Opt text_mask = memory.get(m + 2);
    if (text_mask.has_value() && text_mask->defined()) {
      P.cross_masks[layer] = text_mask->to(at::kBool).contiguous();
      TORCH_CHECK(P.cross_masks[layer].dim() == 2 && P.cross_masks[layer].size(0) == R &&
                      P.cross_masks[layer].size(1) == keys.size(2),
                  "decode_layers: layer ", layer, "'s text mask must be (", R, ", ", keys.size(2), ")");
      t.mask = P.cross_masks[layer].data_ptr<bool>();
    }
    t.batch = R;
    t.heads = n_head;
    t.dim = head_dim;
    t.n = keys.size(2);
    t.scale = static_cast<float>(scale);
  }
  return plan;
}

// One step of the plan: x (B, 1, dim) at positions (B,), attending to kv_end cached positions (mask (B, kv_end) or
// None: all of them).
at::Tensor run_plan(const Plan& P, const at::Tensor& x_in, const at::Tensor& positions, int64_t kv_end,
                    const Opt& mask) {
  Laps laps;
  TORCH_CHECK(x_in.scalar_type() == at::kFloat && x_in.dim() == 3 && x_in.size(1) == 1 && x_in.size(0) == P.rows &&
                  x_in.size(2) == P.dim,
              "decode_layers: x must be (", P.rows, ", 1, ", P.dim, ") float32, the rows the step was set up for");
  const int64_t B = P.rows, dim = P.dim, ffn = P.ffn, n_head = P.n_head, head_dim = P.head_dim, R = P.R;
  const int64_t layers = P.layers;
  const bool some_silent = P.some_silent, vnni = P.vnni;
  const double eps = P.eps;
  const std::vector<int64_t>& cross_rows = P.cross_rows;
  const at::Tensor where = positions.to(at::kLong).contiguous();
  TORCH_CHECK(where.numel() == B, "decode_layers: one position per row");
  const int64_t* pos = where.data_ptr<int64_t>();
  at::Tensor self_mask;
  if (mask.has_value() && mask->defined()) {
    self_mask = mask->to(at::kBool).contiguous();
    TORCH_CHECK(self_mask.dim() == 2 && self_mask.size(0) == B && self_mask.size(1) == kv_end,
                "decode_layers: mask must be (B, kv_end)");
  }
  for (const CacheRef& cr : P.cache_refs) {
    TORCH_CHECK(kv_end >= 1 && kv_end <= cr.length, "decode_layers: kv_end ", kv_end, " outside the cache of ",
                cr.length);
    for (int64_t b = 0; b < B; ++b)
      TORCH_CHECK(pos[b] >= 0 && pos[b] < cr.length, "decode_layers: position ", pos[b], " outside the cache of ",
                  cr.length);
  }
  at::Tensor x = x_in.contiguous().clone();
  at::Tensor h = at::empty_like(x);
  float* xp = x.data_ptr<float>();
  float* hp = h.data_ptr<float>();
  at::Tensor qkv = at::empty({B, 1, 3 * dim}, x.options()), hidden = at::empty({B, 1, ffn}, x.options());
  at::Tensor out = at::empty({B, dim}, x.options()), q_cross = at::empty({R, 1, dim}, x.options());
  float* outp = out.data_ptr<float>();
  at::Tensor attended = at::empty({B, dim}, x.options());  // the attention's output, (B, H * D)
  float* attp = attended.data_ptr<float>();
  float* qkvp = qkv.data_ptr<float>();
  // the cross-attention's rows, gathered (cross_rows), or h itself
  at::Tensor h_cross = some_silent ? at::empty({R, 1, dim}, x.options()) : h;
  float* hcp = h_cross.data_ptr<float>();
  laps.lap(SETUP);  // positions and the mask checked, the buffers made
  auto norm = [&](const float* const* weight_bias) {
    laps.lap(RESIDUAL);  // what ran since the last lap: the residual add
    layer_norm(xp, weight_bias[0], weight_bias[1], hp, B, dim, eps);
    laps.lap(NORM);
  };
  auto residual = [&](const LinearRef& l, const float* input, Part part) {
    run_linear(l, input, B, outp, vnni);
    laps.lap(part);
    add_into(xp, outp, B * dim);
  };
  for (int64_t layer = 0; layer < layers; ++layer) {
    const int64_t* kind = P.kinds.data() + layer * LINEARS;
    const LinearRef* l = P.refs.data() + layer * LINEARS;
    const float* const* norms = P.norms.data() + layer * 6;
    // self-attention: qkv, the new key and value into the cache at each row's position, attention over the cache
    norm(norms);
    run_linear(l[0], hp, B, qkvp, vnni);  // (B, 1, 3 dim): q, k, v, each (H, D) per row
    laps.lap(QKV);
    const int64_t qkv_strides[2] = {3 * dim, head_dim};  // row, head
    cache_write_rows(P.cache_refs[layer], qkvp + dim, qkv_strides, qkvp + 2 * dim, qkv_strides, B, n_head, head_dim,
                     pos);
    laps.lap(CACHE_WRITE);
    AttentionRef a = P.self_refs[layer];
    a.n = kv_end;
    a.mask = self_mask.defined() ? self_mask.data_ptr<bool>() : nullptr;
    a.q = qkvp;
    a.q_b = 3 * dim;
    a.q_h = head_dim;
    a.out = attp;
    attention_rows(a);
    laps.lap(SELF_ATTENTION);
    if (kind[2] != 0) {  // the next norm's weights, cold every step, asked for while the linear streams
      prefetch_l2(norms[2], dim * 4);
      prefetch_l2(norms[3], dim * 4);
    }
    residual(l[1], attp, SELF_OUT);
    // cross-attention on the text (absent in melody models), for cross_rows (every row when it is None)
    if (kind[2] != 0) {
      const float* q_in = hp;
      if (!some_silent) {
        norm(norms + 2);
      } else {
        laps.lap(RESIDUAL);
        for (int64_t i = 0; i < R; ++i)
          layer_norm(xp + cross_rows[i] * dim, norms[2], norms[3], hcp + i * dim, 1, dim, eps);
        laps.lap(NORM);
        q_in = hcp;
      }
      if (R > 0) {
        run_linear(l[2], q_in, R, q_cross.data_ptr<float>(), vnni);
        laps.lap(CROSS_Q);
        AttentionRef text = P.cross_refs[layer];
        text.q = q_cross.data_ptr<float>();
        text.q_b = dim;
        text.q_h = head_dim;
        text.out = attp;
        attention_rows(text);
        laps.lap(CROSS_ATTENTION);
        prefetch_l2(norms[4], dim * 4);  // as above, the feed-forward's norm
        prefetch_l2(norms[5], dim * 4);
        run_linear(l[3], attp, R, outp, vnni);
        laps.lap(CROSS_OUT);
        if (!some_silent) {
          add_into(xp, outp, B * dim);
        } else {
          for (int64_t i = 0; i < R; ++i) add_into(xp + cross_rows[i] * dim, outp + i * dim, dim);
        }
      }
      if (some_silent && l[3].bias.defined()) {  // a silent row's output projection: its bias alone
        for (const int64_t row : P.silent_rows) add_into(xp + row * dim, l[3].bias.data_ptr<float>(), dim);
      }
    }
    // feed-forward
    norm(norms + 4);
    run_linear(l[4], hp, B, hidden.data_ptr<float>(), vnni);
    laps.lap(FFN_IN);
    (P.gelu ? gelu_inplace : relu_inplace)(hidden.data_ptr<float>(), hidden.numel());
    laps.lap(ACTIVATION);
    residual(l[5], hidden.data_ptr<float>(), FFN_OUT);
  }
  laps.finish();
  return x;
}

at::Tensor decode_layers(const at::Tensor& x_in, const c10::List<Opt>& params, at::IntArrayRef kinds,
                         const c10::List<Opt>& caches, const c10::List<Opt>& memory, const at::Tensor& positions,
                         int64_t kv_end, const Opt& mask, double scale, int64_t n_head, bool gelu, double eps,
                         bool vnni, const Opt& cross_rows) {
  TORCH_CHECK(x_in.scalar_type() == at::kFloat && x_in.dim() == 3 && x_in.size(1) == 1,
              "decode_layers: x must be (B, 1, dim) float32");
  const auto plan = make_plan(params, kinds, caches, memory, cross_rows, x_in.size(0), x_in.size(2), scale, n_head,
                              gelu, eps, vnni);
  return run_plan(*plan, x_in, positions, kv_end, mask);
}

// Plans kept under a number (decode_plan -> decode_planned ... decode_plan_free): MusicGenDecoder.fast_plan makes
// one when its argument lists are built and frees it when they are let go.
std::mutex plans_lock;
std::unordered_map<int64_t, std::shared_ptr<const Plan>> plans;
int64_t next_plan = 1;

int64_t decode_plan(const c10::List<Opt>& params, at::IntArrayRef kinds, const c10::List<Opt>& caches,
                    const c10::List<Opt>& memory, const Opt& cross_rows, int64_t rows, int64_t dim, double scale,
                    int64_t n_head, bool gelu, double eps, bool vnni) {
  auto plan = make_plan(params, kinds, caches, memory, cross_rows, rows, dim, scale, n_head, gelu, eps, vnni);
  std::lock_guard<std::mutex> guard(plans_lock);
  plans[next_plan] = std::move(plan);
  return next_plan++;
}

void decode_plan_free(int64_t id) {
  std::lock_guard<std::mutex> guard(plans_lock);
  plans.erase(id);
}

at::Tensor decode_planned(const at::Tensor& x, int64_t id, const at::Tensor& positions, int64_t kv_end,
                          const Opt& mask) {
  std::shared_ptr<const Plan> plan;
  {
    std::lock_guard<std::mutex> guard(plans_lock);
    const auto found = plans.find(id);
    TORCH_CHECK(found != plans.end(), "decode_planned: no plan ", id, " (freed, or made in another process)");
    plan = found->second;
  }
  return run_plan(*plan, x, positions, kv_end, mask);
}

// x (B, 1, dim) = sum over codebooks k of tables[k][tokens[b, k]], then + positions_table[positions[b]]: the decode
// step's input (inference/musicgen/model.py:MusicGenDecoder.embed_rows), with the additions in the order the Python
// expression makes them (sum() from 0, codebook by codebook, then the position), so the same bits. tokens (B, K) or
// (B, K, 1) int64. As a dozen torch ops (four lookups, the sum, the position's gather) it cost about 0.2 ms a step.
at::Tensor embed_rows(const at::Tensor& tokens_in, const std::vector<at::Tensor>& tables, const at::Tensor& table,
                      const at::Tensor& positions_in) {
  const at::Tensor tokens = tokens_in.to(at::kLong).reshape({tokens_in.size(0), -1}).contiguous();
  const at::Tensor positions = positions_in.to(at::kLong).contiguous();
  const int64_t B = tokens.size(0), K = tokens.size(1);
  TORCH_CHECK(K == static_cast<int64_t>(tables.size()) && K >= 1, "embed_rows: ", K, " codebooks of tokens, ",
              tables.size(), " tables");
  TORCH_CHECK(positions.numel() == B, "embed_rows: one position per row");
  TORCH_CHECK(table.scalar_type() == at::kFloat && table.dim() == 2 && table.is_contiguous(),
              "embed_rows: the positions' table must be (P, dim) float32");
  const int64_t dim = table.size(1);
  for (const at::Tensor& t : tables)
    TORCH_CHECK(t.scalar_type() == at::kFloat && t.dim() == 2 && t.size(1) == dim && t.is_contiguous(),
                "embed_rows: every table must be (V, ", dim, ") float32");
  at::Tensor x = at::empty({B, 1, dim}, table.options());
  float* xp = x.data_ptr<float>();
  const int64_t* tok = tokens.data_ptr<int64_t>();
  const int64_t* pos = positions.data_ptr<int64_t>();
  for (int64_t b = 0; b < B; ++b) {
    float* row = xp + b * dim;
    TORCH_CHECK(pos[b] >= 0 && pos[b] < table.size(0), "embed_rows: position ", pos[b], " outside the table of ",
                table.size(0));
    for (int64_t k = 0; k < K; ++k) {
      const int64_t token = tok[b * K + k];
      TORCH_CHECK(token >= 0 && token < tables[k].size(0), "embed_rows: token ", token, " of codebook ", k,
                  " outside its table of ", tables[k].size(0));
      const float* e = tables[k].data_ptr<float>() + token * dim;
      if (k == 0) {
#pragma omp simd
        for (int64_t d = 0; d < dim; ++d) row[d] = 0.f + e[d];  // sum() starts from 0
      } else {
        add_into(row, e, dim);
      }
    }
    add_into(row, table.data_ptr<float>() + pos[b] * dim, dim);
  }
  return x;
}

}  // namespace

TORCH_LIBRARY_IMPL(continuo_cpu, CPU, m) {
  m.impl("decode_layers", &decode_layers);
  m.impl("decode_planned", &decode_planned);
  m.impl("embed_rows", &embed_rows);
}
TORCH_LIBRARY_IMPL(continuo_cpu, CatchAll, m) {
  m.impl("decode_layers_profile", &decode_layers_profile);
  m.impl("decode_plan", &decode_plan);
  m.impl("decode_plan_free", &decode_plan_free);
}
