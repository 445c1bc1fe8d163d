// Collectives, gradient buckets and SyncBN, with the ranks of a group run as threads of this
// process over an in-memory store (the same ProcessGroupGloo code as a multi-process job).
#include <doctest/doctest.h>

#include <chrono>
#include <exception>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <torch/torch.h>

#include "core/error.hpp"
#include "dist/comm.hpp"
#include "dist/env.hpp"
#include "dist/grad_reducer.hpp"
#include "dist/sync_batch_norm.hpp"

namespace {

using namespace std::chrono_literals;

// Runs body(comm) on `ranks` threads joined in one Gloo group; rethrows the first failure.
void run_ranks(int ranks, const std::function<void(synth::Comm&)>& body) {
  const synth::Rendezvous rv = synth::Rendezvous::in_process();
  std::vector<std::thread> threads;
  std::mutex mutex;
  std::exception_ptr error;
  for (int r = 0; r < ranks; ++r)
    threads.emplace_back([&, r] {
      try {
        const std::unique_ptr<synth::Comm> comm = rv.group("test", r, ranks, "gloo", 60s);
        body(*comm);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex);
        if (!error) error = std::current_exception();
      }
    });
  for (std::thread& t : threads) t.join();
  if (error) std::rethrow_exception(error);
}

double max_diff(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

}  // namespace

