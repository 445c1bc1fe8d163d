#include "distributed/watchdog.hpp"

#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "core/error.hpp"

namespace synth {

namespace {

using Clock = std::chrono::steady_clock;
const std::string kPrefix = "synth/watchdog/";
const std::string kFailure = kPrefix + "failure";
std::string beat_key(int rank) { return kPrefix + "beat/" + std::to_string(rank); }
std::string done_key(int rank) { return kPrefix + "done/" + std::to_string(rank); }

std::string seconds(std::chrono::milliseconds ms) {
  char b[32];
  std::snprintf(b, sizeof b, "%.3g s", double(ms.count()) / 1000.0);
  return b;
}

}  // namespace

struct Watchdog::Impl {
  DistEnv env;
  std::chrono::milliseconds lost_after, period;
  OnVerdict on_verdict;
  c10::intrusive_ptr<c10d::TCPStore> store;

  std::mutex m;
  std::condition_variable cv;
  bool stopping = false;
  bool going_down = false;  // this rank published its own failure
  bool decided = false;
  std::optional<std::string> verdict;  // set once decided (and, on rank 0, published)
  std::atomic<int64_t> last_answer{0};  // Clock ticks of the store's last answer to this rank
  // Rank 0's view of the others (under m): counter values, when each last moved, who is done.
  std::vector<int64_t> seen;
  std::vector<Clock::time_point> moved;
  std::vector<bool> done;
  std::thread beat_thread, monitor_thread;

