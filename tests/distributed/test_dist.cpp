// Collectives, gradient buckets and SyncBN, with the ranks of a group run as threads of this
// process over an in-memory store (the same ProcessGroupGloo code as a multi-process job).
#include <doctest/doctest.h>

#include <chrono>
#include <cstdlib>
#include <exception>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <torch/torch.h>

#include "core/error.hpp"
#include "distributed/comm.hpp"
#include "distributed/env.hpp"
#include "distributed/grad_reducer.hpp"
#include "distributed/sync_batch_norm.hpp"

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

namespace {

constexpr double kMomentum = 0.1, kEps = 1e-5;  // torch.nn.BatchNorm2d's defaults

// |a - b| <= atol + rtol |b| everywhere, compared in fp64; prints the worst case when it fails
// (and with SYNTH_SHOW_ERRORS set, always, to measure tolerances).
bool all_close(const std::string& what, const torch::Tensor& a, const torch::Tensor& b, double rtol, double atol) {
  const torch::Tensor a64 = a.to(torch::kFloat64), b64 = b.to(torch::kFloat64);
  const torch::Tensor err = (a64 - b64).abs();
  const bool ok = (err <= atol + rtol * b64.abs()).all().item<bool>();
  if (!ok || std::getenv("SYNTH_SHOW_ERRORS"))
    MESSAGE(what << ": max abs error " << err.max().item<double>() << ", max rel error "
                 << (err / b64.abs().clamp_min(1e-12)).max().item<double>());
  return ok;
}

struct BnData {
  torch::Tensor x, w, b, dy;  // w, b undefined: no affine parameters
};

// What one batch-norm layer gives: output, input gradient, weight and bias gradients (summed
// over ranks), running statistics.
struct BnRun {
  torch::Tensor y, dx, dw, db, running_mean, running_var;
};

// Shifted input: a large mean next to a small spread is where E[x^2] - E[x]^2 would cancel.
BnData shifted_data(int64_t n, int64_t c, uint64_t seed, bool affine) {
  torch::manual_seed(seed);
  BnData d;
  d.x = torch::randn({n, c, 4, 3}) * 0.5 + 20.0;
  d.dy = torch::randn({n, c, 4, 3});
  if (affine) {
    d.w = torch::rand({c}) + 0.5;
    d.b = torch::randn({c});
  }
  return d;
}

torch::Tensor leaf(const torch::Tensor& t) { return t.defined() ? t.clone().requires_grad_(true) : t; }

torch::Tensor fp64(const torch::Tensor& t) { return t.defined() ? t.to(torch::kFloat64) : t; }

// The reference: PyTorch's batch norm in training mode on the whole batch, in fp64 on x's values,
// so that what is left is SyncBN's own fp32 rounding (an fp32 reference, whose fused
// x * (w invstd) + (b - mean w invstd) cancels at mean 20, doubled the error of y).
BnRun whole_batch_bn(const BnData& d) {
  torch::Tensor x = leaf(fp64(d.x)), w = leaf(fp64(d.w)), b = leaf(fp64(d.b));
  BnRun r;
  r.running_mean = torch::zeros({d.x.size(1)}, torch::kFloat64);
  r.running_var = torch::ones({d.x.size(1)}, torch::kFloat64);
  r.y = torch::batch_norm(x, w, b, r.running_mean, r.running_var, true, kMomentum, kEps, false);
  (r.y * fp64(d.dy)).sum().backward();
  r.y = r.y.detach();
  r.dx = x.grad();
  if (w.defined()) r.dw = w.grad();
  if (b.defined()) r.db = b.grad();
  return r;
}

// sync_batch_norm with the batch split over split.size() ranks (threads): split[r] images on rank
// r. Outputs and input gradients are concatenated, parameter gradients summed.
BnRun sync_bn_over_ranks(const BnData& d, const std::vector<int64_t>& split, std::vector<BnRun>* per_rank = nullptr) {
  std::vector<BnRun> out(split.size());
  run_ranks(int(split.size()), [&](synth::Comm& comm) {
    const size_t r = size_t(comm.rank());
    int64_t lo = 0;
    for (size_t i = 0; i < r; ++i) lo += split[i];
    torch::Tensor x = leaf(d.x.narrow(0, lo, split[r])), w = leaf(d.w), b = leaf(d.b);  // clone keeps the layout
    BnRun& o = out[r];
    o.running_mean = torch::zeros({d.x.size(1)});
    o.running_var = torch::ones({d.x.size(1)});
    o.y = synth::sync_batch_norm(x, w, b, o.running_mean, o.running_var, kMomentum, kEps, comm);
    (o.y * d.dy.narrow(0, lo, split[r])).sum().backward();
    o.y = o.y.detach();
    o.dx = x.grad();
    if (w.defined()) o.dw = w.grad();
    if (b.defined()) o.db = b.grad();
  });
  BnRun all = out[0];
  std::vector<torch::Tensor> ys, dxs;
  for (const BnRun& o : out) {
    ys.push_back(o.y);
    dxs.push_back(o.dx);
    // Every rank computes the running statistics from the same gathered rows: bit-identical.
    CHECK(torch::equal(o.running_mean, out[0].running_mean));
    CHECK(torch::equal(o.running_var, out[0].running_var));
  }
  all.y = torch::cat(ys);
  all.dx = torch::cat(dxs);
  for (size_t r = 1; r < out.size(); ++r) {
    if (all.dw.defined()) all.dw = all.dw + out[r].dw;
    if (all.db.defined()) all.db = all.db + out[r].db;
  }
  if (per_rank) *per_rank = out;
  return all;
}

// rtol/atol for y and dx; parameter gradients and running statistics are fp32 whatever x is.
void check_matches(const BnRun& got, const BnRun& want, double rtol, double atol) {
  CHECK(all_close("y", got.y, want.y, rtol, atol));
  CHECK(all_close("dx", got.dx, want.dx, rtol, atol));
  CHECK(got.dw.defined() == want.dw.defined());
  CHECK(got.db.defined() == want.db.defined());
  if (want.dw.defined()) CHECK(all_close("dw", got.dw, want.dw, 1e-5, 1e-4));
  if (want.db.defined()) CHECK(all_close("db", got.db, want.db, 1e-5, 1e-4));
  CHECK(all_close("running_mean", got.running_mean, want.running_mean, 1e-5, 1e-6));
  CHECK(all_close("running_var", got.running_var, want.running_var, 1e-5, 1e-6));
}

}  // namespace

