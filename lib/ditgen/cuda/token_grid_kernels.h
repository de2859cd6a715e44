// Raw launchers of the token-grid resampling kernels (token_grid_kernels.cu): SparseDiT's pooling of a token
// grid to S x S and its nearest upsampling back, added to the dense tokens. Torch-free so nvcc stays fast;
// token_grid.cpp checks shapes, dtypes and alignment before it calls them, and keeps the LibTorch reference.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "ditgen/cuda/element_type.h"

namespace ditgen::cuda {

// Tokens are rows of `dim` elements, a grid in row-major order per sample: dense [batch, grid_h * grid_w, dim],
// sparse [batch, sparse_h * sparse_w, dim].
struct TokenGridArgs {
  const void* dense = nullptr;  // pooling: its input
  void* sparse_out = nullptr;   // pooling: its output
  void* dense_inout = nullptr;  // upsampling: the tokens it adds to, in place
  const void* sparse = nullptr; // upsampling: its input
  int64_t batch = 0, dim = 0;
  int grid_h = 0, grid_w = 0, sparse_h = 0, sparse_w = 0;
};

// sparse_out = torch's adaptive average pool of dense (bins [floor(i h / S), ceil((i + 1) h / S))), summed in fp32.
cudaError_t launch_pool_tokens(const TokenGridArgs& args, ElementType type, cudaStream_t stream);
// dense_inout += torch's nearest upsampling of sparse (source row min(floor(i * (S / h)), S - 1) in fp32), in fp32
// and rounded once.
cudaError_t launch_add_upsampled_tokens(const TokenGridArgs& args, ElementType type, cudaStream_t stream);

}  // namespace ditgen::cuda
