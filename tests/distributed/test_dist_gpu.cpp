// CUDA flavor only: the NCCL backend on the one GPU of a test machine. NCCL cannot put two ranks on
// one device, so this is a one-rank group: it proves the group is made over the store, that every
// collective takes CUDA tensors, and that SyncBN and the bucketed reducer run on them (with one
// rank they must equal plain batch norm and leave gradients as they are). Multi-GPU sums are the
// same code as the multi-rank Gloo tests of test_dist.cpp. SyncBN's five per-device steps (ATen's
// CUDA kernels here, plain-torch twins on the CPU) are held against each other on the same data.
#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <vector>

#include <torch/torch.h>

#include <torch/cuda.h>
#include "distributed/comm.hpp"
#include "distributed/grad_reducer.hpp"
#include "distributed/sync_batch_norm.hpp"

using namespace std::chrono_literals;

TEST_CASE("nccl: a one-rank group runs every collective, SyncBN and the reducer on CUDA tensors") {
  if (!torch::cuda::is_available()) {
    MESSAGE("no CUDA device: NCCL test skipped");
    return;
  }
  const torch::Device cuda(torch::kCUDA);
  const synth::Rendezvous rv = synth::Rendezvous::in_process();
  const std::unique_ptr<synth::Comm> comm = rv.group("nccl1", 0, 1, "nccl", 60s);
  CHECK(comm->backend() == "nccl");

  torch::Tensor t = torch::full({4}, 3.0, cuda);
  comm->all_reduce_sum(t);
  CHECK(torch::equal(t.cpu(), torch::full({4}, 3.0)));
  torch::Tensor u = torch::full({3}, 2.0, cuda);
  comm->all_reduce_sum_async(u).wait();
  CHECK(torch::equal(u.cpu(), torch::full({3}, 2.0)));
  const torch::Tensor g = comm->all_gather(torch::tensor({1.0f, 2.0f}).to(cuda));
  CHECK(g.sizes() == torch::IntArrayRef({1, 2}));
  CHECK(g.is_cuda());
  torch::Tensor b = torch::arange(5, torch::TensorOptions().dtype(torch::kFloat32).device(cuda));
  comm->broadcast(b, 0);
  CHECK(torch::equal(b.cpu(), torch::arange(5, torch::kFloat32)));
  comm->barrier();

  torch::manual_seed(4);
  const torch::Tensor x = (torch::randn({6, 5, 4, 3}) * 0.5 + 20.0).to(cuda);
  const torch::Tensor w = (torch::rand({5}) + 0.5).to(cuda), bias = torch::randn({5}).to(cuda);
  torch::Tensor rm = torch::zeros({5}, cuda), rvar = torch::ones({5}, cuda);
  torch::Tensor m = torch::zeros({5}, cuda), v = torch::ones({5}, cuda);
  const torch::Tensor ref = torch::batch_norm(x, w, bias, rm, rvar, true, 0.1, 1e-5, false);
  const torch::Tensor out = synth::sync_batch_norm(x, w, bias, m, v, 0.1, 1e-5, *comm);
  CHECK((out - ref).abs().max().item<double>() < 1e-4);
  CHECK((m - rm).abs().max().item<double>() < 1e-4);
  CHECK((v - rvar).abs().max().item<double>() < 1e-4);

  torch::nn::Sequential model(torch::nn::Linear(7, 9), torch::nn::Tanh(), torch::nn::Linear(9, 3));
  model->to(cuda);
  const torch::Tensor in = torch::randn({8, 7}).to(cuda);
  model->forward(in).square().sum().backward();
  std::vector<torch::Tensor> alone;
  for (const torch::Tensor& p : model->parameters()) alone.push_back(p.grad().clone());
  synth::GradReducer reducer(model->parameters(), *comm, 64);
  model->zero_grad();
  reducer.prepare();
  model->forward(in).square().sum().backward();
  reducer.finish();
  const auto params = model->parameters();
  for (size_t k = 0; k < params.size(); ++k) {
    CHECK((params[k].grad() - alone[k]).abs().max().item<double>() < 1e-6);
    // The gradient is a view into a bucket (gradient_as_bucket_view), on the device.
    bool in_bucket = false;
    for (size_t i = 0; i < reducer.buckets(); ++i)
      in_bucket = in_bucket || params[k].grad().storage().is_alias_of(reducer.bucket(i).storage());
    CHECK(in_bucket);
  }
}