TEST_CASE("env: torchrun, Slurm and single-process variables") {
  using Vars = std::map<std::string, std::string>;
  auto from = [](const Vars& v) {
    return synth::dist_env_from([&v](const char* name) -> const char* {
      auto it = v.find(name);
      return it == v.end() ? nullptr : it->second.c_str();
    });
  };
  const synth::DistEnv none = from({});
  CHECK(none.world_size == 1);
  CHECK_FALSE(none.distributed());
  CHECK(none.launcher == "none");

  const synth::DistEnv tr =
      from({{"RANK", "3"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "1"}, {"MASTER_ADDR", "node7"}, {"MASTER_PORT", "1234"},
            {"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}});
  CHECK(tr.launcher == "torchrun");
  CHECK(tr.rank == 3);
  CHECK(tr.world_size == 8);
  CHECK(tr.local_rank == 1);
  CHECK(tr.master_addr == "node7");
  CHECK(tr.master_port == 1234);

  const synth::DistEnv sl = from({{"SLURM_PROCID", "5"}, {"SLURM_NTASKS", "16"}, {"SLURM_LOCALID", "1"},
                                  {"SLURM_JOB_NODELIST", "gpu[03-06,09],cpu1"}, {"SLURM_JOB_ID", "123456"}});
  CHECK(sl.launcher == "slurm");
  CHECK(sl.rank == 5);
  CHECK(sl.world_size == 16);
  CHECK(sl.local_rank == 1);
  CHECK(sl.master_addr == "gpu03");
  CHECK(sl.master_port == 29500 + 123456 % 10000);

  CHECK(synth::first_slurm_host("a01,b02") == "a01");
  CHECK(synth::first_slurm_host("solo") == "solo");
  CHECK(synth::first_slurm_host("n[7]") == "n7");

  CHECK_THROWS_WITH_AS(from({{"RANK", "8"}, {"WORLD_SIZE", "8"}}), doctest::Contains("RANK"), synth::InputError);
  CHECK_THROWS_WITH_AS(from({{"RANK", "x"}, {"WORLD_SIZE", "2"}}), doctest::Contains("RANK"), synth::InputError);
  CHECK_THROWS_WITH_AS(from({{"WORLD_SIZE", "2"}}), doctest::Contains("RANK and WORLD_SIZE"), synth::InputError);
  CHECK_THROWS_WITH_AS(from({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "70000"}}), doctest::Contains("MASTER_PORT"),
                       synth::InputError);
}

TEST_CASE("comm: all-reduce, all-gather, broadcast and point-to-point over Gloo") {
  run_ranks(3, [](synth::Comm& comm) {
    const int r = comm.rank();
    torch::Tensor t = torch::full({4}, double(r + 1));
    comm.all_reduce_sum(t);
    CHECK(max_diff(t, torch::full({4}, 6.0)) == 0);

    const torch::Tensor g = comm.all_gather(torch::tensor({double(r), double(10 * r)}));
    CHECK(g.sizes() == torch::IntArrayRef({3, 2}));
    CHECK(max_diff(g, torch::tensor({0.0, 0.0, 1.0, 10.0, 2.0, 20.0}).view({3, 2})) == 0);

    torch::Tensor b = r == 2 ? torch::arange(5, torch::kFloat32) : torch::zeros({5});
    comm.broadcast(b, 2);
    CHECK(max_diff(b, torch::arange(5, torch::kFloat32)) == 0);

    // A ring of sends: each rank sends its id to the next and receives from the previous.
    const int next = (r + 1) % 3, prev = (r + 2) % 3;
    torch::Tensor in = torch::zeros({1}, torch::kInt64);
    if (r == 0) {
      comm.send(torch::full({1}, int64_t(r), torch::kInt64), next, 7);
      comm.recv(in, prev, 7);
    } else {
      comm.recv(in, prev, 7);
      comm.send(torch::full({1}, int64_t(r), torch::kInt64), next, 7);
    }
    CHECK(in.item<int64_t>() == prev);
    comm.barrier();
  });
}

TEST_CASE("sync batch norm: 2 ranks with half batches equal plain batch norm on the whole batch") {
  torch::manual_seed(3);
  const int64_t n = 6, c = 5;
  // Shifted input: a large mean next to a small spread is where E[x^2] - E[x]^2 would cancel.
  const torch::Tensor x = torch::randn({n, c, 4, 3}) * 0.5 + 20.0;
  const torch::Tensor w = torch::rand({c}) + 0.5, b = torch::randn({c});
  const torch::Tensor dy = torch::randn({n, c, 4, 3});

  // Reference: one process, PyTorch's batch norm in training mode.
  torch::Tensor xr = x.clone().requires_grad_(true), wr = w.clone().requires_grad_(true), br = b.clone().requires_grad_(true);
  torch::Tensor rm = torch::zeros({c}), rv = torch::ones({c});
  const torch::Tensor yr = torch::batch_norm(xr, wr, br, rm, rv, true, 0.1, 1e-5, false);
  (yr * dy).sum().backward();

  std::vector<torch::Tensor> y(2), dx(2), dw(2), db(2), rms(2), rvs(2);
  // Uneven split (2 + 4 images): the statistics are weighted by each rank's count.
  const int64_t split = 2;
  run_ranks(2, [&](synth::Comm& comm) {
    const int r = comm.rank();
    const int64_t lo = r == 0 ? 0 : split, len = r == 0 ? split : n - split;
    torch::Tensor xl = x.narrow(0, lo, len).clone().requires_grad_(true);
    torch::Tensor wl = w.clone().requires_grad_(true), bl = b.clone().requires_grad_(true);
    torch::Tensor m = torch::zeros({c}), v = torch::ones({c});
    const torch::Tensor yl = synth::sync_batch_norm(xl, wl, bl, m, v, 0.1, 1e-5, comm);
    (yl * dy.narrow(0, lo, len)).sum().backward();
    y[size_t(r)] = yl.detach();
    dx[size_t(r)] = xl.grad();
    dw[size_t(r)] = wl.grad();
    db[size_t(r)] = bl.grad();
    rms[size_t(r)] = m;
    rvs[size_t(r)] = v;
  });
  CHECK(max_diff(torch::cat({y[0], y[1]}), yr) < 1e-4);
  CHECK(max_diff(torch::cat({dx[0], dx[1]}), xr.grad()) < 1e-4);
  // Parameter gradients are per-rank parts that sum to the whole (the reducer adds them).
  CHECK(max_diff(dw[0] + dw[1], wr.grad()) < 1e-4);
  CHECK(max_diff(db[0] + db[1], br.grad()) < 1e-4);
  CHECK(max_diff(dw[0], wr.grad()) > 1e-3);  // a part alone is not the whole (the test can fail)
  for (int r = 0; r < 2; ++r) {
    CHECK(max_diff(rms[size_t(r)], rm) < 1e-4);
    CHECK(max_diff(rvs[size_t(r)], rv) < 1e-4);
  }
}

TEST_CASE("grad reducer: bucketed sums over ranks equal the gradient of the summed loss") {
  torch::manual_seed(5);
  torch::nn::Sequential ref(torch::nn::Linear(7, 9), torch::nn::Tanh(), torch::nn::Linear(9, 3));
  const torch::Tensor x = torch::randn({8, 7});
  ref->forward(x).square().sum().backward();

  std::vector<std::vector<torch::Tensor>> grads(4);
  run_ranks(4, [&](synth::Comm& comm) {
    torch::nn::Sequential model(torch::nn::Linear(7, 9), torch::nn::Tanh(), torch::nn::Linear(9, 3));
    {
      torch::NoGradGuard no_grad;
      for (size_t k = 0; k < model->parameters().size(); ++k) model->parameters()[k].copy_(ref->parameters()[k]);
    }
    // Tiny buckets: several collectives per backward, started in order.
    synth::GradReducer reducer(model->parameters(), comm, 64);
    CHECK(reducer.buckets() >= 3);
    for (int step = 0; step < 2; ++step) {  // the second step reuses the buckets
      model->zero_grad();
      reducer.prepare();
      model->forward(x.narrow(0, 2 * comm.rank(), 2)).square().sum().backward();
      reducer.finish();
    }
    for (const torch::Tensor& p : model->parameters()) grads[size_t(comm.rank())].push_back(p.grad().clone());
  });
  const auto params = ref->parameters();
  for (int r = 0; r < 4; ++r)
    for (size_t k = 0; k < params.size(); ++k) CHECK(max_diff(grads[size_t(r)][k], params[k].grad()) < 1e-5);
}

TEST_CASE("comm: an unknown backend is an input error") {
  const synth::Rendezvous rv = synth::Rendezvous::in_process();
  CHECK_THROWS_AS(rv.group("x", 0, 1, "mpi", 10s), synth::InputError);
}