TEST_CASE("sync batch norm: 2 ranks with uneven parts equal plain batch norm on the whole batch") {
  const BnData d = shifted_data(6, 5, 3, true);
  std::vector<BnRun> parts;
  const BnRun got = sync_bn_over_ranks(d, {2, 4}, &parts);  // statistics weighted by each rank's count
  const BnRun want = whole_batch_bn(d);
  check_matches(got, want, 1e-5, 1e-5);
  // Parameter gradients are per-rank parts that sum to the whole (the reducer adds them).
  CHECK_FALSE(all_close("dw of rank 0 alone", parts[0].dw, want.dw, 1e-2, 1e-3));
}

TEST_CASE("sync batch norm: 3 ranks, channels-last, equal plain batch norm and keep the layout") {
  BnData d = shifted_data(6, 5, 4, true);
  d.x = d.x.contiguous(torch::MemoryFormat::ChannelsLast);
  d.dy = d.dy.contiguous(torch::MemoryFormat::ChannelsLast);
  std::vector<BnRun> parts;
  const BnRun got = sync_bn_over_ranks(d, {1, 2, 3}, &parts);
  check_matches(got, whole_batch_bn(d), 1e-5, 1e-5);
  for (const BnRun& p : parts) {
    CHECK(p.y.is_contiguous(torch::MemoryFormat::ChannelsLast));
    CHECK(p.dx.is_contiguous(torch::MemoryFormat::ChannelsLast));
  }
}

TEST_CASE("sync batch norm: a bf16 input gives bf16 results from fp32 statistics") {
  BnData d = shifted_data(6, 5, 5, true);
  d.x = d.x.to(torch::kBFloat16);
  d.dy = d.dy.to(torch::kBFloat16);
  std::vector<BnRun> parts;
  const BnRun got = sync_bn_over_ranks(d, {3, 1, 2}, &parts);
  // Double parentheses: doctest cannot print a ScalarType.
  CHECK((got.y.scalar_type() == torch::kBFloat16));
  CHECK((got.dx.scalar_type() == torch::kBFloat16));
  CHECK((got.dw.scalar_type() == torch::kFloat32));
  // y and dx: within one bf16 rounding (2^-7 relative) of the fp32 reference on the same values.
  check_matches(got, whole_batch_bn(d), 1.0 / 128, 1e-5);
}