namespace {

// |a - b| <= atol + rtol |b| everywhere, both compared on the CPU in fp64.
bool all_close(const std::string& what, const torch::Tensor& a, const torch::Tensor& b, double rtol, double atol) {
  const torch::Tensor a64 = a.cpu().to(torch::kFloat64), b64 = b.cpu().to(torch::kFloat64);
  const torch::Tensor err = (a64 - b64).abs();
  const bool ok = (err <= atol + rtol * b64.abs()).all().item<bool>();
  MESSAGE(what << ": max abs error " << err.max().item<double>());
  return ok;
}

// Each of SyncBN's five steps on CUDA (ATen's kernels) against its CPU twin, on the same data:
// x (any dtype/layout) with 3 "ranks" of 1, 2 and 3 images.
void check_kernels_equal_twins(const torch::Tensor& x, double rtol) {
  namespace bn = synth::bn;
  const torch::Device cuda(torch::kCUDA);
  const double eps = 1e-5, momentum = 0.1;
  const torch::Tensor dy = torch::randn(x.sizes()).to(x.scalar_type()).contiguous(x.suggest_memory_format());
  const torch::Tensor w = torch::rand({x.size(1)}) + 0.5, b = torch::randn({x.size(1)});
  const torch::Tensor xg = x.to(cuda), dyg = dy.to(cuda), wg = w.to(cuda), bg = b.to(cuda);
  std::vector<torch::Tensor> means, invstds;
  int64_t lo = 0;
  for (int64_t len : {1, 2, 3}) {
    const auto [m, s] = bn::cpu_stats(x.narrow(0, lo, len), eps);
    const auto [mg, sg] = bn::stats(xg.narrow(0, lo, len), eps);
    CHECK(all_close("stats mean", mg, m, 1e-6, 1e-6));
    CHECK(all_close("stats invstd", sg, s, 1e-5, 0));
    means.push_back(m);
    invstds.push_back(s);
    lo += len;
  }
  const double per_image = double(x.numel() / x.size(0) / x.size(1));
  const torch::Tensor counts = torch::tensor({1.0f, 2.0f, 3.0f}) * per_image;
  torch::Tensor rm = torch::zeros({x.size(1)}), rv = torch::ones({x.size(1)});
  torch::Tensor rmg = rm.to(cuda), rvg = rv.to(cuda);
  const torch::Tensor all_m = torch::stack(means), all_s = torch::stack(invstds);
  const auto [mean, invstd] = bn::cpu_gather_stats_with_counts(x, all_m, all_s, rm, rv, momentum, eps, counts);
  const auto [meang, invstdg] =
      bn::gather_stats_with_counts(xg, all_m.to(cuda), all_s.to(cuda), rmg, rvg, momentum, eps, counts.to(cuda));
  CHECK(all_close("gather mean", meang, mean, 1e-6, 1e-6));
  CHECK(all_close("gather invstd", invstdg, invstd, 1e-5, 0));
  CHECK(all_close("running_mean", rmg, rm, 1e-6, 1e-6));
  CHECK(all_close("running_var", rvg, rv, 1e-5, 0));

  const torch::Tensor yg = bn::elemt(xg, wg, bg, meang, invstdg, eps);
  CHECK(yg.is_contiguous(x.suggest_memory_format()));
  CHECK(all_close("elemt", yg, bn::cpu_elemt(x, w, b, mean, invstd, eps), rtol, 1e-5));
  const auto [sdy, sdyx, dw, db] = bn::cpu_backward_reduce(dy, x, mean, invstd, w, true, true, true);
  const auto [sdyg, sdyxg, dwg, dbg] = bn::backward_reduce(dyg, xg, meang, invstdg, wg, true, true, true);
  CHECK(all_close("sum_dy", sdyg, sdy, 1e-5, 1e-4));
  CHECK(all_close("sum_dy_xmu", sdyxg, sdyx, 1e-5, 1e-4));
  CHECK(all_close("grad_weight", dwg, dw, 1e-5, 1e-4));
  CHECK(all_close("grad_bias", dbg, db, 1e-5, 1e-4));
  const torch::Tensor n = counts.to(torch::kInt32);
  const torch::Tensor dxg = bn::backward_elemt(dyg, xg, meang, invstdg, wg, sdyg, sdyxg, n.to(cuda));
  // Double parentheses: doctest cannot print a ScalarType.
  CHECK((dxg.scalar_type() == x.scalar_type()));
  CHECK(all_close("backward_elemt", dxg, bn::cpu_backward_elemt(dy, x, mean, invstd, w, sdy, sdyx, n), rtol, 1e-5));
}

}  // namespace

TEST_CASE("sync batch norm ops: the CUDA kernels equal the CPU twins") {
  if (!torch::cuda::is_available()) {
    MESSAGE("no CUDA device: test skipped");
    return;
  }
  torch::manual_seed(9);
  const torch::Tensor x = torch::randn({6, 5, 4, 3}) * 0.5 + 20.0;
  SUBCASE("fp32") { check_kernels_equal_twins(x, 1e-5); }
  SUBCASE("fp32 channels-last") { check_kernels_equal_twins(x.contiguous(torch::MemoryFormat::ChannelsLast), 1e-5); }
  SUBCASE("bf16 channels-last") {  // one bf16 rounding apart at most
    check_kernels_equal_twins(x.to(torch::kBFloat16).contiguous(torch::MemoryFormat::ChannelsLast), 1.0 / 128);
  }
}
