// Who is still alive in a multi-process job. Collectives alone cannot tell the survivors: a peer
// killed with SIGKILL fails their next collective at once but anonymously ("connection closed by
// peer [10.0.0.2]:41234"), and a host that drops off the network fails nothing until
// dist.timeout_s (30 minutes by default) has passed. The watchdog gives every rank a bounded,
// named answer instead, the way torchrun's agent and NCCL's watchdog do:
//
//  - every rank adds 1 to its counter `synth/watchdog/beat/<rank>` in the rendezvous store once a
//    period (1 s; lost_after / 5 when that is shorter), from its own thread and its own store
//    connection, so a main thread busy in a collective, an evaluation or a checkpoint still beats;
//  - rank 0 (which serves the store) reads every counter; one that has not moved for lost_after
//    names a lost rank, unless that rank said it finished (`done/<rank>`);
//  - a rank that fails with an error publishes it (`failure`), so the others stop within a beat
//    with the cause instead of a timeout;
//  - a rank whose own beats get no answer for lost_after has lost the store, hence rank 0 or the
//    network to it.
//
// A verdict reaches `on_verdict` once, from the watchdog's thread; stream-train's prints one line
// and exits 3. Survivors therefore stop within about lost_after + 3 periods of a death (rank 0
// decides after lost_after, publishes, the others read it within a period), whatever the collective
// timeout. Store traffic: one add and one check per rank per period, plus world_size reads on rank 0.
#pragma once
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "distributed/env.hpp"

namespace synth {

class Watchdog {
 public:
  using OnVerdict = std::function<void(const std::string& why)>;

  // Connects its own client to the job's store (env.master_addr:port; 127.0.0.1 on rank 0, which
  // serves it, so rank 0 keeps its store when its host's link goes down) and starts beating.
  Watchdog(const DistEnv& env, std::chrono::milliseconds lost_after, OnVerdict on_verdict);
  ~Watchdog();  // stops beating without saying done (as after an error)
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // This rank failed (one line): the other ranks stop with it as their verdict. After this call
  // this rank reaches no verdict of its own: it is already on its way out with its own error.
  void publish_failure(const std::string& why);
  // This rank's part is done: rank 0 stops expecting its beats. Stops the threads.
  void finish();
  // After a collective failed: waits (at most lost_after + 4 periods) for the verdict that names
  // the cause; returns it, or nothing when none came.
  std::optional<std::string> await_verdict();

  std::chrono::milliseconds period() const;
  // Tests: stop beating and watching at once, as a killed process would (nothing published).
  void simulate_death();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace synth
