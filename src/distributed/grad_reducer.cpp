#include "distributed/grad_reducer.hpp"

#include <string>

#include <torch/csrc/autograd/utils/lambda_post_hook.h>

#include "core/error.hpp"

namespace synth {
namespace {

std::string param_name(size_t k) { return "GradReducer: parameter " + std::to_string(k); }

// Parameters grouped into buckets: reverse registration order, one dtype and device per bucket,
// a new bucket when the current one would exceed bucket_bytes.
std::vector<std::vector<size_t>> group_params(const std::vector<torch::Tensor>& params, size_t bucket_bytes) {
  std::vector<std::vector<size_t>> groups;
  size_t bytes = bucket_bytes;
  for (size_t k = params.size(); k-- > 0;) {
    const torch::Tensor& p = params[k];
    if (!p.requires_grad()) continue;
    const size_t b = size_t(p.numel()) * p.element_size();
    if (groups.empty() || bytes + b > bucket_bytes || params[groups.back().front()].scalar_type() != p.scalar_type() ||
        params[groups.back().front()].device() != p.device()) {
      groups.emplace_back();
      bytes = 0;
    }
    groups.back().push_back(k);
    bytes += b;
  }
  return groups;
}

}  // namespace

GradReducer::GradReducer(std::vector<torch::Tensor> params, Comm& comm, size_t bucket_bytes)
    : params_(std::move(params)), comm_(comm) {
  const size_t n_params = params_.size();
  views_.resize(n_params);
  bucket_of_.assign(n_params, 0);
  offset_of_.assign(n_params, 0);
  got_.assign(n_params, false);
  accumulators_.resize(n_params);
  hook_keys_.assign(n_params, 0);
  for (const std::vector<size_t>& g : group_params(params_, bucket_bytes)) {
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
  for (size_t k = 0; k < n_params; ++k) {
    const torch::Tensor& p = params_[k];
    if (!p.requires_grad()) continue;
    if (!p.is_leaf()) throw Error(param_name(k) + " is not a leaf tensor: only leaves accumulate gradients");
    views_[k] = view_of(k);
    // A hook after AccumulateGrad (DDP's reducer.cpp: grad_accumulator(p)->add_post_hook): it runs
    // once per backward, after the gradient is in .grad, however often p is used.
    accumulators_[k] = torch::autograd::impl::grad_accumulator(p);
    hook_keys_[k] = accumulators_[k]->add_post_hook(std::make_unique<torch::autograd::utils::LambdaPostHook>(
        [this, k](const torch::autograd::variable_list& outputs, const torch::autograd::variable_list&) {
          on_ready(k);
          return outputs;
        }));
  }
}

GradReducer::~GradReducer() {
  for (size_t k = 0; k < params_.size(); ++k)
    if (accumulators_[k]) accumulators_[k]->del_post_hook(hook_keys_[k]);
}

torch::Tensor GradReducer::view_of(size_t k) const {
  const torch::Tensor& p = params_[k];
  const torch::Tensor slice = buckets_[bucket_of_[k]].flat.narrow(0, int64_t(offset_of_[k]), p.numel());
  // The parameter's own strides when they describe a dense block (DDP's initialize_bucket_views),
  // so a channels-last weight gets a channels-last gradient; row-major otherwise.
  const torch::Tensor view = p.is_non_overlapping_and_dense() ? slice.as_strided(p.sizes(), p.strides())
                                                              : slice.view(p.sizes());
  // detach(): the same memory, but not an autograd view - LibTorch's Optimizer::zero_grad calls
  // grad.detach_(), which refuses views ("Can't detach views in-place", VariableTypeManual.cpp).
  return view.detach();
}

// Points p.grad() at its bucket slice (re-made if p's layout changed since).
void GradReducer::bind_grad(size_t k) {
  const torch::Tensor& p = params_[k];
  if (p.is_non_overlapping_and_dense() && views_[k].strides() != p.strides()) views_[k] = view_of(k);
  if (!p.grad().defined() || !p.grad().is_same(views_[k])) p.mutable_grad() = views_[k];
}

void GradReducer::prepare() {
  std::lock_guard<std::mutex> lock(mutex_);
  for (Bucket& b : buckets_) {
    b.flat.zero_();
    b.pending = b.params.size();
    b.op.reset();
  }
  for (size_t k = 0; k < params_.size(); ++k) {
    if (!accumulators_[k]) continue;
    // Module::to() to another device or dtype gives p a new accumulator, without our hook.
    if (torch::autograd::impl::try_get_grad_accumulator(params_[k]) != accumulators_[k])
      throw Error(param_name(k) +
                  " changed device or dtype after the reducer was built; build the reducer after moving the model");
    bind_grad(k);
  }
  std::fill(got_.begin(), got_.end(), false);
  next_launch_ = 0;
  prepared_ = true;
}

void GradReducer::on_ready(size_t k) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!prepared_) throw Error(param_name(k) + " received a gradient outside prepare() ... finish()");
  if (got_[k]) throw Error(param_name(k) + " received two gradients in one backward");
  got_[k] = true;
  const torch::Tensor& grad = params_[k].grad();
  if (!grad.is_same(views_[k])) {
    // .grad was replaced (zero_grad() after prepare(), or create_graph's out-of-place sum): copy
    // it into the bucket, as DDP's reducer does for a gradient that is not its bucket view.
    torch::NoGradGuard no_grad;
    views_[k].copy_(grad);
    params_[k].mutable_grad() = views_[k];
  }
  Bucket& b = buckets_[bucket_of_[k]];
  if (--b.pending == 0) launch_ready();
}

void GradReducer::launch_ready() {
  while (next_launch_ < buckets_.size() && buckets_[next_launch_].pending == 0) {
    Bucket& b = buckets_[next_launch_++];
    b.op = std::make_unique<PendingOp>(comm_.all_reduce_sum_async(b.flat));
  }
}

void GradReducer::finish() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!prepared_) throw Error("GradReducer::finish() without prepare() before the backward pass");
    for (Bucket& b : buckets_) {
      for (size_t k : b.params) {
        if (got_[k]) continue;
        // No gradient this step: its slice is still prepare()'s zeros.
        bind_grad(k);
        got_[k] = true;
        --b.pending;
      }
    }
    launch_ready();
    prepared_ = false;
  }
  for (Bucket& b : buckets_) b.op->wait();
}

}  // namespace synth
