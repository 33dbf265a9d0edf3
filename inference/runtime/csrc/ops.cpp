// The op library of our CPU kernels: every schema of torch.ops.continuo_cpu, in one place. Each kernel lives in
// its own file (decode_attention.cpp, cache_write.cpp, int8_linear.cpp,
// int4_linear.cpp, decode_layers.cpp, sampling.cpp) and registers its implementation there
// (TORCH_LIBRARY_IMPL); inference/runtime/kernels.py builds them together and says which ops must be there.
#include <torch/library.h>

TORCH_LIBRARY(continuo_cpu, m) {
  // One decode step's attention over the KV cache, read in place in its own dtype (decode_attention.cpp).
  m.def("decode_attention(Tensor q, Tensor k, Tensor v, int n, Tensor? k_scales, Tensor? v_scales, "
        "float? mu, Tensor? mask, float scale) -> Tensor");
  // One new token per row into the KV cache, each row at its own position (cache_write.cpp).
  m.def("cache_write(Tensor(a!) k_cache, Tensor(b!) v_cache, Tensor k, Tensor v, Tensor positions, "
        "Tensor(c!)? k_scale, Tensor(d!)? v_scale) -> ()");
  // int8 weights (a scale per output channel) against rows of fp32 activations (int8_linear.cpp).
  m.def("int8_linear(Tensor x, Tensor w, Tensor scales, Tensor row_sums, Tensor? bias) -> Tensor");
  m.def("int8_linear_uses_vnni() -> bool");
  // 4-bit weights in groups of 32 with an fp16 scale and minimum each, 16 output rows to a block (int4_linear.cpp).
  // quantize_x: int8 activations on VNNI (the fast path); false, or a CPU without VNNI: the portable fp32 loop.
  m.def("int4_linear(Tensor x, Tensor packed, Tensor scales, Tensor? bias, bool quantize_x) -> Tensor");
  // One decode step through every layer (the CPU fast path: int4 / int8 linears, fused attention; decode_layers.cpp).
  m.def("decode_layers(Tensor x, Tensor?[] params, int[] kinds, Tensor?[] caches, Tensor?[] memory, Tensor positions, "
        "int kv_end, Tensor? mask, float scale, int n_head, bool gelu, float eps, bool vnni, Tensor? cross_rows) "
        "-> Tensor");
  // The same step on a plan kept under a number: the lists checked and held once (decode_layers.cpp).
  m.def("decode_plan(Tensor?[] params, int[] kinds, Tensor?[] caches, Tensor?[] memory, Tensor? cross_rows, int rows, "
        "int dim, float scale, int n_head, bool gelu, float eps, bool vnni) -> int");
  m.def("decode_planned(Tensor x, int plan, Tensor positions, int kv_end, Tensor? mask) -> Tensor");
  m.def("decode_plan_free(int plan) -> ()");
  // The decode step's input: the codebooks' embeddings summed, plus the position's (decode_layers.cpp).
  m.def("embed_rows(Tensor tokens, Tensor[] tables, Tensor table, Tensor positions) -> Tensor");
  // CONTINUO_STEP_PROFILE=1: seconds per op class inside decode_layers since the last reset (decode_layers.cpp).
  m.def("decode_layers_profile(bool reset) -> float[]");
  // One step's sampling: CFG combine, temperature, top-k, softmax, / noise, argmax -> tokens (B, K) (sampling.cpp).
  m.def("guided_sample(Tensor logits, float? guidance_scale, float temperature, int top_k, Tensor noise) -> Tensor");
  // The probabilities guided_sample draws from (B, K, V), for the tests; the vector width it was built for.
  m.def("guided_probs(Tensor logits, float? guidance_scale, float temperature, int top_k) -> Tensor");
  m.def("guided_sample_capability() -> str");
}
