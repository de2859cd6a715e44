// Checkpoint conversions: a dense DiT's weights mapped onto a FlexiDiT (docs/FLEXIDIT.md), SparseDiT
// (docs/SPARSEDIT.md) or PT-DiT (docs/PTDIT.md) layout, or an image model's onto a video model
// (docs/VIDEO.md), the starting point of their fine-tuning.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "ditgen/models/config.h"
#include "ditgen/models/dit.h"

namespace ditgen {

// A flexible model of `flex`'s layout whose function at dense.config().patch_size is dense's: the
// transformer weights are copied, the tokenizer PI-resized (nn::FlexibleTokenizerImpl::init_from_fixed),
// the patch-size embeddings and LoRA up-projections start at zero. Error(Usage) for a model that is
// already flexible or a layout that does not validate.
DiT make_flexible(DiT& dense, const FlexConfig& flex);

// A sparse model of `sparse`'s layout from a dense one by SparseDiT's weight mapping: the new layout's
// blocks in order (Poolingformers; per module token merge, semantic blocks, recovery, dense blocks; the top
// blocks) take the dense blocks in order; a Poolingformer's value projection is qkv's value rows, a cross
// attention's q and kv are qkv's query and key-value rows; the recovery's merged layers start as W1 = 0,
// W2 = I. Error(Usage) for a model that is sparse already or a layout that does not validate.
DiT make_sparse(DiT& dense, const SparseConfig& sparse);

// A PT-DiT of `proxy`'s layout and `depth` blocks whose window path starts from a dense DiT's blocks (the
// text-to-video PT-DiT starts from the dense text-to-image model this way). The stem, text encoder and head
// are copied; PT-DiT block j takes dense block round(j * (dense depth - 1) / (depth - 1)) (evenly spaced, first
// and last kept): its window, shifted-window and proxy attentions take the block's attention, the proxy
// cross-attention's query and key-value projections its qkv rows (the output projection stays zero), the MLP
// and text cross-attention theirs. The adaLN rows: window attention and MLP from the block's, the shifted windows'
// shift and scale those of the attention, their gate zero. With per-block adaLN (proxy.adaln_single false) each
// block's head takes them exactly, so with one window a grid the PT-DiT computes the dense model's function.
// adaLN-single shares one projection across blocks: it takes the mean of the blocks' projections, each block's
// table the difference of its biases from the mean, exact only when the dense blocks' projections are equal
// (a trained model's are not: prefer per-block adaLN to start from one).
// Error(Usage) for a model that is not a dense DiT or a depth outside 1..its depth.
DiT make_proxy(DiT& dense, const ProxyConfig& proxy, int depth);

// A video model making clips of `frames` (PT-DiT windows spanning `window_frames`) from an image model, with
// its weights unchanged and its temporal-position gate kTemporalGateStart. (At 1, frame f's tokens get a second
// sinusoid as large as their spatial positions, which the image model never saw: frames after the first came
// out as noise before any training. At 0 the frames are an unordered set; trained so, the gate barely grew in
// 3,000 steps and the clips did not move. At 0.1 each frame is drawn nearly as the image model draws it, and
// the frames are ordered: docs/VIDEO.md.) A text model's vocabulary grows by `more_words` (appended, so every known word keeps its
// id and embedding; the new ones start as initialize_weights draws them). Its clips' frames share
// `frame_noise_correlation` of their noise (sampling/frame_noise.h). Error(Usage) for a video model, a
// backbone that makes images only, or new words for a class model.
constexpr double kTemporalGateStart = 0.1;
DiT make_video(DiT& image, int frames, int window_frames, const std::vector<std::string>& more_words = {},
               double frame_noise_correlation = 0);

// Sets the embedding of each `starts` word (the first of a pair) to that of the word it starts as (the second),
// so that a model given new words reads them at first as the known words nearest in meaning
// (data::moving_word_starts). Error(Usage) for a class model or a word not in its vocabulary.
void start_words_as(DiT& model, const std::vector<std::pair<std::string, std::string>>& starts);

// The text model with `words` appended to its vocabulary (every known word keeps its id and embedding; the new
// ones start as initialize_weights draws them), the rest of its weights copied. Error(Usage) for a class model,
// a word it knows already or an empty one.
DiT with_words(DiT& model, const std::vector<std::string>& words);

}  // namespace ditgen
