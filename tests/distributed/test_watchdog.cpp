// The watchdog (src/distributed/watchdog.hpp) with its real store: a c10d TCPStore on loopback,
// and one watchdog per "rank" in this process. A rank dies by simulate_death (its threads stop, as
// a SIGKILL stops them); the multi-process and multi-host cases are tests/app (exit codes) and
// tests/distributed/test_hosts.py (network namespaces).
#include <doctest/doctest.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "distributed/comm.hpp"
#include "distributed/watchdog.hpp"
#include "support/net.hpp"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// What each rank's on_verdict saw, and when.
struct Verdicts {
  std::mutex m;
  std::condition_variable cv;
  std::vector<std::optional<std::string>> why;
  std::vector<double> after_s;
  Clock::time_point t0 = Clock::now();

  explicit Verdicts(int ranks) : why(size_t(ranks)), after_s(size_t(ranks), -1) {}
  synth::Watchdog::OnVerdict for_rank(int r) {
    return [this, r](const std::string& w) {
      std::lock_guard<std::mutex> lock(m);
      why[size_t(r)] = w;
      after_s[size_t(r)] = std::chrono::duration<double>(Clock::now() - t0).count();
      cv.notify_all();
    };
  }
  // Waits up to `limit` for rank r's verdict.
  std::optional<std::string> await(int r, std::chrono::milliseconds limit) {
    std::unique_lock<std::mutex> lock(m);
    cv.wait_for(lock, limit, [&] { return why[size_t(r)].has_value(); });
    return why[size_t(r)];
  }
  std::optional<std::string> now(int r) {
    std::lock_guard<std::mutex> lock(m);
    return why[size_t(r)];
  }
};

struct Job {
  synth::DistEnv env(int rank) const {
    synth::DistEnv e;
    e.rank = rank;
    e.world_size = ranks;
    e.master_addr = "127.0.0.1";
    e.master_port = port;
    return e;
  }
  int ranks;
  int port = synth::test::free_port();
  std::optional<synth::Rendezvous> store;  // rank 0's server
  std::vector<std::unique_ptr<synth::Watchdog>> dogs;

  Job(int n, Verdicts& v, std::chrono::milliseconds lost_after) : ranks(n) {
    store = synth::Rendezvous::tcp(env(0), 30s);
    for (int r = 0; r < n; ++r) dogs.push_back(std::make_unique<synth::Watchdog>(env(r), lost_after, v.for_rank(r)));
  }
};

constexpr auto kLostAfter = 1000ms;

}  // namespace

TEST_CASE("watchdog: a rank that stops beating is named by rank 0, and every survivor hears it; a finished rank is not lost") {
  Verdicts v(4);
  Job job(4, v, kLostAfter);
  CHECK(job.dogs[0]->period() == 200ms);
  std::this_thread::sleep_for(3 * kLostAfter);  // all beating: nobody is lost, however long
  for (int r = 0; r < 4; ++r) CHECK(!v.now(r));

  job.dogs[3]->finish();  // done: no more beats, and that is fine
  const Clock::time_point death = Clock::now();
  job.dogs[2]->simulate_death();
  const auto at0 = v.await(0, 10 * kLostAfter);
  REQUIRE(at0);
  CHECK(*at0 == "rank 2 lost: no heartbeat for 1 s (the process died or its host is unreachable)");
  const auto at1 = v.await(1, 5 * kLostAfter);
  REQUIRE(at1);
  CHECK(*at1 == *at0);  // published by rank 0, read by rank 1 within a period
  const double took = std::chrono::duration<double>(Clock::now() - death).count();
  MESSAGE("rank 2 silent: rank 0 and rank 1 had the verdict " << took << " s after its death (lost_after 1 s)");
  CHECK(took < 1.0 + 3 * 0.2 + 1.0);  // lost_after + 3 periods, + 1 s of slack for a loaded machine
  CHECK(!v.now(2));
  CHECK(!v.now(3));
}

TEST_CASE("watchdog: a failure one rank publishes stops the others at once with its cause; the failing rank hears nothing") {
  Verdicts v(3);
  Job job(3, v, 10s);  // far beyond this test: only the published failure can explain a verdict
  job.dogs[1]->publish_failure("rank 1 failed: data/x.idx: truncated");
  for (int r : {0, 2}) {
    const auto why = v.await(r, 5s);
    REQUIRE(why);
    CHECK(*why == "rank 1 failed: data/x.idx: truncated");
  }
  std::this_thread::sleep_for(500ms);
  CHECK(!v.now(1));
}

TEST_CASE("watchdog: when rank 0 and its store are gone, the others name rank 0; await_verdict returns the verdict") {
  Verdicts v(3);
  Job job(3, v, kLostAfter);
  std::this_thread::sleep_for(500ms);
  const Clock::time_point death = Clock::now();
  job.dogs[0]->simulate_death();
  job.dogs[0].reset();
  job.store.reset();  // the TCPStore server goes with rank 0's process
  const auto at1 = job.dogs[1]->await_verdict();  // what stream-train's main does after a CommError
  REQUIRE(at1);
  CHECK(at1->find("rank 0 lost: the rendezvous store it serves at 127.0.0.1:" + std::to_string(job.port) +
                  " has not answered for 1 s") == 0);
  const auto at2 = v.await(2, 5 * kLostAfter);
  REQUIRE(at2);
  CHECK(*at2 == *at1);
  CHECK(std::chrono::duration<double>(Clock::now() - death).count() < 1.0 + 3 * 0.2 + 1.0);
}

TEST_CASE("watchdog: await_verdict gives up after lost_after + 4 periods when every rank is alive") {
  Verdicts v(2);
  Job job(2, v, kLostAfter);
  const Clock::time_point t0 = Clock::now();
  CHECK(!job.dogs[1]->await_verdict());
  const double waited = std::chrono::duration<double>(Clock::now() - t0).count();
  CHECK(waited >= 1.7);
  CHECK(waited < 3.0);
}
