// SparseDiT's token-grid resampling (docs/SPARSEDIT.md): tokens of a grid_h x grid_w grid pooled to S x S with
// torch's adaptive average pool, and S x S tokens upsampled back with torch's nearest interpolation. Each op
// has its LibTorch reference (`*_reference`), which CPU runs, training (autograd) and unsupported shapes use;
// on CUDA in inference the kernels of token_grid_kernels.cu run instead where cuda/dispatch.h says so.
#pragma once

#include <ATen/ATen.h>

namespace ditgen::cuda {

// Uneven bins when S does not divide the grid. [B, grid_h * grid_w, D] -> [B, S * S, D]
at::Tensor pool_tokens(const at::Tensor& x, int grid_h, int grid_w, int grid);
at::Tensor pool_tokens_reference(const at::Tensor& x, int grid_h, int grid_w, int grid);

// [B, S * S, D] -> [B, grid_h * grid_w, D]
at::Tensor upsample_tokens_reference(const at::Tensor& x, int grid, int grid_h, int grid_w);
// dense += the nearest upsampling of sparse, in place (dense is the caller's own temporary), without the
// upsampled tokens in memory. dense [B, grid_h * grid_w, D], sparse [B, S * S, D]; returns dense.
at::Tensor add_upsampled_tokens_(at::Tensor& dense, const at::Tensor& sparse, int grid, int grid_h, int grid_w);
at::Tensor add_upsampled_tokens_reference_(at::Tensor& dense, const at::Tensor& sparse, int grid, int grid_h,
                                           int grid_w);

}  // namespace ditgen::cuda
