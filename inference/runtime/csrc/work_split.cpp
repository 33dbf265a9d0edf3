// How our kernels split a loop over threads (continuo::split_for, in place of at::parallel_for): the calling thread
// and helper threads claim chunks of the range from one counter, and the caller waits only for the chunks a helper
// has claimed, never for a helper to wake up or to be given a core.
//
// Why: with OpenMP (at::parallel_for) every call is a parallel region whose end waits for every thread of the team.
// A decode step makes about 200 of them (each linear, each attention), and on a machine whose cores are busy with
// other work (a DAW, other processes) the second thread often waits for a core: `continuo bench step --quick
// --threads 2` (2026-12-07, 2 cores AMD EPYC, load 3.3-3.4 from other work, GOMP_SPINCOUNT=10000) measured about
// 400 us a region and 94-117 ms a musicgen-small int4 step, where the 1-thread step took 21-22 ms. Here a late
// helper only means the caller does more of the chunks itself: a step is never slower than on one thread by more
// than the claims. Each chunk is computed as it would be alone, so the bits do not depend on who computes it.
//
// The helpers (torch's intra-op thread count - 1, at::get_num_threads) are started on first use and never joined
// (the pool lives until the process ends); they spin briefly for the next job, then sleep on a condition variable.
// One caller at a time: a second thread calling a kernel while one runs computes its loop alone. After fork() the
// child starts helpers of its own (until then its caller computes every chunk: none is waited for).
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <new>
#include <thread>
#include <vector>

#include <pthread.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CONTINUO_PAUSE() _mm_pause()
#else
#define CONTINUO_PAUSE() std::this_thread::yield()
#endif

namespace continuo {

class WorkSplit {
 public:
  using Body = void (*)(const void* context, int64_t begin, int64_t end);

  static WorkSplit& get() {
    static WorkSplit* pool = [] {
      WorkSplit* made = new WorkSplit();  // never destroyed: helpers may still wait on it at exit
      pthread_atfork(nullptr, nullptr, [] { get().after_fork(); });
      return made;
    }();
    return *pool;
  }

  // body(context, b, e) over [begin, end) in chunks of at least grain; returns when every chunk is done.
  void run(int64_t begin, int64_t end, int64_t grain, Body body, const void* context) {
    const int64_t length = end - begin;
    if (length <= 0) return;
    const int threads = at::get_num_threads();
    std::unique_lock<std::mutex> caller(busy_, std::try_to_lock);
    if (threads <= 1 || length <= grain || !caller.owns_lock() || at::in_parallel_region()) {
      body(context, begin, end);
      return;
    }
    ensure_helpers(threads - 1);
    // Chunks: whole grains, at most CHUNKS_PER_THREAD per thread (each claim is an atomic on a shared line).
    const int64_t max_chunks = static_cast<int64_t>(threads) * CHUNKS_PER_THREAD;
    int64_t chunk = grain > 0 ? grain : 1;
    if ((length + chunk - 1) / chunk > max_chunks) {
      const int64_t even = (length + max_chunks - 1) / max_chunks;
      chunk = (even + chunk - 1) / chunk * chunk;  // whole grains
    }
    const int64_t chunks = (length + chunk - 1) / chunk;
    body_ = body;
    context_ = context;
    begin_ = begin;
    end_ = end;
    chunk_ = chunk;
    active_ = threads - 1;
    done_.store(0, std::memory_order_relaxed);
    const uint64_t generation = (word_.load(std::memory_order_relaxed) >> 32) + 1;
    word_.store(generation << 32 | static_cast<uint64_t>(chunks) << 16, std::memory_order_seq_cst);
    if (sleepers_.load(std::memory_order_seq_cst) > 0) {
      std::lock_guard<std::mutex> lock(sleep_);
      wake_.notify_all();
    }
    work(generation);
    for (int spins = 0; done_.load(std::memory_order_acquire) < chunks; ++spins) {
      if (spins < 256) CONTINUO_PAUSE();
      else std::this_thread::yield();  // a helper holding a chunk lost its core: let it have ours
    }
  }

 private:
  static constexpr int64_t CHUNKS_PER_THREAD = 8;
  static constexpr int HELPER_SPINS = 200;  // polls (a pause each, tens of ns) before a helper sleeps

  // word_: generation (32 bits) | chunks (16) | next chunk to claim (16). A claim is a compare-and-swap on the
  // whole word, so a helper that read an older job can never take a chunk of a newer one, and a job's fields are
  // not rewritten while any of its chunks is claimed and unfinished.
  std::atomic<uint64_t> word_{0};
  std::atomic<int64_t> done_{0};
  Body body_ = nullptr;
  const void* context_ = nullptr;
  int64_t begin_ = 0, end_ = 0, chunk_ = 1;
  int active_ = 0;  // helpers taking part in the current job
  int started_ = 0;
  std::mutex busy_, sleep_;
  std::condition_variable wake_;
  std::atomic<int> sleepers_{0};

  void work(uint64_t generation) {
    for (;;) {
      uint64_t word = word_.load(std::memory_order_acquire);
      const uint64_t next = word & 0xFFFF, chunks = (word >> 16) & 0xFFFF;
      if ((word >> 32) != generation || next >= chunks) return;
      if (!word_.compare_exchange_weak(word, word + 1, std::memory_order_acq_rel)) continue;
      const int64_t b = begin_ + static_cast<int64_t>(next) * chunk_;
      body_(context_, b, std::min(end_, b + chunk_));
      done_.fetch_add(1, std::memory_order_release);
    }
  }

  void helper(int index) {
    uint64_t seen = word_.load(std::memory_order_acquire) >> 32;
    for (;;) {
      uint64_t generation = seen;
      for (int spins = 0; spins < HELPER_SPINS && generation == seen; ++spins) {
        CONTINUO_PAUSE();
        generation = word_.load(std::memory_order_acquire) >> 32;
      }
      if (generation == seen) {
        std::unique_lock<std::mutex> lock(sleep_);
        sleepers_.fetch_add(1, std::memory_order_seq_cst);
        wake_.wait(lock, [&] { return (word_.load(std::memory_order_seq_cst) >> 32) != seen; });
        sleepers_.fetch_sub(1, std::memory_order_seq_cst);
        generation = word_.load(std::memory_order_acquire) >> 32;
      }
      seen = generation;
      if (index < active_) work(generation);
    }
  }

  void ensure_helpers(int wanted) {
    for (; started_ < wanted; ++started_) std::thread([this, index = started_] { helper(index); }).detach();
  }

  void after_fork() {  // the child has none of the parent's helpers, and its locks may be held by threads gone
    new (&busy_) std::mutex();
    new (&sleep_) std::mutex();
    new (&wake_) std::condition_variable();
    sleepers_.store(0);
    started_ = 0;
  }
};

// f(b, e) over [begin, end) split over the caller and the helpers in chunks of at least grain.
template <typename F>
inline void split_for(int64_t begin, int64_t end, int64_t grain, const F& f) {
  WorkSplit::get().run(
      begin, end, grain, [](const void* context, int64_t b, int64_t e) { (*static_cast<const F*>(context))(b, e); },
      &f);
}

}  // namespace continuo
