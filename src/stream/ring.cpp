// Ring implementation. The fast path (a slot id is available) is one lock-free pop; the mutexes
// and condition variables are touched only by a thread that is about to sleep and by a thread
// that sees a sleeper registered (waiter count > 0), so an unloaded ring takes no lock.
//
// Lost-wakeup argument: a sleeper increments its waiter count under the mutex, issues a full
// fence and retries the pop before waiting (still holding the mutex); a waker pushes, issues a
// full fence and reads the waiter count. With both fences sequentially consistent, either the
// waker sees the count (and then locks the mutex, which it can only get once the sleeper is
// inside wait(), so the notify reaches it) or the sleeper's retry sees the pushed id.
#include "stream/ring.hpp"

#include <cstdio>
#include <new>

#include <boost/lockfree/queue.hpp>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/error.hpp"

namespace synth {

namespace {

// Spin budget before sleeping: a handful of retries covers a producer/consumer that is a few
// microseconds behind without burning a core on the 2-core CI machine.
constexpr int kSpinPops = 32;
constexpr int kYieldPops = 4;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// One direction of waiting (producers on free slots, or consumers on ready slots).
struct Waitable {
  std::mutex mutex;
  std::condition_variable cv;
  std::atomic<int> waiters{0};

  void wake_one() {
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (waiters.load(std::memory_order_relaxed) > 0) {
      std::lock_guard<std::mutex> lock(mutex);
      cv.notify_one();
    }
  }
  void wake_all() {
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (waiters.load(std::memory_order_relaxed) > 0) {
      std::lock_guard<std::mutex> lock(mutex);
      cv.notify_all();
    }
  }
};

}  // namespace

struct Ring::Impl {
  Impl(size_t n, size_t bytes)
      : slots(n), slot_bytes(bytes), storage(n * bytes), metas(n), free_q(n), ready_q(n) {}

  size_t slots, slot_bytes;
  std::vector<uint8_t> storage;
  std::vector<SlotMeta> metas;
  boost::lockfree::queue<int> free_q, ready_q;
  Waitable free_wait, ready_wait;
  std::atomic<bool> closed{false};
  // Slots taken by producers and not yet published or discarded: after close() consumers wait
  // for these to settle, so a publish racing with close() is never lost.
  std::atomic<int64_t> filling{0};
  std::atomic<int64_t> ready{0};
  std::atomic<uint64_t> pushed{0}, popped{0};
  std::atomic<uint64_t> producer_wait_ns{0}, consumer_wait_ns{0};

  void check_slot(int slot, const char* what) const {
    if (slot < 0 || size_t(slot) >= slots)
      throw Error(std::string("ring: ") + what + " with slot id " + std::to_string(slot) + " outside [0, " +
                  std::to_string(slots) + ")");
  }

  // Consumers may stop only when nothing is ready and no producer still holds a slot to publish.
  bool finished() const {
    return closed.load(std::memory_order_seq_cst) && filling.load(std::memory_order_seq_cst) == 0;
  }
};

namespace {

inline uint64_t elapsed_ns(std::chrono::steady_clock::time_point since) {
  return uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - since).count());
}

}  // namespace

Ring::Ring(size_t slots, size_t slot_bytes) {
  if (slots == 0) throw InputError("ring.slots must be at least 1");
  if (slots > (size_t(1) << 20)) throw InputError("ring.slots = " + std::to_string(slots) + " is absurdly large (max 1048576)");
  if (slot_bytes != 0 && slots > (size_t(64) << 30) / slot_bytes)
    throw InputError("ring: " + std::to_string(slots) + " slots x " + std::to_string(slot_bytes) +
                     " bytes exceeds 64 GiB; lower ring.slots or ring.max_height/ring.max_width");
  try {
    impl_ = std::make_unique<Impl>(slots, slot_bytes);
  } catch (const std::bad_alloc&) {
    char size[32];
    std::snprintf(size, sizeof size, "%.2f GiB", double(slots) * double(slot_bytes) / double(size_t(1) << 30));
    throw InputError("ring: could not allocate " + std::string(size) + " (" + std::to_string(slots) + " slots x " +
                     std::to_string(slot_bytes) + " bytes); lower ring.slots or ring.max_height/ring.max_width");
  }
  for (size_t i = 0; i < slots; ++i) impl_->free_q.push(int(i));
}

Ring::~Ring() = default;

