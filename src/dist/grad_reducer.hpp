// Sums parameter gradients over the ranks of a group while backward is still running, as PyTorch's
// DistributedDataParallel does (Li et al. 2020, "PyTorch Distributed", Sec. 3.2): parameters are
// packed in reverse registration order (roughly the order backward produces their gradients)
// into buckets of about `bucket_bytes`; a hook on each parameter copies its gradient into its
// bucket, and a full bucket is all-reduced asynchronously while autograd computes the rest.
// Buckets start strictly in index order on every rank - collectives must be issued in the same
// order everywhere - so a bucket that fills early waits for its predecessors.
//
// Sum, not mean: the trainer scales each rank's loss by 1 / (images in the global step), so the
// sum over ranks is exactly the one-rank gradient whatever the split (see trainer.cpp).
#pragma once
#include <cstddef>
#include <memory>
#include <mutex>
#include <vector>

#include <torch/torch.h>

#include "dist/comm.hpp"

namespace synth {

class GradReducer {
 public:
  // `params` must be the same list, in the same order, on every rank of `comm`.
  GradReducer(std::vector<torch::Tensor> params, Comm& comm, size_t bucket_bytes = size_t(25) << 20);
  ~GradReducer();
  GradReducer(const GradReducer&) = delete;
  GradReducer& operator=(const GradReducer&) = delete;

  // Call before each backward; then after it, finish() waits for every bucket and writes the
  // summed gradients into each parameter's .grad(). A parameter that got no gradient this step
  // contributes zeros (every rank must still take part in its bucket).
  void prepare();
  void finish();
  size_t buckets() const { return buckets_.size(); }

 private:
  struct Bucket {
    torch::Tensor flat;
    std::vector<size_t> params;
    size_t pending = 0;
    bool launched = false;
    std::unique_ptr<PendingOp> op;
  };
  void on_grad(size_t param, const torch::Tensor& grad);
  void launch_ready();  // under mutex_

  std::vector<torch::Tensor> params_;
  std::vector<size_t> bucket_of_, offset_of_;
  std::vector<bool> got_;
  std::vector<Bucket> buckets_;
  std::vector<unsigned> hooks_;
  size_t next_launch_ = 0;
  Comm& comm_;
  std::mutex mutex_;
};

}  // namespace synth
