// latkit's CPU kernel for the weight gradient of a depthwise convolution (see cpu_kernels.py).
//
// oneDNN computes a depthwise convolution's weight gradient fast only for 3x3 kernels; for 5x5 and
// 7x7 it takes a generic grouped-convolution path that costs 5-30x the forward pass. This is the
// direct sum, vectorised over 16 channels of a channels-last map:
//   gw[c, i, j] = sum over n, ho, wo of x[n, ho*s + i - p, wo*s + j - p, c] * g[n, ho, wo, c]
// one (image, 16-channel block) per task, its K*K x 16 sums in L1, summed over images at the end.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>

namespace {

constexpr int64_t kBlock = 16;
constexpr int64_t kMaxK = 9;

torch::Tensor dw_weight_grad(const torch::Tensor& x_in, const torch::Tensor& g_in, int64_t k,
                             int64_t s, int64_t p) {
  TORCH_CHECK(x_in.dim() == 4 && g_in.dim() == 4, "x and g must be 4-d (N, C, H, W)");
  TORCH_CHECK(x_in.scalar_type() == at::kFloat && g_in.scalar_type() == at::kFloat,
              "x and g must be float32");
  TORCH_CHECK(x_in.device().is_cpu() && g_in.device().is_cpu(), "x and g must be on the CPU");
  TORCH_CHECK(k >= 1 && k <= kMaxK && s >= 1 && p >= 0, "kernel 1..9, stride >= 1, padding >= 0");
  TORCH_CHECK(x_in.size(0) == g_in.size(0) && x_in.size(1) == g_in.size(1),
              "x and g must have the same batch and channels");
  // (N, H, W, C) contiguous: a view for channels-last tensors, a copy otherwise
  const torch::Tensor x = x_in.permute({0, 2, 3, 1}).contiguous();
  const torch::Tensor g = g_in.permute({0, 2, 3, 1}).contiguous();
  const int64_t N = x.size(0), H = x.size(1), W = x.size(2), C = x.size(3);
  const int64_t Ho = g.size(1), Wo = g.size(2);
  TORCH_CHECK(Ho == (H + 2 * p - k) / s + 1 && Wo == (W + 2 * p - k) / s + 1,
              "g's spatial size does not match x, kernel, stride and padding");
  const int64_t blocks = (C + kBlock - 1) / kBlock;
  const int64_t kk = k * k;
  torch::Tensor part = torch::empty({N, blocks, kk, kBlock}, x.options());
  const float* xp = x.data_ptr<float>();
  const float* gp = g.data_ptr<float>();
  float* pp = part.data_ptr<float>();
  at::parallel_for(0, N * blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t n = item / blocks;
      const int64_t c0 = (item % blocks) * kBlock;
      const int64_t cw = std::min(kBlock, C - c0);
      alignas(64) float acc[kMaxK * kMaxK][kBlock] = {};
      alignas(64) float gl[kBlock] = {};
      for (int64_t ho = 0; ho < Ho; ++ho) {
        const int64_t hb = ho * s - p;
        const int64_t i0 = std::max<int64_t>(0, -hb), i1 = std::min<int64_t>(k, H - hb);
        for (int64_t wo = 0; wo < Wo; ++wo) {
          const float* gv = gp + ((n * Ho + ho) * Wo + wo) * C + c0;
          for (int64_t c = 0; c < cw; ++c) gl[c] = gv[c];
          const int64_t wb = wo * s - p;
          const int64_t j0 = std::max<int64_t>(0, -wb), j1 = std::min<int64_t>(k, W - wb);
          for (int64_t i = i0; i < i1; ++i) {
            const float* xr = xp + ((n * H + hb + i) * W + wb) * C + c0;
            if (cw == kBlock) {
              for (int64_t j = j0; j < j1; ++j) {
                const float* xv = xr + j * C;
                float* a = acc[i * k + j];
#pragma omp simd
                for (int64_t c = 0; c < kBlock; ++c) a[c] += xv[c] * gl[c];
              }
            } else {
              for (int64_t j = j0; j < j1; ++j) {
                const float* xv = xr + j * C;
                float* a = acc[i * k + j];
                for (int64_t c = 0; c < cw; ++c) a[c] += xv[c] * gl[c];
              }
            }
          }
        }
      }
      float* out = pp + item * kk * kBlock;
      for (int64_t t = 0; t < kk; ++t)
        for (int64_t c = 0; c < kBlock; ++c) out[t * kBlock + c] = acc[t][c];
    }
  });
  // (N, blocks, K*K, 16) -> summed over images -> (blocks * 16, K*K) -> the first C channels
  torch::Tensor sum = part.sum(0).permute({0, 2, 1}).reshape({blocks * kBlock, kk}).narrow(0, 0, C);
  return sum.reshape({C, 1, k, k}).contiguous();
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("dw_weight_grad", &dw_weight_grad,
        "weight gradient of a depthwise convolution (x, g, kernel, stride, padding)");
}
