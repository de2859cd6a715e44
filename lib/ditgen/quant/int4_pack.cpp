// Packing of 4-bit integers, two per byte, even column in the low nibble (layout in int4_pack.h).
#include "ditgen/quant/int4_pack.h"

#include <string>

#include "ditgen/quant/quantizer.h"

namespace ditgen::quant {

at::Tensor pack_int4(const at::Tensor& values) {
  require_int8(values, "the 4-bit values to pack", 2);
  if (values.size(1) % 2 != 0) {
    throw Error(ErrorKind::Usage, "4-bit packing needs an even number of columns, not " +
                                      std::to_string(values.size(1)));
  }
  if (values.numel() > 0 && (values.min().item<int>() < -8 || values.max().item<int>() > 7)) {
    throw Error(ErrorKind::Usage, "4-bit values must lie in -8..7");
  }
  const at::Tensor nibbles = values.to(at::kByte).bitwise_and(0xF);  // [R, C], two's complement nibbles
  const at::Tensor even = nibbles.slice(1, 0, values.size(1), 2);     // [R, C/2]
  const at::Tensor odd = nibbles.slice(1, 1, values.size(1), 2);      // [R, C/2]
  return even.bitwise_or(odd.bitwise_left_shift(4)).contiguous();     // [R, C/2]
}

at::Tensor unpack_int4(const at::Tensor& packed) {
  if (!packed.defined() || packed.scalar_type() != at::kByte || packed.dim() != 2) {
    throw Error(ErrorKind::Usage, "packed 4-bit values must be a uint8 tensor of 2 dimensions");
  }
  // Shifting the nibble to the top of an int8 and back sign-extends it.
  const at::Tensor low = packed.bitwise_left_shift(4).to(at::kChar).bitwise_right_shift(4);  // [R, C/2] even
  const at::Tensor high = packed.to(at::kChar).bitwise_right_shift(4);                        // [R, C/2] odd
  return at::stack({low, high}, 2).reshape({packed.size(0), packed.size(1) * 2});            // [R, C]
}

}  // namespace ditgen::quant
