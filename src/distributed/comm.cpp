#include "distributed/comm.hpp"

#include <torch/csrc/distributed/c10d/HashStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
// Gloo is compiled into the torch wheel's libtorch_cpu, which ships no Gloo headers; the ones
// from Debian's libgloo-dev only declare the types that c10d::ProcessGroupGloo holds through
// pointers (src/distributed/CMakeLists.txt). tests/distributed runs real Gloo collectives through this path.
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "core/error.hpp"

#if defined(SYNTH_CUDA)
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace synth {

struct Rendezvous::Store {
  c10::intrusive_ptr<c10d::Store> store;
};

struct Comm::Impl {
  c10::intrusive_ptr<c10d::Backend> group;
};

struct PendingOp::Impl {
  c10::intrusive_ptr<c10d::Work> work;
  std::string what;
};

namespace {

// c10d reports failures (a peer gone, a timeout) as c10::Error or std::runtime_error; callers
// get synth::Error naming the operation and group.
template <class F>
auto guarded(const std::string& what, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    std::string msg = e.what();
    if (const size_t nl = msg.find('\n'); nl != std::string::npos) msg.resize(nl);
    throw CommError(what + " failed: " + msg);
  }
}

void wait_work(const c10::intrusive_ptr<c10d::Work>& work, const std::string& what) {
  guarded(what, [&] {
    work->wait();
    return 0;
  });
}

bool is_loopback(const std::string& host) { return host == "localhost" || host.rfind("127.", 0) == 0; }

}  // namespace

void PendingOp::wait() {
  if (impl_ && impl_->work) wait_work(impl_->work, impl_->what);
  impl_.reset();
}

Comm::Comm(std::unique_ptr<Impl> impl, int rank, int size, std::string backend)
    : impl_(std::move(impl)), rank_(rank), size_(size), backend_(std::move(backend)) {}

Comm::~Comm() = default;

void Comm::all_reduce_sum(torch::Tensor& t) { all_reduce_sum_async(t).wait(); }

PendingOp Comm::all_reduce_sum_async(torch::Tensor t) {
  const std::string what = backend_ + " all-reduce of " + std::to_string(t.numel()) + " values";
  auto op = std::make_shared<PendingOp::Impl>();
  op->what = what;
  op->work = guarded(what, [&] {
    std::vector<torch::Tensor> ts{t};
    return impl_->group->allreduce(ts, c10d::AllreduceOptions());
  });
  return PendingOp(op);
}

torch::Tensor Comm::all_gather(const torch::Tensor& t) {
  const torch::Tensor in = t.contiguous();
  std::vector<std::vector<torch::Tensor>> out(1);
  for (int r = 0; r < size_; ++r) out[0].push_back(torch::empty_like(in));
  std::vector<torch::Tensor> ins{in};
  const std::string what = backend_ + " all-gather of " + std::to_string(in.numel()) + " values";
  wait_work(guarded(what, [&] { return impl_->group->allgather(out, ins, c10d::AllgatherOptions()); }), what);
  return torch::stack(out[0]);
}

void Comm::broadcast(torch::Tensor& t, int root) {
  std::vector<torch::Tensor> ts{t};
  c10d::BroadcastOptions opts;
  opts.rootRank = root;
  const std::string what = backend_ + " broadcast from rank " + std::to_string(root);
  wait_work(guarded(what, [&] { return impl_->group->broadcast(ts, opts); }), what);
}

void Comm::send(torch::Tensor t, int dst, int tag) {
  std::vector<torch::Tensor> ts{t.contiguous()};
  const std::string what = backend_ + " send to rank " + std::to_string(dst);
  wait_work(guarded(what, [&] { return impl_->group->send(ts, dst, tag); }), what);
}

void Comm::recv(torch::Tensor& t, int src, int tag) {
  if (!t.is_contiguous()) throw Error("Comm::recv needs a contiguous tensor");
  std::vector<torch::Tensor> ts{t};
  const std::string what = backend_ + " receive from rank " + std::to_string(src);
  wait_work(guarded(what, [&] { return impl_->group->recv(ts, src, tag); }), what);
}

void Comm::barrier() {
  const std::string what = backend_ + " barrier";
  wait_work(guarded(what, [&] { return impl_->group->barrier(c10d::BarrierOptions()); }), what);
}

Rendezvous Rendezvous::tcp(const DistEnv& env, std::chrono::milliseconds timeout) {
  return guarded("rendezvous at " + env.master_addr + ":" + std::to_string(env.master_port), [&] {
    c10d::TCPStoreOptions opts;
    opts.port = uint16_t(env.master_port);
    opts.isServer = env.rank == 0;
    opts.numWorkers = size_t(env.world_size);
    opts.waitWorkers = false;
    opts.timeout = timeout;
    auto store = std::make_shared<Store>();
    store->store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, opts);
    return Rendezvous(store);
  });
}

Rendezvous Rendezvous::in_process() {
  auto store = std::make_shared<Store>();
  store->store = c10::make_intrusive<c10d::HashStore>();
  return Rendezvous(store);
}

std::unique_ptr<Comm> Rendezvous::group(const std::string& name, int rank, int size, const std::string& backend,
                                        std::chrono::milliseconds timeout, const std::string& host_for_gloo) const {
  if (rank < 0 || rank >= size) throw Error("group '" + name + "': rank " + std::to_string(rank) + " outside [0, " + std::to_string(size) + ")");
  auto prefixed = c10::make_intrusive<c10d::PrefixStore>(name + "/", store_->store);
  auto impl = std::make_unique<Comm::Impl>();
  guarded("joining " + backend + " group '" + name + "'", [&] {
    if (backend == "gloo") {
      auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
      // GLOO_SOCKET_IFNAME picks the interface as in PyTorch; else the master's address decides:
      // loopback for single-node jobs, the host's default interface otherwise.
      if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname)
        opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
      else if (is_loopback(host_for_gloo))
        opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
      else
        opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      opts->threads = 2;
      impl->group = c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed, rank, size, opts);
    } else if (backend == "nccl") {
#if defined(SYNTH_CUDA)
      auto opts = c10d::ProcessGroupNCCL::Options::create();
      opts->timeout = timeout;
      impl->group = c10::make_intrusive<c10d::ProcessGroupNCCL>(prefixed, rank, size, opts);
#else
      throw InputError("dist.backend = \"nccl\" needs the CUDA flavor of synthstream (this build is CPU only)");
#endif
    } else {
      throw InputError("unknown collective backend '" + backend + "' (gloo | nccl)");
    }
    return 0;
  });
  return std::unique_ptr<Comm>(new Comm(std::move(impl), rank, size, backend));
}

void Rendezvous::set(const std::string& key, const std::string& value) const {
  guarded("store set '" + key + "'", [&] {
    store_->store->set(key, std::vector<uint8_t>(value.begin(), value.end()));
    return 0;
  });
}

std::string Rendezvous::get(const std::string& key) const {
  return guarded("store get '" + key + "'", [&] {
    const std::vector<uint8_t> v = store_->store->get(key);
    return std::string(v.begin(), v.end());
  });
}

bool Rendezvous::check(const std::string& key) const {
  return guarded("store check '" + key + "'", [&] { return store_->store->check({key}); });
}

}  // namespace synth
