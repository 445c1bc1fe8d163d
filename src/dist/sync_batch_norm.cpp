#include "dist/sync_batch_norm.hpp"

#include <cstdint>
#include <vector>

namespace synth {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Shape [1, C, 1, ...] broadcasting a per-channel vector against x.
std::vector<int64_t> channel_shape(const torch::Tensor& x) {
  std::vector<int64_t> s(size_t(x.dim()), 1);
  s[1] = x.size(1);
  return s;
}

std::vector<int64_t> reduce_dims(const torch::Tensor& x) {
  std::vector<int64_t> d{0};
  for (int64_t i = 2; i < x.dim(); ++i) d.push_back(i);
  return d;
}

class SyncBatchNormFn : public torch::autograd::Function<SyncBatchNormFn> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& weight,
                               const torch::Tensor& bias, torch::Tensor running_mean, torch::Tensor running_var,
                               double momentum, double eps, Comm* comm) {
    const int64_t c = x.size(1);
    const std::vector<int64_t> shape = channel_shape(x), dims = reduce_dims(x);
    const torch::Tensor xf = x.to(torch::kFloat32);
    const double n_local = double(x.numel() / c);
    const torch::Tensor mean_local = xf.mean(dims);
    const torch::Tensor m2_local = (xf - mean_local.view(shape)).square().sum(dims);
    // One row per rank: [n_r, m_r (C), M2_r (C)].
    const torch::Tensor row = torch::cat({torch::full({1}, n_local, xf.options()), mean_local, m2_local});
    const torch::Tensor all = comm->all_gather(row);
    const torch::Tensor n_r = all.select(1, 0).unsqueeze(1);  // [R, 1]
    const torch::Tensor m_r = all.narrow(1, 1, c), m2_r = all.narrow(1, 1 + c, c);
    const torch::Tensor n = n_r.sum();
    const torch::Tensor mean = (n_r * m_r).sum(0) / n;
    const torch::Tensor m2 = (m2_r + n_r * (m_r - mean).square()).sum(0);
    const torch::Tensor var = m2 / n;
    const torch::Tensor invstd = (var + eps).rsqrt();
    {
      torch::NoGradGuard no_grad;
      const double count = n.item<double>();
      running_mean.mul_(1 - momentum).add_(mean.to(running_mean.scalar_type()), momentum);
      running_var.mul_(1 - momentum).add_((m2 / std::max(count - 1, 1.0)).to(running_var.scalar_type()), momentum);
    }
    const torch::Tensor xhat = (xf - mean.view(shape)) * invstd.view(shape);
    torch::Tensor y = xhat;
    if (weight.defined()) y = y * weight.to(torch::kFloat32).view(shape);
    if (bias.defined()) y = y + bias.to(torch::kFloat32).view(shape);
    ctx->save_for_backward({x, weight, mean, invstd, n});
    ctx->saved_data["comm"] = int64_t(reinterpret_cast<intptr_t>(comm));  // outlives the graph (header)
    return y.to(x.scalar_type());
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const variable_list saved = ctx->get_saved_variables();
    const torch::Tensor &x = saved[0], &weight = saved[1], &mean = saved[2], &invstd = saved[3], &n = saved[4];
    Comm* comm = reinterpret_cast<Comm*>(intptr_t(ctx->saved_data["comm"].toInt()));
    const std::vector<int64_t> shape = channel_shape(x), dims = reduce_dims(x);
    const torch::Tensor dy = grad_outputs[0].to(torch::kFloat32);
    const torch::Tensor xmu = x.to(torch::kFloat32) - mean.view(shape);
    const torch::Tensor sum_dy_local = dy.sum(dims);
    const torch::Tensor sum_dy_xmu_local = (dy * xmu).sum(dims);
    torch::Tensor sums = torch::cat({sum_dy_local, sum_dy_xmu_local});
    comm->all_reduce_sum(sums);
    const int64_t c = x.size(1);
    const torch::Tensor sum_dy = sums.narrow(0, 0, c), sum_dy_xmu = sums.narrow(0, c, c);
    const torch::Tensor w = weight.defined() ? weight.to(torch::kFloat32) : torch::ones_like(mean);
    const torch::Tensor dx = (dy - (sum_dy / n).view(shape) - xmu * (invstd.square() * sum_dy_xmu / n).view(shape)) *
                             (invstd * w).view(shape);
    torch::Tensor dw, db;
    if (weight.defined()) dw = (sum_dy_xmu_local * invstd).to(weight.scalar_type());
    if (weight.defined()) db = sum_dy_local.to(weight.scalar_type());
    return {dx.to(x.scalar_type()), dw, db, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(),
            torch::Tensor()};
  }
};

}  // namespace

torch::Tensor sync_batch_norm(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                              torch::Tensor running_mean, torch::Tensor running_var, double momentum, double eps,
                              Comm& comm) {
  return SyncBatchNormFn::apply(x, weight, bias, running_mean, running_var, momentum, eps, &comm);
}

}  // namespace synth
