// Sums parameter gradients over the ranks of a group while backward is still running, as PyTorch's
// DistributedDataParallel does (Li et al. 2020, "PyTorch Distributed", Sec. 3.2): parameters are
// packed in reverse registration order (roughly the order backward produces their gradients)
// into buckets of about `bucket_bytes`, and a full bucket is all-reduced asynchronously while
// autograd computes the rest. Buckets start strictly in index order on every rank - collectives
// must be issued in the same order everywhere - so a bucket that fills early waits for its
// predecessors.
//
// Gradients are views into the buckets, as DDP's gradient_as_bucket_view: prepare() zeroes the
// buckets and points each parameter's .grad() at its slice, laid out with the parameter's own
// strides (a channels-last weight keeps a channels-last gradient), so autograd's AccumulateGrad
// adds into the bucket in place; a post-hook on each parameter's grad accumulator (as DDP's
// reducer.cpp) marks it ready. Nothing is copied in or out; after finish() .grad() holds the sum.
//
// Sum, not mean: the trainer scales each rank's loss by 1 / (images in the global step), so the
// sum over ranks is exactly the one-rank gradient whatever the split (see trainer.cpp).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include <torch/torch.h>

#include "distributed/comm.hpp"

namespace synth {

class GradReducer {
 public:
  // `params` must be the same list, in the same order, on every rank of `comm`, and stay on their
  // device and dtype while the reducer lives (their grad accumulators carry its hooks).
  GradReducer(std::vector<torch::Tensor> params, Comm& comm, size_t bucket_bytes = size_t(25) << 20);
  ~GradReducer();
  GradReducer(const GradReducer&) = delete;
  GradReducer& operator=(const GradReducer&) = delete;

  // Call before each backward (after any zero_grad: set_to_none drops the views, and prepare()
  // re-establishes them); then after it, finish() waits for every bucket, after which each
  // parameter's .grad() holds the gradient summed over the ranks. A parameter that got no
  // gradient this step contributes zeros (every rank must still take part in its bucket).
  void prepare();
  void finish();
  size_t buckets() const { return buckets_.size(); }
  const torch::Tensor& bucket(size_t i) const { return buckets_[i].flat; }  // the flat gradient storage

 private:
  struct Bucket {
    torch::Tensor flat;
    std::vector<size_t> params;
    size_t pending = 0;
    std::unique_ptr<PendingOp> op;
  };
  torch::Tensor view_of(size_t param) const;
  void bind_grad(size_t param);
  void on_ready(size_t param);
  void launch_ready();  // under mutex_

  std::vector<torch::Tensor> params_;
  std::vector<torch::Tensor> views_;  // each parameter's gradient: a view into its bucket
  std::vector<size_t> bucket_of_, offset_of_;
  std::vector<bool> got_;
  std::vector<Bucket> buckets_;
  // Owned, as DDP's reducer does: the parameter only holds a weak reference to its accumulator,
  // which would otherwise die (with our hook) between backward passes.
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators_;
  std::vector<uintptr_t> hook_keys_;
  size_t next_launch_ = 0;
  bool prepared_ = false;  // between prepare() and finish()
  Comm& comm_;
  std::mutex mutex_;
};

}  // namespace synth
