// The AVX2 int8 GEMM (see int8_gemm_avx2.h for why it is exact): operands widened to int16 and packed once
// per call, then a 6 x 16 register-tile micro-kernel of _mm256_madd_epi16 over the whole K.
//
// Layouts (int16, zero-padded, so that the micro-kernel never sees a ragged edge):
//   A: tiles of 6 rows; tile t holds, for each k pair j, the 6 words (a[6t + r, 2j], a[6t + r, 2j + 1]) for
//      r = 0..5, each broadcast to all 8 lanes. A tile is one contiguous stream, so the micro-kernel reads A
//      from one place instead of 6 rows apart.
//   B: panels of 16 columns of C; panel p holds, for each k pair j, the 32 values
//      b[16p + c, 2j], b[16p + c, 2j + 1] for c = 0..15, i.e. two ymm registers: madd of the broadcast A pair
//      with them gives the pair's contribution to 16 columns of one row, in int32.
// Zero padding adds exact zeros, so padded rows and columns are computed and simply not written back.
#include "ditgen/quant/int8_gemm_avx2.h"

#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>

#include <ATen/Parallel.h>

namespace ditgen::quant {

namespace {

constexpr int64_t kTileRows = 6;   // rows of C per micro-kernel tile: 12 accumulators + 2 B + 1 A = 15 ymm
constexpr int64_t kTileCols = 16;  // columns of C per tile: two ymm of 8 int32
constexpr int64_t kPanelPairValues = 2 * kTileCols;  // int16 values per k pair in a B panel
constexpr int64_t kTilePairValues = 2 * kTileRows;   // int16 values per k pair in an A tile
// Rows of A that every B panel passes over before the next rows come: 96 rows x K 640 x 2 bytes = 120 KB of
// A stay in L2 while each 16-column B panel (20 KB at K 640) is reused from L1 by all 16 tiles.
constexpr int64_t kRowBlock = 16 * kTileRows;
// Multiply-adds a thread should get at least, so that small products are not split across threads.
constexpr int64_t kMinWorkPerThread = int64_t{1} << 20;
// Values a thread should pack at least, likewise.
constexpr int64_t kMinPackPerThread = int64_t{1} << 16;

int64_t round_up(int64_t value, int64_t multiple) { return (value + multiple - 1) / multiple * multiple; }

// run(first, last) over [0, count) in at most at::get_num_threads() contiguous chunks of at least min_chunk,
// one per thread. Not at::parallel_for: LibTorch's is an OpenMP pragma in its header, and this library is
// not compiled with -fopenmp, so it would run serially. A thread per call costs tens of microseconds against
// the milliseconds of a model-sized product.
void run_in_chunks(int64_t count, int64_t min_chunk, const std::function<void(int64_t, int64_t)>& run) {
  const int64_t threads =
      at::in_parallel_region() ? 1 : std::min<int64_t>(at::get_num_threads(), std::max<int64_t>(1, count / min_chunk));
  const int64_t chunk = (count + threads - 1) / threads;
  std::vector<std::thread> helpers;
  for (int64_t first = chunk; first < count; first += chunk) {
    helpers.emplace_back(run, first, std::min(first + chunk, count));
  }
  run(0, std::min(chunk, count));
  for (std::thread& helper : helpers) helper.join();
}

// rows [count, k] int8 -> groups of `group` rows in int16, zero-padded: group g holds, for each k pair j, the
// pairs (rows[group g + r, 2j], rows[group g + r, 2j + 1]) for r = 0..group - 1. With group 6 these are the A
// tiles described at the top, with group 16 the B panels.
std::vector<int16_t> pack_pair_groups(const int8_t* rows, int64_t count, int64_t k, int64_t group) {
  const int64_t pairs = round_up(k, 2) / 2, groups = round_up(count, group) / group, pair_values = 2 * group;
  std::vector<int16_t> packed(static_cast<size_t>(groups * pairs * pair_values), 0);
  const int64_t min_groups = std::max<int64_t>(1, kMinPackPerThread / (group * k));
  run_in_chunks(groups, min_groups, [&](int64_t first, int64_t last) {
    for (int64_t row = first * group; row < std::min(last * group, count); ++row) {
      const int8_t* source = rows + row * k;
      int16_t* target = packed.data() + (row / group) * pairs * pair_values + (row % group) * 2;
      for (int64_t j = 0; j < k / 2; ++j) {
        target[j * pair_values] = source[2 * j];
        target[j * pair_values + 1] = source[2 * j + 1];
      }
      if (k % 2 != 0) target[(k / 2) * pair_values] = source[k - 1];  // its pair's second value stays 0
    }
  });
  return packed;
}

// One 6 x 16 tile of C = one A tile times one B panel, over `pairs` k pairs, written to c (row stride
// c_stride).
__attribute__((target("avx2"))) void multiply_tile(const int16_t* a, const int16_t* panel, int64_t pairs, int32_t* c,
                                                   int64_t c_stride) {
  __m256i acc[kTileRows][2];
  for (auto& row : acc) row[0] = row[1] = _mm256_setzero_si256();
  for (int64_t j = 0; j < pairs; ++j) {
    const __m256i b_low = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(panel + j * kPanelPairValues));
    const __m256i b_high = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(panel + j * kPanelPairValues + 16));
#pragma GCC unroll 6
    for (int64_t r = 0; r < kTileRows; ++r) {
      int32_t pair;
      std::memcpy(&pair, a + j * kTilePairValues + 2 * r, sizeof pair);
      const __m256i a_pair = _mm256_set1_epi32(pair);
      acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(a_pair, b_low));
      acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(a_pair, b_high));
    }
  }
  for (int64_t r = 0; r < kTileRows; ++r) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + r * c_stride), acc[r][0]);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + r * c_stride + 8), acc[r][1]);
  }
}

