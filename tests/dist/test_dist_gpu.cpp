// CUDA flavor only: the NCCL backend on the one GPU of a test machine. NCCL cannot put two ranks on
// one device, so this is a one-rank group: it proves the group is made over the store, that every
// collective takes CUDA tensors, and that SyncBN and the bucketed reducer run on them (with one
// rank they must equal plain batch norm and leave gradients as they are). Multi-GPU sums are the
// same code as the multi-rank Gloo tests of test_dist.cpp.
#include <doctest/doctest.h>

#include <chrono>

#include <torch/torch.h>

#include "core/compat.hpp"
#include "dist/comm.hpp"
#include "dist/grad_reducer.hpp"
#include "dist/sync_batch_norm.hpp"

using namespace std::chrono_literals;

TEST_CASE("nccl: a one-rank group runs every collective, SyncBN and the reducer on CUDA tensors") {
  if (!synth::compat::cuda_available()) {
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
  for (size_t k = 0; k < params.size(); ++k) CHECK((params[k].grad() - alone[k]).abs().max().item<double>() < 1e-6);
}
