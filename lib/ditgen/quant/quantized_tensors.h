// A quantized model's layers in its model file (docs/MODEL_FORMAT.md): per quantized layer L,
//   L.weight_values       I8 [out, in] at 8 bits, or U8 [out, in / 2] at 4 bits (int4_pack.h's layout)
//   L.weight_scales       F32 [out], finite and > 0
//   L.weight_zero_points  I32 [out], on the grid of the bits and symmetry (0 when symmetric)
//   L.bias                F32 [out]
//   L.input_scale         F32 [1], finite and > 0       } static activations only: the calibrated per-tensor
//   L.input_zero_point    I32 [1], in -128..127          } 8-bit asymmetric quantizer of the layer's input
// instead of L.weight and L.bias; the metadata `ditgen.quant` (quantize_model.h) says the bits, symmetry,
// activations and which layers.
#pragma once

#include <array>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

#include "ditgen/io/safetensors.h"
#include "ditgen/quant/quantize_model.h"

namespace ditgen::quant {

// L.weight_values, L.weight_scales, L.weight_zero_points, L.bias
std::array<std::string, 4> quantized_tensor_names(const std::string& layer);
// Every tensor a layer stores under q: the four above, and L.input_scale, L.input_zero_point with static
// activations.
std::vector<std::string> stored_tensor_names(const std::string& layer, const ModelQuantization& q);

// The file tensors of a model's quantized layers, 4-bit values packed. Error(Usage) unless the model's
// quantized layers are exactly q.layers.
std::vector<std::pair<std::string, at::Tensor>> quantized_layer_tensors(DiT& model, const ModelQuantization& q);

// One layer as read from a file: the weight unpacked to int8, the bias.
struct StoredLayer {
  QuantizedWeight weight;
  at::Tensor bias;  // float32 [out]
  double input_scale = 1;        // static activations only
  int64_t input_zero_point = 0;  // static activations only
};

// Reads and checks every layer q lists, before any model exists: each tensor present, of its dtype, the
// four of a layer agreeing in shape, values and zero points on the grid of q's bits and symmetry (zero points
// 0 when symmetric), scales finite and > 0, and with static activations the input's scale (finite, > 0) and
// zero point (on the 8-bit asymmetric grid), one each. Error(Model) naming the file and the tensor.
std::map<std::string, StoredLayer> read_quantized_layers(const io::SafetensorsFile& file, const ModelQuantization& q);

// Quantizes `model`'s layers with the stored ones, after checking that q lists exactly its quantizable layers
// and that each stored weight has its layer's shape (nothing to do for a float model). Error(Model) naming
// the file (`where`).
void install_quantized_layers(DiT& model, std::map<std::string, StoredLayer> layers, const ModelQuantization& q,
                              const std::string& where);

}  // namespace ditgen::quant
