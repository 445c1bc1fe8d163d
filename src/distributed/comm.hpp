// A group of ranks and its collectives, over LibTorch's c10d (the engine PyTorch's own
// DistributedDataParallel uses): ProcessGroupGloo for CPU tensors, ProcessGroupNCCL for CUDA
// tensors (CUDA flavor). Rendezvous goes through one c10d TCPStore served by world rank 0; each
// group lives under its own key prefix of that store, so the world group and the trainer-only
// group (dedicated placement) coexist.
#pragma once
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "core/error.hpp"
#include "distributed/env.hpp"

namespace synth {

// A collective, transfer or store operation failed: usually a peer is gone, which the job's
// watchdog (watchdog.hpp) can name.
class CommError : public Error {
 public:
  using Error::Error;
};

// An outstanding collective; wait() rethrows a failure as synth::Error.
class PendingOp {
 public:
  struct Impl;
  explicit PendingOp(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  void wait();

 private:
  std::shared_ptr<Impl> impl_;
};

class Comm {
 public:
  ~Comm();
  Comm(const Comm&) = delete;
  Comm& operator=(const Comm&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  const std::string& backend() const { return backend_; }

  void all_reduce_sum(torch::Tensor& t);  // in place
  PendingOp all_reduce_sum_async(torch::Tensor t);
  // Every rank's `t` stacked along a new first dimension: [size, ...].
  torch::Tensor all_gather(const torch::Tensor& t);
  void broadcast(torch::Tensor& t, int root);
  // Point to point; `tag` tells concurrent messages between the same pair apart.
  void send(torch::Tensor t, int dst, int tag);
  void recv(torch::Tensor& t, int src, int tag);
  void barrier();

  struct Impl;

 private:
  friend class Rendezvous;
  Comm(std::unique_ptr<Impl> impl, int rank, int size, std::string backend);
  std::unique_ptr<Impl> impl_;
  int rank_, size_;
  std::string backend_;
};

// The job's shared store (TCPStore at env.master_addr:port; world rank 0 serves it), from which
// groups are made. Single-process jobs (and tests running ranks as threads) can use an in-memory
// store instead.
class Rendezvous {
 public:
  // Connects to (or on rank 0 serves) the TCPStore; waits up to `timeout` for the others.
  static Rendezvous tcp(const DistEnv& env, std::chrono::milliseconds timeout);
  // A store shared by threads of one process (tests).
  static Rendezvous in_process();

  // A group named `name` of `size` ranks in which this process is `rank`. backend: gloo | nccl.
  // Every member must call this with the same name and size. Blocks until all have joined.
  std::unique_ptr<Comm> group(const std::string& name, int rank, int size, const std::string& backend,
                              std::chrono::milliseconds timeout, const std::string& host_for_gloo = "127.0.0.1") const;

  // Small coordination values (e.g. the stop request of an interrupted run), outside collectives.
  void set(const std::string& key, const std::string& value) const;
  bool check(const std::string& key) const;
  std::string get(const std::string& key) const;  // waits for the key (up to the store's timeout)

 struct Store;  // holds the c10d store (comm.cpp), so this header needs no c10d headers

 private:
  explicit Rendezvous(std::shared_ptr<Store> store) : store_(std::move(store)) {}
  std::shared_ptr<Store> store_;
};

}  // namespace synth