struct PackedOperands {
  std::vector<int16_t> a;  // tiles
  std::vector<int16_t> b;  // panels
  int64_t m, n, pairs, panels;
};

// Rows [row_begin, row_end) of C (row_begin a multiple of 6), into c [M, N].
__attribute__((target("avx2"))) void multiply_rows(const PackedOperands& p, int64_t row_begin, int64_t row_end,
                                                   int32_t* c) {
  alignas(32) int32_t edge_tile[kTileRows * kTileCols];  // a tile that overhangs C's last rows or columns
  for (int64_t block = row_begin; block < row_end; block += kRowBlock) {
    const int64_t block_end = std::min(block + kRowBlock, row_end);
    for (int64_t panel = 0; panel < p.panels; ++panel) {
      const int16_t* b_panel = p.b.data() + panel * p.pairs * kPanelPairValues;
      const int64_t column = panel * kTileCols;
      const int64_t columns = std::min(kTileCols, p.n - column);
      for (int64_t row = block; row < block_end; row += kTileRows) {
        const int16_t* a_tile = p.a.data() + row / kTileRows * p.pairs * kTilePairValues;
        const int64_t rows = std::min(kTileRows, p.m - row);
        if (rows == kTileRows && columns == kTileCols) {
          multiply_tile(a_tile, b_panel, p.pairs, c + row * p.n + column, p.n);
          continue;
        }
        multiply_tile(a_tile, b_panel, p.pairs, edge_tile, kTileCols);
        for (int64_t r = 0; r < rows; ++r) {
          std::memcpy(c + (row + r) * p.n + column, edge_tile + r * kTileCols, columns * sizeof(int32_t));
        }
      }
    }
  }
}

}  // namespace

bool cpu_has_avx2() { return __builtin_cpu_supports("avx2"); }
bool cpu_has_vnni() { return __builtin_cpu_supports("avx512vnni") || __builtin_cpu_supports("avxvnni"); }

at::Tensor int8_gemm_avx2(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor a_rows = a.contiguous(), b_rows = b.contiguous();
  const int64_t m = a.size(0), k = a.size(1), n = b.size(0);
  if (m == 0 || n == 0 || k == 0) return at::zeros({m, n}, a.options().dtype(at::kInt));  // an empty sum is 0
  PackedOperands packed;
  packed.m = m;
  packed.n = n;
  packed.pairs = round_up(k, 2) / 2;
  packed.panels = round_up(n, kTileCols) / kTileCols;
  const int64_t tile_rows = round_up(m, kTileRows) / kTileRows;
  packed.a = pack_pair_groups(a_rows.data_ptr<int8_t>(), m, k, kTileRows);
  packed.b = pack_pair_groups(b_rows.data_ptr<int8_t>(), n, k, kTileCols);
  at::Tensor c = at::empty({m, n}, a.options().dtype(at::kInt));  // [M, N] int32
  int32_t* c_data = c.data_ptr<int32_t>();
  const int64_t min_tile_rows = std::max<int64_t>(1, kMinWorkPerThread / (kTileRows * n * k));
  run_in_chunks(tile_rows, min_tile_rows, [&](int64_t first, int64_t last) {
    multiply_rows(packed, first * kTileRows, last * kTileRows, c_data);
  });
  return c;
}

}  // namespace ditgen::quant