  void beat_loop();
  void monitor_loop();
  void watch_others();
  void decide(const std::string& why, bool publish);
  void stop();
  bool wait_period(std::chrono::milliseconds d) {
    std::unique_lock<std::mutex> lock(m);
    return !cv.wait_for(lock, d, [&] { return stopping; });
  }
};

Watchdog::Watchdog(const DistEnv& env, std::chrono::milliseconds lost_after, OnVerdict on_verdict)
    : impl_(std::make_unique<Impl>()) {
  Impl& w = *impl_;
  w.env = env;
  w.lost_after = lost_after;
  w.period = std::min(std::chrono::milliseconds(1000), lost_after / 5);
  w.on_verdict = std::move(on_verdict);
  c10d::TCPStoreOptions opts;
  opts.port = uint16_t(env.master_port);
  opts.isServer = false;
  opts.waitWorkers = false;
  // Store operations that get no answer give up after lost_after; the monitor has decided by then.
  opts.timeout = lost_after;
  const std::string host = env.rank == 0 ? "127.0.0.1" : env.master_addr;
  try {
    w.store = c10::make_intrusive<c10d::TCPStore>(host, opts);
  } catch (const std::exception& e) {
    std::string msg = e.what();
    msg.resize(std::min(msg.find('\n'), msg.size()));
    throw Error("watchdog: connecting to the rendezvous store at " + host + ":" + std::to_string(env.master_port) +
                " failed: " + msg);
  }
  const auto now = Clock::now();
  w.last_answer = now.time_since_epoch().count();
  w.seen.assign(size_t(env.world_size), 0);
  w.moved.assign(size_t(env.world_size), now);
  w.done.assign(size_t(env.world_size), false);
  w.beat_thread = std::thread([&w] { w.beat_loop(); });
  w.monitor_thread = std::thread([&w] { w.monitor_loop(); });
}

Watchdog::~Watchdog() { impl_->stop(); }

std::chrono::milliseconds Watchdog::period() const { return impl_->period; }

void Watchdog::Impl::stop() {
  {
    std::lock_guard<std::mutex> lock(m);
    stopping = true;
  }
  cv.notify_all();
  if (beat_thread.joinable()) beat_thread.join();
  if (monitor_thread.joinable()) monitor_thread.join();
}

// The only thread that waits on the network (besides publishing): a blocked store stalls it, and
// the monitor notices the silence.
void Watchdog::Impl::beat_loop() {
  do {
    try {
      store->add(beat_key(env.rank), 1);
      last_answer = Clock::now().time_since_epoch().count();
      if (store->check({kFailure})) {
        const std::vector<uint8_t> v = store->get(kFailure);
        decide(std::string(v.begin(), v.end()), false);
      }
      if (env.rank == 0) watch_others();
    } catch (const std::exception&) {
      // No answer or a broken connection: the monitor judges by last_answer.
    }
  } while (wait_period(period));
}

// Rank 0: every counter that moved is alive; one that stopped is asked once whether it finished.
void Watchdog::Impl::watch_others() {
  for (int r = 1; r < env.world_size; ++r) {
    const int64_t v = store->add(beat_key(r), 0);
    bool stale;
    {
      std::lock_guard<std::mutex> lock(m);
      if (v != seen[size_t(r)]) {
        seen[size_t(r)] = v;
        moved[size_t(r)] = Clock::now();
      }
      stale = !done[size_t(r)] && Clock::now() - moved[size_t(r)] > period;
    }
    if (stale && store->check({done_key(r)})) {
      std::lock_guard<std::mutex> lock(m);
      done[size_t(r)] = true;
    }
  }
}

void Watchdog::Impl::monitor_loop() {
  while (wait_period(period / 2)) {
    const auto now = Clock::now();
    const auto silent = now - Clock::time_point(Clock::duration(last_answer.load()));
    if (silent > lost_after) {
      decide(env.rank == 0 ? "the rendezvous store this rank serves stopped answering for " + seconds(lost_after)
                           : "rank 0 lost: the rendezvous store it serves at " + env.master_addr + ":" +
                                 std::to_string(env.master_port) + " has not answered for " + seconds(lost_after) +
                                 " (the process died or its host is unreachable)",
             false);
      continue;
    }
    if (env.rank != 0) continue;
    for (int r = 1; r < env.world_size; ++r) {
      bool lost;
      {
        std::lock_guard<std::mutex> lock(m);
        lost = !done[size_t(r)] && now - moved[size_t(r)] > lost_after;
      }
      if (lost) {
        decide("rank " + std::to_string(r) + " lost: no heartbeat for " + seconds(lost_after) +
                   " (the process died or its host is unreachable)",
               true);
        break;
      }
    }
  }
}

// One verdict per process. Rank 0 publishes a lost rank for the others (they read it within a
// period) and lingers two periods, since its exit takes the store with it.
void Watchdog::Impl::decide(const std::string& why, bool publish) {
  {
    std::lock_guard<std::mutex> lock(m);
    if (decided || going_down || stopping) return;
    decided = true;
  }
  if (publish) {
    try {
      store->set(kFailure, std::vector<uint8_t>(why.begin(), why.end()));
      std::this_thread::sleep_for(2 * period);
    } catch (const std::exception&) {
    }
  }
  {
    std::lock_guard<std::mutex> lock(m);
    verdict = why;
  }
  cv.notify_all();
  if (on_verdict) on_verdict(why);
}

void Watchdog::publish_failure(const std::string& why) {
  Impl& w = *impl_;
  {
    std::lock_guard<std::mutex> lock(w.m);
    if (w.going_down || w.decided) return;  // a verdict came first: that was the cause
    w.going_down = true;
  }
  try {
    w.store->set(kFailure, std::vector<uint8_t>(why.begin(), why.end()));
    if (w.env.rank == 0) std::this_thread::sleep_for(2 * w.period);  // the store leaves with this process
  } catch (const std::exception&) {
  }
}

void Watchdog::finish() {
  Impl& w = *impl_;
  try {
    w.store->set(done_key(w.env.rank), std::vector<uint8_t>{'1'});
  } catch (const std::exception&) {
  }
  w.stop();
}

std::optional<std::string> Watchdog::await_verdict() {
  Impl& w = *impl_;
  std::unique_lock<std::mutex> lock(w.m);
  w.cv.wait_for(lock, w.lost_after + 4 * w.period, [&] { return w.verdict.has_value(); });
  return w.verdict;
}

void Watchdog::simulate_death() { impl_->stop(); }

}  // namespace synth
