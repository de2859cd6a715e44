#include "ditgen/models/cost.h"

#include <cmath>

namespace ditgen {

namespace {

// in + out features summed over the linears a lora-mode flexible model adapts in each block (attn.qkv,
// attn.proj, mlp.fc1, mlp.fc2): a rank-r adapter set has r times this many parameters and costs r times this
// many MACs a token.
int64_t adapted_in_plus_out(int64_t D, int64_t M) { return (D + 3 * D) + (D + D) + (D + M) + (M + D); }

// A text model's encoder over its max_tokens (padding included: the batch runs at that length) and the
// projections of its states and mean to the backbone's width; 0 for a class-conditional model.
double text_encoder_macs(const DiTConfig& c) {
  if (!c.text.enabled()) return 0;
  const double L = c.text.max_tokens, W = c.text.width, D = c.hidden_size;
  return c.text.layers * (L * 12 * W * W + 2 * L * L * W) + L * W * D + W * D;
}

// One block's text cross-attention from n tokens: q and proj on the tokens, kv on the prompt's, the two
// attention matmuls; 0 for a class-conditional model.
double text_attention_macs(const DiTConfig& c, double n) {
  if (!c.text.enabled()) return 0;
  const double L = c.text.max_tokens, D = c.hidden_size;
  return 2 * n * D * D + L * 2 * D * D + 2 * n * L * D;
}

int64_t text_parameter_count(const DiTConfig& c) {
  if (!c.text.enabled()) return 0;
  const int64_t W = c.text.width, D = c.hidden_size, L = c.text.max_tokens;
  const int64_t layer = 2 * 2 * W + (3 * W * W + 3 * W) + (W * W + W) + (4 * W * W + 4 * W) + (4 * W * W + W);
  return int64_t{c.text.vocab_size()} * W + L * W + c.text.layers * layer + 2 * W + 2 * (W * D + D);
}

}  // namespace

double dit_gflops(const DiTConfig& c, int height, int width, int patch, bool lora_merged, int grid, int frames) {
  const double p = patch > 0 ? patch : c.patch_size, D = c.hidden_size, M = c.mlp_hidden();
  const double N = frames * std::floor(height / p) * std::floor(width / p);
  const double embed = N * p * p * c.in_channels * D + 256.0 * D + D * D;  // patches, timestep MLP
  const double adaln = 6 * D * D, mlp = 2 * D * M;
  // A self-attention block over n tokens: qkv, proj, MLP, the two attention matmuls, adaLN, text attention.
  auto dense_block = [&](double n) { return n * (4 * D * D + mlp) + 2 * n * n * D + adaln + text_attention_macs(c, n); };
  double block = dense_block(N);
  if (c.flex.lora() && p != c.patch_size && !lora_merged)
    block += N * c.flex.lora_rank * adapted_in_plus_out(c.hidden_size, c.mlp_hidden());  // unmerged low-rank paths
  double sparse = 0;
  if (c.sparse.sparse()) {
    const SparseConfig& q = c.sparse;
    const double S2 = std::pow(c.sparse_grid(grid), 2);
    const double pooling = N * mlp + 2 * D * D + adaln;  // value and output projections of the mean token
    // Queries from n_q tokens, keys and values from n_kv: q, kv, attention matmuls, proj.
    auto cross = [&](double n_q, double n_kv) { return n_q * D * D + n_kv * 2 * D * D + 2 * n_q * n_kv * D + n_q * D * D; };
    const double merge = cross(S2, N) + S2 * mlp + adaln;
    const double recover = S2 * D * D + N * D * D + cross(N, S2) + N * mlp + adaln;  // merged layers on S x S and N
    const double module = merge + q.semantic * dense_block(S2) + recover + q.dense * block;
    sparse = q.pooling_blocks * pooling + q.modules * module;
  }
  double proxy = 0;
  if (c.proxy.proxy()) {
    // Proxy self-attention over Mp proxies, every token's cross-attention to them (q and proj on N tokens,
    // kv on the proxies), window and shifted-window attention over windows of n tokens, MLP; the
    // adaLN-single head once, or a head a block.
    const double windows = c.proxy.windows * c.proxy.windows * frames / c.window_frames(frames);
    const double split = c.proxy.proxy_split, n = N / windows, Mp = windows * split * split;
    const double pt_block = Mp * 4 * D * D + 2 * Mp * Mp * D + N * 2 * D * D + Mp * 2 * D * D + 2 * N * Mp * D +
                            2 * (N * 4 * D * D + 2 * N * n * D) + N * mlp;
    proxy = c.depth * (pt_block + text_attention_macs(c, N)) + (c.proxy.adaln_single ? 1 : c.depth) * 9 * D * D;
  }
  double ssm = 0;
  if (c.ssm.ssm()) {
    // Per token: compress, expand and contract (D^2, D^2, 2 D^2 at any M: they act on L / M packed tokens),
    // gate, mix, out (F D, F D / M, F D); the bidirectional SSM; adaLN.
    const double F = c.mlp_hidden(), Mh = c.ssm.hourglass;
    ssm = c.depth * (N * (4 * D * D + 2 * F * D + F * D / Mh) + ssm_mixing_gflops(c, N) * 1e9 + 3 * D * D +
                     text_attention_macs(c, N));
  }
  const double final_layer = 2 * D * D + N * D * p * p * c.out_channels();
  return (embed + text_encoder_macs(c) + sparse + proxy + ssm + c.top_blocks() * block + final_layer) / 1e9;
}

double ssm_mixing_gflops(const DiTConfig& c, double tokens) {
  if (!c.ssm.ssm()) return 0;
  const double n = 2 * tokens;  // the zero-padded length
  return 2.0 * c.hidden_size * (2 * 1.25 * n * std::log2(n) + 3 * n) / 1e9;
}

int64_t dit_parameter_count(const DiTConfig& c) {
  const int64_t D = c.hidden_size, M = c.mlp_hidden(), Cin = c.in_channels, Cout = c.out_channels();
  const FlexConfig& f = c.flex;
  const int64_t p = f.flexible() && !f.lora() ? f.underlying_patch : c.patch_size;  // the base layers' patch
  const int64_t text_cross = c.text.enabled() ? 4 * D * D + 4 * D : 0;  // q, kv, proj of each block's text attention
  const int64_t embed = (p * p * Cin * D + D) + (256 * D + D + D * D + D) + text_parameter_count(c) +
                        (c.text.enabled() ? 0 : (c.num_classes + (c.has_null_class() ? 1 : 0)) * D) +
                        (c.video() ? D : 0);  // the temporal-position gate
  int64_t block = (3 * D * D + 3 * D) + (D * D + D) + (D * M + M) + (M * D + D) + (6 * D * D + 6 * D) + text_cross;
  const int64_t final_layer = (2 * D * D + 2 * D) + (D * p * p * Cout + p * p * Cout);
  int64_t flexible = 0;
  if (f.flexible()) {
    const int64_t sizes = static_cast<int64_t>(f.patch_sizes.size()) - (f.lora() ? 1 : 0);
    flexible = sizes * D;  // patch-size embeddings
    if (f.lora())
      for (int64_t q : f.patch_sizes)
        if (q != c.patch_size) {
          flexible += (q * q * Cin * D + D) + (D * q * q * Cout + q * q * Cout);  // own tokenizer
          block += f.lora_rank * adapted_in_plus_out(D, M);  // this size's adapters
        }
  }
  // A Poolingformer has value and output projections instead of qkv and proj; a recovery block adds two
  // merged layers; the token-merge block's q and kv hold what qkv does.
  const SparseConfig& q = c.sparse;
  const int64_t sparse = q.sparse() ? -q.pooling_blocks * (2 * D * D + 2 * D) + q.modules * 2 * (D * D + D) -
                                          (q.pooling_blocks + 2 * q.modules) * text_cross  // no text attention there
                                    : 0;
  if (c.proxy.proxy()) {
    // Four attentions (proxy, cross: q, kv, proj; window; shifted window) and the MLP, a 9 x D table each;
    // one shared adaLN-single head, or a head a block.
    const int64_t pt_block = 4 * (4 * D * D + 4 * D) + (D * M + M) + (M * D + D) + 9 * D + text_cross;
    return embed + c.depth * pt_block + (c.proxy.adaln_single ? 1 : c.depth) * (9 * D * D + 9 * D) + final_layer +
           flexible;
  }
  if (c.ssm.ssm()) {
    // compress, expand, contract, gate, mix, out; two S4D (dt, A real and imaginary, C per kernel; D per
    // channel); adaLN (3D).
    const int64_t Mh = c.ssm.hourglass, H = c.ssm.shared_kernel() ? 1 : D, N = c.ssm.state_size;
    const int64_t ssm_block = (Mh * D * D + D) + (D * Mh * D + Mh * D) + (2 * Mh * D * D + D) + (Mh * D * M + M) +
                              (D * M + M) + (M * Mh * D + Mh * D) + 2 * (H * (1 + 2 * N) + D) + (3 * D * D + 3 * D) + text_cross;
    return embed + c.depth * ssm_block + final_layer;
  }
  return embed + c.depth * block + sparse + final_layer + flexible;
}

}  // namespace ditgen
