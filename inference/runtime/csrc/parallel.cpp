// How our kernels split a call over ATen's intra-op threads (OpenMP). kernels.py builds the sources as one unit,
// this file right after ops.cpp, so every kernel after it can use these.
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cstdint>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace continuo {

// f(begin, end) over [0, n) on every intra-op thread, each claiming the next run of items as it finishes one:
// runs shrink as the work runs out (about half the rest over the threads, in whole multiples of `least`), so a
// thread that started late or runs slower takes fewer (OpenMP's guided schedule, on ATen's OpenMP threads;
// at::parallel_for hands out equal fixed halves, and the thread that comes last holds everyone at the join).
// Inline where ATen would run inline: one thread, inside a parallel region, or n <= least. Every run starts at a
// multiple of `least` whatever the threads do, so a kernel that blocks its items by `least` (int8_linear's 16
// weight rows) computes each item by the same code path, and the bits do not depend on the split.
template <typename F>
inline void parallel_claims(int64_t n, int64_t least, const F& f) {
#ifdef _OPENMP
  const int threads = at::get_num_threads();
  if (n > least && threads > 1 && !at::in_parallel_region()) {
    std::atomic<int64_t> next{0};
#pragma omp parallel num_threads(threads)
    {
      int64_t begin = next.load(std::memory_order_relaxed);
      while (begin < n) {
        const int64_t size = least * std::max<int64_t>(1, (n - begin) / (2 * threads * least));
        if (next.compare_exchange_weak(begin, begin + size, std::memory_order_relaxed)) {
          f(begin, std::min<int64_t>(n, begin + size));
          begin = next.load(std::memory_order_relaxed);
        }
      }
    }
    return;
  }
#endif
  f(0, n);
}

}  // namespace continuo
