#include "ditgen/models/conversions.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <string>
#include <vector>

#include <torch/nn/modules/linear.h>

#include "ditgen/core/error.h"
#include "ditgen/text/tokenizer.h"

namespace ditgen {

namespace {

// Copies every parameter of `from` into the parameter of `to` with the same name and shape.
void copy_matching(const torch::nn::Module& from, torch::nn::Module& to) {
  const auto source = from.named_parameters();
  for (auto& item : to.named_parameters()) {
    const at::Tensor* p = source.find(item.key());
    if (p && p->sizes() == item.value().sizes()) item.value().copy_(*p);
  }
}

// A linear layer from rows [first, first + count) of another.
void copy_rows(const torch::nn::LinearImpl& from, int64_t first, int64_t count, torch::nn::LinearImpl& to) {
  to.weight.copy_(from.weight.narrow(0, first, count));
  to.bias.copy_(from.bias.narrow(0, first, count));
}

// The stem (with a text encoder) and the head, which keep their names in every layout.
void copy_stem_and_head(const DiT& from, DiT& to) {
  const auto from_children = from->named_children();
  const auto to_children = to->named_children();
  for (const char* name : {"x_embedder", "t_embedder", "y_embedder", "text_encoder", "final_layer"})
    if (const auto* module = from_children.find(name)) copy_matching(**module, **to_children.find(name));
}

// The model a conversion fills: dense's config with a new layout set by `set_layout`. Error(Usage) when dense
// has that layout already (`has_layout`) or the new one does not validate (DiT's constructor checks it).
template <class SetLayout>
DiT conversion_target(const DiT& dense, bool has_layout, const std::string& layout, SetLayout set_layout) {
  if (has_layout) throw Error(ErrorKind::Usage, "the model is " + layout + " already");
  DiTConfig config = dense->config();
  set_layout(config);
  return DiT(config);
}

// `to` (a fresh model of a config that grew from `from`'s) with `from`'s weights: every parameter of the same
// name and shape, and a text model's known words' embedding rows (any new words follow them, as
// initialize_weights draws them).
void copy_grown(const DiT& from, DiT& to) {
  at::NoGradGuard no_grad;
  to->initialize_weights();
  copy_matching(*from, *to);
  if (!from->config().text.enabled()) return;
  const at::Tensor& known = from->text_encoder->token_embedding->weight;  // [2 + V, W]
  to->text_encoder->token_embedding->weight.narrow(0, 0, known.size(0)).copy_(known);
}

}  // namespace

DiT make_flexible(DiT& dense, const FlexConfig& flex) {
  DiT out = conversion_target(dense, dense->config().flex.flexible(), "flexible",
                              [&](DiTConfig& c) { c.flex = flex; });
  at::NoGradGuard no_grad;
  copy_matching(*dense, *out);
  nn::FlexibleTokenizerImpl::Weights base = out->base_tokenizer();  // written in place
  out->flex->init_from_fixed(dense->base_tokenizer(), base);
  return out;
}

DiT make_sparse(DiT& dense, const SparseConfig& sparse) {
  DiT out = conversion_target(dense, dense->config().sparse.sparse(), "sparse",
                              [&](DiTConfig& c) { c.sparse = sparse; });
  at::NoGradGuard no_grad;
  const int64_t D = out->config().hidden_size;
  copy_stem_and_head(dense, out);
  if (dense->flex) copy_matching(*dense->flex, *out->flex);
  int next = 0;  // the dense block the next new block takes its weights from
  auto source = [&]() -> nn::DiTBlockImpl& { return *dense->blocks[next++]->as<nn::DiTBlock>(); };
  // Names shared with a DiT block (mlp, adaLN_modulation, attn.proj) copy directly; the attention inputs
  // are qkv's rows.
  for (const auto& module : *out->pooling_blocks) {
    nn::DiTBlockImpl& from = source();
    auto& to = *module->as<nn::PoolingformerBlock>();
    copy_matching(from, to);
    copy_rows(*from.attn->qkv, 2 * D, D, *to.attn->v);
  }
  auto cross_block = [&](torch::nn::Module& to, nn::CrossAttention& attn) {
    nn::DiTBlockImpl& from = source();
    copy_matching(from, to);
    copy_rows(*from.attn->qkv, 0, D, *attn->q);
    copy_rows(*from.attn->qkv, D, 2 * D, *attn->kv);
  };
  for (const auto& module : *out->sparse_modules) {
    auto& sdtm = *module->as<nn::SparseDenseModule>();
    cross_block(*sdtm.token_merge, sdtm.token_merge->attn);
    for (const auto& block : *sdtm.semantic_blocks) copy_matching(source(), *block);
    cross_block(*sdtm.token_recover, sdtm.token_recover->attn);
    sdtm.token_recover->start_as_dense();
    for (const auto& block : *sdtm.normal_blocks) copy_matching(source(), *block);
  }
  for (const auto& block : *out->blocks) copy_matching(source(), *block);
  return out;
}

DiT make_proxy(DiT& dense, const ProxyConfig& proxy, int depth) {
  const DiTConfig& from = dense->config();
  if (from.sparse.sparse() || from.ssm.ssm() || from.flex.flexible())
    throw Error(ErrorKind::Usage, "only a dense DiT becomes a PT-DiT");
  if (depth < 1 || depth > from.depth)
    throw Error(ErrorKind::Usage, "a PT-DiT made from a dense DiT of " + std::to_string(from.depth) +
                                      " blocks has 1 to " + std::to_string(from.depth) + " blocks");
  DiT out = conversion_target(dense, from.proxy.proxy(), "a PT-DiT", [&](DiTConfig& c) {
    c.proxy = proxy;
    c.depth = depth;
  });
  at::NoGradGuard no_grad;
  out->initialize_weights();  // the proxy cross-attention's zero output projection
  copy_stem_and_head(dense, out);
  const int64_t D = from.hidden_size;
  // PT-DiT's nine adaLN chunks (shift, scale, gate of windows, shifted windows, MLP) from a dense block's six
  // (shift, scale, gate of attention, MLP); -1: zero (the shifted windows start silent).
  const std::array<int, 9> dense_chunk{0, 1, 2, 0, 1, -1, 3, 4, 5};
  auto nine_chunks = [&](const at::Tensor& six) {  // [6D, ...] -> [9D, ...]
    std::vector<at::Tensor> chunks;
    for (int k : dense_chunk) chunks.push_back(k < 0 ? at::zeros_like(six.narrow(0, 0, D)) : six.narrow(0, k * D, D));
    return at::cat(chunks);
  };
  std::vector<at::Tensor> weights, biases;  // each PT-DiT block's adaLN head, in the nine-chunk order
  for (int j = 0; j < depth; ++j) {
    const int i = depth == 1 ? 0 : static_cast<int>(std::lround(j * (from.depth - 1) / static_cast<double>(depth - 1)));
    auto& block = *dense->blocks[i]->as<nn::DiTBlock>();
    auto& to = *out->proxy_blocks[j]->as<nn::ProxyTokenBlock>();
    for (const nn::Attention& attn : {to.window_attn, to.shifted_attn, to.proxy_attn})
      copy_matching(*block.attn, *attn.ptr());
    copy_rows(*block.attn->qkv, 0, D, *to.proxy_cross->q);
    copy_rows(*block.attn->qkv, D, 2 * D, *to.proxy_cross->kv);
    copy_matching(*block.mlp, *to.mlp);
    if (!block.text_cross.is_empty()) copy_matching(*block.text_cross, *to.text_cross);
    const auto& head = *block.adaLN_modulation[1]->as<torch::nn::Linear>();
    weights.push_back(nine_chunks(head.weight));
    biases.push_back(nine_chunks(head.bias));
  }
  if (!proxy.adaln_single) {  // each block's own head takes its rows; the tables stay zero
    for (int j = 0; j < depth; ++j) {
      auto& own = *out->proxy_blocks[j]->as<nn::ProxyTokenBlock>()->adaLN_modulation[1]->as<torch::nn::Linear>();
      own.weight.copy_(weights[j]);
      own.bias.copy_(biases[j]);
    }
    return out;
  }
  // adaLN-single cannot hold blocks whose projections differ: the mean projection is exact only for equal ones.
  auto& shared = *out->adaLN_modulation[1]->as<torch::nn::Linear>();
  shared.weight.copy_(at::stack(weights).mean(0));
  shared.bias.copy_(at::stack(biases).mean(0));
  for (int j = 0; j < depth; ++j)
    out->proxy_blocks[j]->as<nn::ProxyTokenBlock>()->scale_shift_table.copy_((biases[j] - shared.bias).view({9, D}));
  return out;
}

DiT make_video(DiT& image, int frames, int window_frames, const std::vector<std::string>& more_words,
               double frame_noise_correlation) {
  if (frames < 2) throw Error(ErrorKind::Usage, "a video model makes clips of at least 2 frames");
  if (!more_words.empty() && !image->config().text.enabled())
    throw Error(ErrorKind::Usage, "only a text model's vocabulary grows");
  DiT out = conversion_target(image, image->config().video(), "a video model", [&](DiTConfig& c) {
    c.input_frames = frames;
    c.proxy.window_frames = window_frames;
    c.frame_noise_correlation = frame_noise_correlation;
    c.text.vocabulary.insert(c.text.vocabulary.end(), more_words.begin(), more_words.end());
  });
  copy_grown(image, out);
  at::NoGradGuard no_grad;
  out->temporal_pos_gate.fill_(kTemporalGateStart);
  return out;
}

void start_words_as(DiT& model, const std::vector<std::pair<std::string, std::string>>& starts) {
  const TextConfig& text = model->config().text;
  if (!text.enabled()) throw Error(ErrorKind::Usage, "only a text model's words have embeddings");
  auto id_of = [&](const std::string& word) {
    const auto it = std::find(text.vocabulary.begin(), text.vocabulary.end(), word);
    if (it == text.vocabulary.end())
      throw Error(ErrorKind::Usage, "the word '" + word + "' is not in the model's vocabulary");
    return text::kFirstWordId + (it - text.vocabulary.begin());
  };
  at::NoGradGuard no_grad;
  at::Tensor& table = model->text_encoder->token_embedding->weight;  // [2 + V, W]
  for (const auto& [word, known] : starts) table[id_of(word)].copy_(table[id_of(known)]);
}

DiT with_words(DiT& model, const std::vector<std::string>& words) {
  const TextConfig& text = model->config().text;
  if (!text.enabled()) throw Error(ErrorKind::Usage, "only a text model's vocabulary grows");
  for (const std::string& w : words)
    if (w.empty() || std::count(text.vocabulary.begin(), text.vocabulary.end(), w))
      throw Error(ErrorKind::Usage, "the word '" + w + "' is empty or in the model's vocabulary already");
  DiTConfig config = model->config();
  config.text.vocabulary.insert(config.text.vocabulary.end(), words.begin(), words.end());
  DiT out(config);
  copy_grown(model, out);
  return out;
}

}  // namespace ditgen
