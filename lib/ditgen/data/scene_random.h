// The random numbers behind FashionScenes: SplitMix64 written out, so a seed gives the same scenes and captions
// with every compiler and library (the standard distributions are implementation-defined).
#pragma once

#include <cstdint>
#include <iterator>
#include <utility>

namespace ditgen::data {

class SceneRandom {
 public:
  explicit SceneRandom(uint64_t seed) : state_(seed) {}

  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }

  // Uniform in 0..n-1 (n >= 1); the modulo bias of n <= 10 in 2^64 is nothing to see.
  int below(int n) { return static_cast<int>(next() % static_cast<uint64_t>(n)); }

  bool chance(int in, int of) { return below(of) < in; }

  // Fisher-Yates.
  template <class It>
  void shuffle(It first, It last) {
    for (auto n = std::distance(first, last); n > 1; --n) std::swap(first[n - 1], first[below(static_cast<int>(n))]);
  }

 private:
  uint64_t state_;
};

// A seed for stream `stream` of `seed`: sub-draws (sources, captions) that must not shift when another changes.
inline uint64_t mix_seed(uint64_t seed, uint64_t stream) {
  return SceneRandom(seed ^ (0xD1B54A32D192ED03ull * (stream + 1))).next();
}

}  // namespace ditgen::data