std::optional<int> Ring::acquire_free() {
  Impl& s = *impl_;
  // Register as filling before looking at `closed`: a consumer that sees closed && filling == 0
  // knows no producer can still publish (seq_cst on both sides).
  s.filling.fetch_add(1, std::memory_order_seq_cst);
  auto give_up = [&s]() -> std::optional<int> {
    if (s.filling.fetch_sub(1, std::memory_order_seq_cst) == 1) s.ready_wait.wake_all();
    return std::nullopt;
  };
  int id;
  for (int i = 0; i < kSpinPops + kYieldPops; ++i) {
    if (s.closed.load(std::memory_order_seq_cst)) return give_up();
    if (s.free_q.pop(id)) return id;
    if (i < kSpinPops) cpu_relax();
    else std::this_thread::yield();
  }
  const auto t0 = std::chrono::steady_clock::now();
  std::unique_lock<std::mutex> lock(s.free_wait.mutex);
  s.free_wait.waiters.fetch_add(1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  std::optional<int> got;
  for (;;) {
    if (s.closed.load(std::memory_order_seq_cst)) break;
    if (s.free_q.pop(id)) {
      got = id;
      break;
    }
    s.free_wait.cv.wait(lock);
  }
  s.free_wait.waiters.fetch_sub(1, std::memory_order_relaxed);
  lock.unlock();
  s.producer_wait_ns.fetch_add(elapsed_ns(t0), std::memory_order_relaxed);
  return got ? got : give_up();
}

void Ring::publish(int slot) {
  Impl& s = *impl_;
  s.check_slot(slot, "publish");
  s.ready.fetch_add(1, std::memory_order_relaxed);
  s.pushed.fetch_add(1, std::memory_order_relaxed);
  s.ready_q.push(slot);
  s.filling.fetch_sub(1, std::memory_order_seq_cst);
  // After close() the last settling producer must wake every consumer so they can finish.
  if (s.closed.load(std::memory_order_seq_cst)) s.ready_wait.wake_all();
  else s.ready_wait.wake_one();
}

void Ring::discard(int slot) {
  Impl& s = *impl_;
  s.check_slot(slot, "discard");
  s.free_q.push(slot);
  s.free_wait.wake_one();
  if (s.filling.fetch_sub(1, std::memory_order_seq_cst) == 1) s.ready_wait.wake_all();
}

std::optional<int> Ring::acquire_ready() {
  Impl& s = *impl_;
  int id;
  auto take = [&s](int slot) {
    s.ready.fetch_sub(1, std::memory_order_relaxed);
    s.popped.fetch_add(1, std::memory_order_relaxed);
    return std::optional<int>(slot);
  };
  for (int i = 0; i < kSpinPops + kYieldPops; ++i) {
    if (s.ready_q.pop(id)) return take(id);
    if (s.finished()) {
      // A publish may have landed between the pop and the check; the final pop settles it.
      if (s.ready_q.pop(id)) return take(id);
      return std::nullopt;
    }
    if (i < kSpinPops) cpu_relax();
    else std::this_thread::yield();
  }
  const auto t0 = std::chrono::steady_clock::now();
  std::unique_lock<std::mutex> lock(s.ready_wait.mutex);
  s.ready_wait.waiters.fetch_add(1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  std::optional<int> got;
  for (;;) {
    if (s.ready_q.pop(id)) {
      got = id;
      break;
    }
    if (s.finished()) {
      if (s.ready_q.pop(id)) got = id;
      break;
    }
    s.ready_wait.cv.wait(lock);
  }
  s.ready_wait.waiters.fetch_sub(1, std::memory_order_relaxed);
  lock.unlock();
  s.consumer_wait_ns.fetch_add(elapsed_ns(t0), std::memory_order_relaxed);
  if (got) return take(*got);
  return std::nullopt;
}

void Ring::release(int slot) {
  Impl& s = *impl_;
  s.check_slot(slot, "release");
  s.free_q.push(slot);
  s.free_wait.wake_one();
}

uint8_t* Ring::data(int slot) {
  impl_->check_slot(slot, "data");
  return impl_->storage.data() + size_t(slot) * impl_->slot_bytes;
}
const uint8_t* Ring::data(int slot) const {
  impl_->check_slot(slot, "data");
  return impl_->storage.data() + size_t(slot) * impl_->slot_bytes;
}
SlotMeta& Ring::meta(int slot) {
  impl_->check_slot(slot, "meta");
  return impl_->metas[size_t(slot)];
}
const SlotMeta& Ring::meta(int slot) const {
  impl_->check_slot(slot, "meta");
  return impl_->metas[size_t(slot)];
}

void Ring::close() {
  Impl& s = *impl_;
  s.closed.store(true, std::memory_order_seq_cst);
  // Take each mutex before notifying: a thread between its last check and wait() holds it, so it
  // either sees `closed` or is already waiting when the notify comes.
  {
    std::lock_guard<std::mutex> lock(s.free_wait.mutex);
    s.free_wait.cv.notify_all();
  }
  {
    std::lock_guard<std::mutex> lock(s.ready_wait.mutex);
    s.ready_wait.cv.notify_all();
  }
}

bool Ring::closed() const { return impl_->closed.load(std::memory_order_seq_cst); }
size_t Ring::slots() const { return impl_->slots; }
size_t Ring::slot_bytes() const { return impl_->slot_bytes; }
size_t Ring::ready_count() const {
  const int64_t r = impl_->ready.load(std::memory_order_relaxed);
  return r > 0 ? size_t(r) : 0;
}

RingStats Ring::stats() const {
  RingStats st;
  st.pushed = impl_->pushed.load(std::memory_order_relaxed);
  st.popped = impl_->popped.load(std::memory_order_relaxed);
  st.producer_wait_s = double(impl_->producer_wait_ns.load(std::memory_order_relaxed)) * 1e-9;
  st.consumer_wait_s = double(impl_->consumer_wait_ns.load(std::memory_order_relaxed)) * 1e-9;
  return st;
}

}  // namespace synth
