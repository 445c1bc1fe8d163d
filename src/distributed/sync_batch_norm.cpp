#include "distributed/sync_batch_norm.hpp"

#include <cstdint>
#include <string>
#include <vector>

#include "core/error.hpp"

namespace synth {
namespace bn {
namespace {

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

// The statistics' dtype: at::acc_type of x on CUDA (fp32 for fp16/bf16, else x's own).
torch::ScalarType stat_type(const torch::Tensor& x) {
  return c10::isReducedFloatingType(x.scalar_type()) ? torch::kFloat32 : x.scalar_type();
}

// 1 / sqrt(var + eps), 0 where var and eps are both 0 (the CUDA kernels' InvStd).
torch::Tensor inverse_std(const torch::Tensor& var, double eps) {
  const torch::Tensor invstd = (var + eps).rsqrt();
  return eps == 0 ? torch::where(var == 0, torch::zeros_like(invstd), invstd) : invstd;
}

}  // namespace

std::tuple<torch::Tensor, torch::Tensor> cpu_stats(const torch::Tensor& x, double eps) {
  // Two passes, the mean and then the mean squared deviation, as CPU batch norm's
  // batch_norm_cpu_collect_stats: no E[x^2] - E[x]^2 cancellation, and the rounding of one-rank
  // CPU training (tests/train/test_distributed: 2 and 3 ranks ended 2e-8 and 8e-8 from one rank,
  // against 1.5e-4 with at::var_mean's Welford).
  const std::vector<int64_t> dims = reduce_dims(x);
  const torch::Tensor xf = x.to(stat_type(x));
  const torch::Tensor mean = xf.mean(dims);
  const torch::Tensor var = (xf - mean.view(channel_shape(x))).square_().mean(dims);
  return {mean, inverse_std(var, eps)};
}

std::tuple<torch::Tensor, torch::Tensor> cpu_gather_stats_with_counts(const torch::Tensor& x, const torch::Tensor& mean,
                                                                      const torch::Tensor& invstd,
                                                                      const torch::Tensor& running_mean,
                                                                      const torch::Tensor& running_var,
                                                                      double momentum, double eps,
                                                                      const torch::Tensor& counts) {
  (void)x;  // the CUDA op takes x for its dtype only
  torch::NoGradGuard no_grad;
  // Chan et al.'s pairwise combination, all ranks at once: M2_r = n_r (1/invstd_r^2 - eps), as
  // batch_norm_reduce_statistics_kernel recovers each rank's variance.
  const torch::Tensor n_r = counts.narrow(0, 0, mean.size(0)).to(mean.scalar_type()).unsqueeze(1);  // [R, 1]
  const torch::Tensor n = n_r.sum(0);                                                                 // [1]
  const torch::Tensor m = (n_r * mean).sum(0) / n;
  const torch::Tensor m2_r = (invstd.pow(-2) - eps) * n_r;
  const torch::Tensor m2 = (m2_r + n_r * (mean - m).square()).sum(0);
  if (running_mean.defined())
    running_mean.copy_(running_mean.to(m.scalar_type()) * (1 - momentum) + m * momentum);
  if (running_var.defined())  // unbiased, as torch's BatchNorm; a tensor op, so no host sync
    running_var.copy_(running_var.to(m.scalar_type()) * (1 - momentum) + m2 / (n - 1) * momentum);
  return {m, (m2 / n + eps).rsqrt()};
}

torch::Tensor cpu_elemt(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                        const torch::Tensor& mean, const torch::Tensor& invstd, double eps) {
  (void)eps;  // training mode: invstd already holds it (batch_norm_elemt ignores eps too)
  const std::vector<int64_t> shape = channel_shape(x);
  const torch::Tensor scale = weight.defined() ? invstd * weight.to(invstd.scalar_type()) : invstd;
  // (x - mean) first, as the CUDA kernel: x * scale + shift would cancel for a large mean. The
  // subtraction promotes to the statistics' dtype and keeps x's layout; the rest is in place.
  torch::Tensor y = x - mean.view(shape);
  if (bias.defined())
    at::addcmul_out(y, bias.to(y.scalar_type()).view(shape), y, scale.view(shape));
  else
    y.mul_(scale.view(shape));
  return y.to(x.scalar_type());
}

std::tuple<torch::Tensor, torch::Tensor, torch::Tensor, torch::Tensor> cpu_backward_reduce(
    const torch::Tensor& dy, const torch::Tensor& x, const torch::Tensor& mean, const torch::Tensor& invstd,
    const torch::Tensor& weight, bool input_g, bool weight_g, bool bias_g) {
  const std::vector<int64_t> dims = reduce_dims(x);
  const torch::Tensor sum_dy = dy.sum(dims, false, mean.scalar_type());
  const torch::Tensor sum_dy_xmu = (x - mean.view(channel_shape(x))).mul_(dy).sum(dims);
  const torch::ScalarType param_type = weight.defined() ? weight.scalar_type() : mean.scalar_type();
  torch::Tensor grad_weight, grad_bias;
  if (weight_g) grad_weight = (sum_dy_xmu * invstd).to(param_type);
  if (bias_g) grad_bias = sum_dy.to(param_type);
  if (!input_g) return {torch::Tensor(), torch::Tensor(), grad_weight, grad_bias};
  return {sum_dy, sum_dy_xmu, grad_weight, grad_bias};
}

torch::Tensor cpu_backward_elemt(const torch::Tensor& dy, const torch::Tensor& x, const torch::Tensor& mean,
                                 const torch::Tensor& invstd, const torch::Tensor& weight, const torch::Tensor& sum_dy,
                                 const torch::Tensor& sum_dy_xmu, const torch::Tensor& counts) {
  const std::vector<int64_t> shape = channel_shape(x);
  // dx = (dy - sum_dy / n - (x - mean) * invstd^2 * sum_dy_xmu / n) * invstd * w, regrouped as
  // dy * a + c - (x - mean) * b so that two passes over x and dy do it.
  const torch::Tensor norm = counts.sum().to(mean.scalar_type()).reciprocal();  // 1 / n, on the device
  const torch::Tensor a = weight.defined() ? invstd * weight.to(invstd.scalar_type()) : invstd;
  const torch::Tensor b = invstd.square() * sum_dy_xmu * norm * a;
  const torch::Tensor c = -(sum_dy * norm) * a;
  torch::Tensor dx = x - mean.view(shape);
  at::addcmul_out(dx, c.view(shape), dx, -b.view(shape));
  dx.addcmul_(dy, a.view(shape));
  return dx.to(x.scalar_type());
}

// The dispatch: ATen's CUDA kernels (torch.nn.SyncBatchNorm's) on CUDA, the twins elsewhere.
std::tuple<torch::Tensor, torch::Tensor> stats(const torch::Tensor& x, double eps) {
  return x.is_cuda() ? at::batch_norm_stats(x, eps) : cpu_stats(x, eps);
}

std::tuple<torch::Tensor, torch::Tensor> gather_stats_with_counts(const torch::Tensor& x, const torch::Tensor& mean,
                                                                  const torch::Tensor& invstd,
                                                                  const torch::Tensor& running_mean,
                                                                  const torch::Tensor& running_var, double momentum,
                                                                  double eps, const torch::Tensor& counts) {
  if (x.is_cuda())
    return at::batch_norm_gather_stats_with_counts(x, mean, invstd, running_mean, running_var, momentum, eps, counts);
  return cpu_gather_stats_with_counts(x, mean, invstd, running_mean, running_var, momentum, eps, counts);
}

torch::Tensor elemt(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                    const torch::Tensor& mean, const torch::Tensor& invstd, double eps) {
  return x.is_cuda() ? at::batch_norm_elemt(x, weight, bias, mean, invstd, eps)
                     : cpu_elemt(x, weight, bias, mean, invstd, eps);
}

std::tuple<torch::Tensor, torch::Tensor, torch::Tensor, torch::Tensor> backward_reduce(
    const torch::Tensor& dy, const torch::Tensor& x, const torch::Tensor& mean, const torch::Tensor& invstd,
    const torch::Tensor& weight, bool input_g, bool weight_g, bool bias_g) {
  if (x.is_cuda()) return at::batch_norm_backward_reduce(dy, x, mean, invstd, weight, input_g, weight_g, bias_g);
  return cpu_backward_reduce(dy, x, mean, invstd, weight, input_g, weight_g, bias_g);
}

torch::Tensor backward_elemt(const torch::Tensor& dy, const torch::Tensor& x, const torch::Tensor& mean,
                             const torch::Tensor& invstd, const torch::Tensor& weight, const torch::Tensor& sum_dy,
                             const torch::Tensor& sum_dy_xmu, const torch::Tensor& counts) {
  if (x.is_cuda()) return at::batch_norm_backward_elemt(dy, x, mean, invstd, weight, sum_dy, sum_dy_xmu, counts);
  return cpu_backward_elemt(dy, x, mean, invstd, weight, sum_dy, sum_dy_xmu, counts);
}

}  // namespace bn

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Function::apply cannot take undefined tensors (autograd's VariableInfo asks them for a device),
// so an absent weight, bias or running statistic travels as an empty tensor (C >= 1 always).
torch::Tensor absent_as_empty(const torch::Tensor& t, const torch::Tensor& x) {
  return t.defined() ? t : torch::empty({0}, x.options().requires_grad(false));
}
torch::Tensor present(const torch::Tensor& t) { return t.numel() > 0 ? t : torch::Tensor(); }

// torch.nn.SyncBatchNorm's autograd function (torch/nn/modules/_functions.py), minus its one
// host sync (the mask that drops empty ranks: ours never are).
class SyncBatchNormFn : public torch::autograd::Function<SyncBatchNormFn> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& input, const torch::Tensor& weight_or_empty,
                               const torch::Tensor& bias_or_empty, const torch::Tensor& running_mean_or_empty,
                               const torch::Tensor& running_var_or_empty, double momentum, double eps, Comm* comm) {
    const torch::Tensor weight = present(weight_or_empty), bias = present(bias_or_empty);
    const torch::Tensor running_mean = present(running_mean_or_empty), running_var = present(running_var_or_empty);
    // The kernels take contiguous or channels-last tensors; anything else is made contiguous.
    const torch::Tensor x = input.contiguous(input.suggest_memory_format());
    const int64_t c = x.size(1);
    auto [mean, invstd] = bn::stats(x, eps);
    // One row per rank, [mean (C), invstd (C), count], the count in the statistics' dtype (exact
    // below 2^24 values per channel per rank in fp32, as in torch).
    const torch::Tensor count = torch::full({1}, double(x.numel() / c), mean.options());
    const torch::Tensor all = comm->all_gather(torch::cat({mean, invstd, count}));  // [R, 2C + 1]
    const torch::Tensor counts =
        all.select(1, 2 * c).to(running_mean.defined() ? running_mean.scalar_type() : x.scalar_type());
    std::tie(mean, invstd) = bn::gather_stats_with_counts(x, all.narrow(1, 0, c), all.narrow(1, c, c), running_mean,
                                                          running_var, momentum, eps, counts);
    ctx->save_for_backward({x, weight, mean, invstd, counts.to(torch::kInt32)});
    ctx->saved_data["comm"] = int64_t(reinterpret_cast<intptr_t>(comm));  // outlives the graph (header)
    return bn::elemt(x, weight, bias, mean, invstd, eps);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const variable_list saved = ctx->get_saved_variables();
    const torch::Tensor &x = saved[0], &weight = saved[1], &mean = saved[2], &invstd = saved[3], &counts = saved[4];
    Comm* comm = reinterpret_cast<Comm*>(intptr_t(ctx->saved_data["comm"].toInt()));
    const torch::Tensor dy = grad_outputs[0].contiguous(x.suggest_memory_format());
    const bool weight_g = weight.defined() && ctx->needs_input_grad(1), bias_g = ctx->needs_input_grad(2);
    // sum_dy always: it is also the bias gradient when there is no weight (the CUDA op sizes its
    // grad_bias after the weight).
    auto [sum_dy, sum_dy_xmu, dw, db] =
        bn::backward_reduce(dy, x, mean, invstd, weight, true, weight_g, bias_g && weight.defined());
    if (bias_g && !weight.defined()) db = sum_dy.clone();  // the engine casts it to the bias's dtype
    torch::Tensor dx;
    if (ctx->needs_input_grad(0)) {  // the same graph, so the same collectives, on every rank
      const int64_t c = x.size(1);
      torch::Tensor sums = torch::cat({sum_dy, sum_dy_xmu});
      comm->all_reduce_sum(sums);
      const torch::Tensor w = weight.defined() ? weight.to(mean.scalar_type()) : weight;
      dx = bn::backward_elemt(dy, x, mean, invstd, w, sums.narrow(0, 0, c), sums.narrow(0, c, c), counts);
    }
    return {dx, dw, db, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor sync_batch_norm(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                              torch::Tensor running_mean, torch::Tensor running_var, double momentum, double eps,
                              Comm& comm) {
  if (x.dim() < 2 || x.numel() == 0)
    throw Error("sync_batch_norm on rank " + std::to_string(comm.rank()) +
                ": expected a non-empty N x C x ... input, got " + std::to_string(x.dim()) + "-d with " +
                std::to_string(x.numel()) + " values");
  return SyncBatchNormFn::apply(x, absent_as_empty(weight, x), absent_as_empty(bias, x),
                                absent_as_empty(running_mean, x), absent_as_empty(running_var, x), momentum, eps,
                                &comm);
}

}  // namespace synth
