// The element types the custom CUDA kernels take (their launch arguments are untyped pointers). Free of
// torch and CUDA headers, so that kernel sources and launch headers stay light.
#pragma once

namespace ditgen::cuda {

enum class ElementType { Float32, Float16, BFloat16 };

}  // namespace ditgen::cuda