TEST_CASE("sync batch norm: without weight and bias") {
  const BnData d = shifted_data(5, 3, 6, false);
  check_matches(sync_bn_over_ranks(d, {3, 2}), whole_batch_bn(d), 1e-5, 1e-5);
}

namespace {

// The old SyncBN's statistics (count, mean, M2 per part, combined by Chan et al.) in fp64: an
// independent reference for the twins' [mean, invstd, count] rows.
struct Moments {
  torch::Tensor n, mean, m2;  // n: [1]
};

Moments old_combination(const torch::Tensor& x, const std::vector<int64_t>& split) {
  std::vector<torch::Tensor> ns, means, m2s;
  int64_t lo = 0;
  for (int64_t len : split) {
    const torch::Tensor part = x.narrow(0, lo, len).to(torch::kFloat64);
    lo += len;
    const torch::Tensor m = part.mean({0, 2, 3});
    ns.push_back(torch::full({1}, double(part.numel() / part.size(1)), torch::kFloat64));
    means.push_back(m);
    m2s.push_back((part - m.view({1, -1, 1, 1})).square().sum({0, 2, 3}));
  }
  const torch::Tensor n_r = torch::cat(ns).unsqueeze(1), m_r = torch::stack(means), m2_r = torch::stack(m2s);
  Moments all;
  all.n = n_r.sum(0);
  all.mean = (n_r * m_r).sum(0) / all.n;
  all.m2 = (m2_r + n_r * (m_r - all.mean).square()).sum(0);
  return all;
}

}  // namespace

