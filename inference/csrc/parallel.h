// Work split over torch's intra-op threads, from any calling thread.
//
// at::parallel_for, inlined into an extension, opens `#pragma omp parallel` without a thread count, and
// libgomp gives a thread that OpenMP did not start (the daemon's worker thread) a team of one: our
// kernels ran single-threaded there, half speed. Asking for at::get_num_threads() explicitly fixes that.
#pragma once

#include <ATen/Parallel.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>

namespace continuo {

// f(begin, end) over [0, count) in contiguous chunks of at least `grain`, one chunk per thread.
template <typename F>
void parallel_chunks(int64_t count, int64_t grain, const F& f) {
  const int64_t chunks = std::max<int64_t>(1, (count + grain - 1) / grain);
  const int64_t threads = std::min<int64_t>(at::get_num_threads(), chunks);
  if (threads <= 1 || omp_in_parallel()) {
    f(0, count);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    const int64_t team = omp_get_num_threads(), id = omp_get_thread_num();
    const int64_t per = (count + team - 1) / team;
    const int64_t begin = id * per, end = std::min(count, begin + per);
    if (begin < end) f(begin, end);
  }
}

}  // namespace continuo
