#include "dist/grad_reducer.hpp"

#include "core/error.hpp"

namespace synth {

GradReducer::GradReducer(std::vector<torch::Tensor> params, Comm& comm, size_t bucket_bytes)
    : params_(std::move(params)), comm_(comm) {
  bucket_of_.assign(params_.size(), 0);
  offset_of_.assign(params_.size(), 0);
  got_.assign(params_.size(), false);
  std::vector<std::vector<size_t>> groups;
  size_t bytes = bucket_bytes;
  for (size_t k = params_.size(); k-- > 0;) {
    const torch::Tensor& p = params_[k];
    if (!p.requires_grad()) continue;
    const size_t b = size_t(p.numel()) * p.element_size();
    // Dtype and device are per bucket; a new bucket also starts when the current one is full.
    if (groups.empty() || bytes + b > bucket_bytes || params_[groups.back().front()].scalar_type() != p.scalar_type() ||
        params_[groups.back().front()].device() != p.device()) {
      groups.emplace_back();
      bytes = 0;
    }
    groups.back().push_back(k);
    bytes += b;
  }
  for (const std::vector<size_t>& g : groups) {
    Bucket bucket;
    int64_t n = 0;
    for (size_t k : g) {
      bucket_of_[k] = buckets_.size();
      offset_of_[k] = size_t(n);
      n += params_[k].numel();
    }
    bucket.flat = torch::zeros({n}, params_[g.front()].options().requires_grad(false));
    bucket.params = g;
    buckets_.push_back(std::move(bucket));
  }
  for (size_t k = 0; k < params_.size(); ++k) {
    if (!params_[k].requires_grad()) continue;
    hooks_.push_back(params_[k].register_hook([this, k](torch::Tensor grad) {
      on_grad(k, grad);
      return torch::Tensor();  // the gradient itself is unchanged; finish() overwrites .grad
    }));
  }
}

GradReducer::~GradReducer() {
  size_t h = 0;
  for (size_t k = 0; k < params_.size(); ++k)
    if (params_[k].requires_grad()) params_[k].remove_hook(hooks_[h++]);
}

void GradReducer::prepare() {
  std::lock_guard<std::mutex> lock(mutex_);
  for (Bucket& b : buckets_) {
    b.pending = b.params.size();
    b.launched = false;
    b.op.reset();
  }
  std::fill(got_.begin(), got_.end(), false);
  next_launch_ = 0;
}

void GradReducer::on_grad(size_t k, const torch::Tensor& grad) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (got_[k]) throw Error("GradReducer: parameter " + std::to_string(k) + " received two gradients in one backward");
  got_[k] = true;
  Bucket& b = buckets_[bucket_of_[k]];
  b.flat.narrow(0, int64_t(offset_of_[k]), params_[k].numel()).view_as(params_[k]).copy_(grad);
  if (--b.pending == 0) launch_ready();
}

void GradReducer::launch_ready() {
  while (next_launch_ < buckets_.size() && buckets_[next_launch_].pending == 0) {
    Bucket& b = buckets_[next_launch_++];
    b.op = std::make_unique<PendingOp>(comm_.all_reduce_sum_async(b.flat));
    b.launched = true;
  }
}

void GradReducer::finish() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (Bucket& b : buckets_) {
      for (size_t k : b.params) {
        if (got_[k]) continue;
        b.flat.narrow(0, int64_t(offset_of_[k]), params_[k].numel()).zero_();
        got_[k] = true;
        --b.pending;
      }
    }
    launch_ready();
  }
  for (Bucket& b : buckets_) {
    b.op->wait();
    for (size_t k : b.params) {
      torch::Tensor& p = params_[k];
      const torch::Tensor sum = b.flat.narrow(0, int64_t(offset_of_[k]), p.numel()).view_as(p);
      if (p.grad().defined())
        p.mutable_grad().copy_(sum);
      else
        p.mutable_grad() = sum.clone();
    }
  }
}

}  // namespace synth