TEST_CASE("sync batch norm ops: the CPU twins compose to the old fp64 statistics and gradients") {
  namespace bn = synth::bn;
  const BnData d = shifted_data(6, 5, 7, true);
  const std::vector<int64_t> split{1, 2, 3};
  std::vector<torch::Tensor> means, invstds;
  int64_t lo = 0;
  for (int64_t len : split) {
    const auto [m, invstd] = bn::cpu_stats(d.x.narrow(0, lo, len), kEps);
    means.push_back(m);
    invstds.push_back(invstd);
    lo += len;
  }
  const torch::Tensor counts = torch::tensor({12.0f, 24.0f, 36.0f});
  torch::Tensor rm = torch::zeros({5}), rv = torch::ones({5});
  const auto [mean, invstd] = bn::cpu_gather_stats_with_counts(d.x, torch::stack(means), torch::stack(invstds), rm, rv,
                                                               kMomentum, kEps, counts);
  const Moments old = old_combination(d.x, split);
  CHECK(all_close("mean", mean, old.mean, 1e-6, 0));
  CHECK(all_close("invstd", invstd, (old.m2 / old.n + kEps).rsqrt(), 1e-5, 0));
  CHECK(all_close("running_mean", rm, kMomentum * old.mean, 1e-6, 0));
  CHECK(all_close("running_var", rv, (1 - kMomentum) + kMomentum * old.m2 / (old.n - 1), 1e-5, 0));

  // Element-wise steps on the whole batch with those statistics, against the fp64 formulas.
  auto per_channel = [](const torch::Tensor& v) { return v.to(torch::kFloat64).view({1, -1, 1, 1}); };
  const torch::Tensor x = d.x.to(torch::kFloat64), dy = d.dy.to(torch::kFloat64), w = per_channel(d.w);
  const torch::Tensor m64 = per_channel(mean), s64 = per_channel(invstd);
  const torch::Tensor xhat = (x - m64) * s64;
  CHECK(all_close("y", bn::cpu_elemt(d.x, d.w, d.b, mean, invstd, kEps), xhat * w + per_channel(d.b), 1e-5, 1e-5));
  const auto [sum_dy, sum_dy_xmu, dw, db] = bn::cpu_backward_reduce(d.dy, d.x, mean, invstd, d.w, true, true, true);
  const torch::Tensor sdy = dy.sum({0, 2, 3}), sdyx = (dy * (x - m64)).sum({0, 2, 3});
  CHECK(all_close("sum_dy", sum_dy, sdy, 1e-5, 1e-5));
  CHECK(all_close("sum_dy_xmu", sum_dy_xmu, sdyx, 1e-5, 1e-5));
  CHECK(all_close("dw", dw, (dy * xhat).sum({0, 2, 3}), 1e-5, 1e-5));
  CHECK(all_close("db", db, sdy, 1e-5, 1e-5));
  const torch::Tensor dx =
      bn::cpu_backward_elemt(d.dy, d.x, mean, invstd, d.w, sum_dy, sum_dy_xmu, counts.to(torch::kInt32));
  const double n = 72;
  const torch::Tensor dx64 = (dy - per_channel(sdy) / n - (x - m64) * s64.square() * per_channel(sdyx) / n) * s64 * w;
  CHECK(all_close("dx", dx, dx64, 1e-5, 1e-5));
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

namespace {

// Whether all of t's memory lies inside one of the reducer's buckets.
bool in_a_bucket(const torch::Tensor& t, const synth::GradReducer& reducer) {
  const char* lo = static_cast<const char*>(t.data_ptr());
  const char* hi = lo + t.numel() * int64_t(t.element_size());
  for (size_t i = 0; i < reducer.buckets(); ++i) {
    const char* b = static_cast<const char*>(reducer.bucket(i).data_ptr());
    if (lo >= b && hi <= b + reducer.bucket(i).nbytes()) return true;
  }
  return false;
}

// conv (channels-last weight) -> relu -> linear; params[4] is used by no step.
std::vector<torch::Tensor> conv_net_params() {
  torch::manual_seed(8);
  std::vector<torch::Tensor> p{torch::randn({4, 3, 3, 3}).contiguous(torch::MemoryFormat::ChannelsLast),
                               torch::randn({4}), torch::randn({2, 36}) * 0.1, torch::randn({2}), torch::randn({3})};
  for (torch::Tensor& t : p) t.requires_grad_(true);
  return p;
}

torch::Tensor conv_net_loss(const std::vector<torch::Tensor>& p, const torch::Tensor& x) {
  const torch::Tensor h = torch::conv2d(x, p[0], p[1]).relu().flatten(1);
  return torch::linear(h, p[2], p[3]).square().sum();
}

}  // namespace

TEST_CASE("grad reducer: gradients are views into the buckets, in the parameters' own layout") {
  const torch::Tensor x = torch::randn({8, 3, 5, 5}).contiguous(torch::MemoryFormat::ChannelsLast);
  std::vector<torch::Tensor> ref = conv_net_params();
  conv_net_loss(ref, x).backward();

  run_ranks(4, [&](synth::Comm& comm) {
    std::vector<torch::Tensor> params;
    for (const torch::Tensor& p : ref) params.push_back(p.detach().clone().requires_grad_(true));  // keeps the layout
    synth::GradReducer reducer(params, comm, 64);
    CHECK(reducer.buckets() >= 3);
    // LibTorch's Optimizer::zero_grad (set_to_none) calls grad.detach_() first: the views must
    // survive that, and prepare() must bring them back.
    torch::optim::SGD sgd(params, torch::optim::SGDOptions(0.1));
    for (int step = 0; step < 2; ++step) {
      sgd.zero_grad();
      reducer.prepare();
      for (const torch::Tensor& p : params) {  // before backward: zeroed bucket slices
        REQUIRE(p.grad().defined());
        CHECK(in_a_bucket(p.grad(), reducer));
        CHECK(p.grad().strides() == p.strides());
        CHECK(p.grad().abs().sum().item<double>() == 0);
      }
      conv_net_loss(params, x.narrow(0, 2 * comm.rank(), 2)).backward();
      reducer.finish();
      for (size_t k = 0; k < params.size(); ++k) {
        const torch::Tensor& g = params[k].grad();
        CHECK(in_a_bucket(g, reducer));
        CHECK(g.strides() == params[k].strides());
        if (k < 4) CHECK(all_close("grad", g, ref[k].grad(), 1e-5, 1e-5));
      }
      CHECK(params[0].grad().is_contiguous(torch::MemoryFormat::ChannelsLast));
      CHECK(params[4].grad().abs().sum().item<double>() == 0);  // no gradient: zeros, summed
    }
  });
}

TEST_CASE("comm: an unknown backend is an input error") {
  const synth::Rendezvous rv = synth::Rendezvous::in_process();
  CHECK_THROWS_AS(rv.group("x", 0, 1, "mpi", 10s), synth::InputError);
}
