// Two 4-bit integers per byte, for storing 4-bit quantized weights at half the size of int8.
//
// Layout (for the model-format doc): values [R, C] int8 in -8..7, C even, become bytes [R, C/2] uint8 where
//   byte[r, j] = (values[r, 2j] & 0xF) | (values[r, 2j + 1] & 0xF) << 4
// i.e. the even column sits in the low nibble, the odd column in the high nibble, each as 4-bit two's
// complement (-8 = 0x8, -1 = 0xF, 7 = 0x7). Rows are packed independently, row-major.
#pragma once

#include <ATen/ATen.h>

namespace ditgen::quant {

// Refuses (Usage) anything but 2-D int8 with an even number of columns and every value in -8..7.
at::Tensor pack_int4(const at::Tensor& values);  // int8 [R, C] -> uint8 [R, C/2]
// Refuses (Usage) anything but 2-D uint8.
at::Tensor unpack_int4(const at::Tensor& packed);  // uint8 [R, C/2] -> int8 [R, C]

}  // namespace ditgen::quant
