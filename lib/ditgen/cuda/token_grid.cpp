#include "ditgen/cuda/token_grid.h"

#include "ditgen/cuda/dispatch.h"

#ifdef DITGEN_HAVE_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "ditgen/cuda/token_grid_kernels.h"
#endif

namespace ditgen::cuda {

namespace {

// The shapes both paths need (the kernels index by them, so they are checked before either runs).
void check_tokens(const at::Tensor& t, int64_t tokens, const char* what) {
  TORCH_CHECK(t.dim() == 3 && t.size(1) == tokens, what, " must be [B, ", tokens, ", D], got ", t.sizes());
}

void check_grids(int grid, int grid_h, int grid_w) {
  TORCH_CHECK(grid >= 1 && grid_h >= grid && grid_w >= grid, "a ", grid, "x", grid, " grid does not fit ", grid_h,
              "x", grid_w, " tokens");
}

}  // namespace

at::Tensor pool_tokens_reference(const at::Tensor& x, int grid_h, int grid_w, int grid) {
  const int64_t B = x.size(0), D = x.size(2);
  // Viewed channels-last, so neither direction copies the tokens.
  at::Tensor image = x.view({B, grid_h, grid_w, D}).permute({0, 3, 1, 2});  // [B, D, h, w]
  at::Tensor pooled = at::adaptive_avg_pool2d(image, {grid, grid});         // [B, D, S, S]
  return pooled.permute({0, 2, 3, 1}).reshape({B, grid * grid, D});         // [B, S*S, D]
}

at::Tensor upsample_tokens_reference(const at::Tensor& x, int grid, int grid_h, int grid_w) {
  const int64_t B = x.size(0), D = x.size(2);
  at::Tensor image = x.view({B, grid, grid, D}).permute({0, 3, 1, 2});                   // [B, D, S, S]
  at::Tensor up = at::upsample_nearest2d(image, {grid_h, grid_w});                       // [B, D, h, w]
  return up.permute({0, 2, 3, 1}).reshape({B, static_cast<int64_t>(grid_h) * grid_w, D});  // [B, N, D]
}

at::Tensor add_upsampled_tokens_reference_(at::Tensor& dense, const at::Tensor& sparse, int grid, int grid_h,
                                           int grid_w) {
  return dense.add_(upsample_tokens_reference(sparse, grid, grid_h, grid_w));  // [B, N, D]
}

#ifdef DITGEN_HAVE_CUDA
namespace {

TokenGridArgs grid_args(const at::Tensor& dense, int grid, int grid_h, int grid_w) {
  TokenGridArgs args;
  args.batch = dense.size(0);
  args.dim = dense.size(2);
  args.grid_h = grid_h;
  args.grid_w = grid_w;
  args.sparse_h = args.sparse_w = grid;
  return args;
}

void check_launch(cudaError_t err, const char* what) {
  TORCH_CHECK(err == cudaSuccess, what, " kernel failed: ", cudaGetErrorString(err));
}

}  // namespace
#endif

at::Tensor pool_tokens(const at::Tensor& x, int grid_h, int grid_w, int grid) {
  check_grids(grid, grid_h, grid_w);
  check_tokens(x, static_cast<int64_t>(grid_h) * grid_w, "pooled tokens");
#ifdef DITGEN_HAVE_CUDA
  if (token_grid_runs_kernel(x, x)) {
    at::Tensor out = at::empty({x.size(0), static_cast<int64_t>(grid) * grid, x.size(2)}, x.options());  // [B, S*S, D]
    TokenGridArgs args = grid_args(x, grid, grid_h, grid_w);
    args.dense = x.data_ptr();
    args.sparse_out = out.data_ptr();
    c10::cuda::CUDAGuard guard(x.device());
    check_launch(launch_pool_tokens(args, element_type_of(x), at::cuda::getCurrentCUDAStream()), "token pooling");
    return out;
  }
#endif
  return pool_tokens_reference(x, grid_h, grid_w, grid);
}

at::Tensor add_upsampled_tokens_(at::Tensor& dense, const at::Tensor& sparse, int grid, int grid_h, int grid_w) {
  check_grids(grid, grid_h, grid_w);
  check_tokens(dense, static_cast<int64_t>(grid_h) * grid_w, "dense tokens");
  check_tokens(sparse, static_cast<int64_t>(grid) * grid, "sparse tokens");
  TORCH_CHECK(sparse.size(0) == dense.size(0) && sparse.size(2) == dense.size(2), "sparse tokens ", sparse.sizes(),
              " do not match dense tokens ", dense.sizes());
#ifdef DITGEN_HAVE_CUDA
  if (token_grid_runs_kernel(dense, sparse) && token_grid_runs_kernel(sparse, dense)) {
    TokenGridArgs args = grid_args(dense, grid, grid_h, grid_w);
    args.dense_inout = dense.data_ptr();
    args.sparse = sparse.data_ptr();
    c10::cuda::CUDAGuard guard(dense.device());
    check_launch(launch_add_upsampled_tokens(args, element_type_of(dense), at::cuda::getCurrentCUDAStream()),
                 "token upsampling");
    return dense;
  }
#endif
  return add_upsampled_tokens_reference_(dense, sparse, grid, grid_h, grid_w);
}

}  // namespace ditgen::cuda
