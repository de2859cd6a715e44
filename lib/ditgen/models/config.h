// Architecture configs: what a model file's "ditgen.config" holds, and the official DiT table.
#pragma once

#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "ditgen/core/error.h"

namespace ditgen {

enum class Objective { Eps, Flow };            // noise prediction (Gaussian diffusion) or rectified-flow velocity
enum class ImageSpace { Pixel, Latent };       // outputs are pixels in [-1, 1], or VAE latents

// FlexiDiT (docs/FLEXIDIT.md): one backbone run at several patch sizes. "shared": every patch size is
// projected from one underlying tokenizer (PI-resize) and the whole model is fine-tuned; "lora": the
// pre-trained patch keeps its weights, each other size has its own tokenizer and LoRA adapters on the
// attention and MLP linears (distilled from the frozen model).
struct FlexConfig {
  std::vector<int> patch_sizes;  // every size the model runs, patch_size included; empty = a fixed-patch model
  int underlying_patch = 4;      // p' of the shared tokenizer weights
  std::string mode = "shared";   // shared | lora
  int lora_rank = 16;
  double lora_alpha = 16.0;

  bool flexible() const { return !patch_sizes.empty(); }
  bool lora() const { return flexible() && mode == "lora"; }
};

// SparseDiT (docs/SPARSEDIT.md): Poolingformer blocks at the bottom, sparse-dense token modules (SDTM) in the
// middle, dense blocks on top. Each module pools the tokens to an S x S grid (torch's adaptive average
// pool), runs a token-merge cross block, `semantic` blocks on the S x S tokens, a recovery block (nearest
// upsampling, merged with the dense tokens) and `dense` ordinary blocks. depth = pooling_blocks +
// modules * (2 + semantic + dense) + the top blocks.
struct SparseConfig {
  int pooling_blocks = 0;
  int modules = 0;
  int semantic = 3;          // semantic blocks per module (the paper's group [1, 3, 1, 1])
  int dense = 1;             // dense blocks closing each module
  int min_grid = 0, max_grid = 0;  // the sparse grids S the model was trained for (its density schedule's ends)

  bool sparse() const { return modules > 0; }
  int blocks_per_module() const { return 2 + semantic + dense; }
};

// PT-DiT (docs/PTDIT.md): every block is a proxy-token block. The token grid is cut into windows x windows
// windows (the paper keeps 64 windows an image at every resolution, so windows grow with it); each window
// gives proxy_split^2 proxies (the means of its sub-windows).
struct ProxyConfig {
  int windows = 0;      // windows per side of the token grid; 0 = not a PT-DiT
  int proxy_split = 1;  // proxies per window side
  int window_frames = 4;  // p_t: the frames a window spans in a clip (an image's windows span its one frame)
  // The paper's adaLN-single: one head shared by the blocks, plus a table each. false: each block has its own
  // head, as a dense DiT's blocks do, so that a dense model converts exactly (make_proxy).
  bool adaln_single = true;

  bool proxy() const { return windows > 0; }
};

// DiffuSSM (docs/DIFFUSSM.md): every block is a gated bidirectional S4D block with an hourglass dense path;
// no attention. The paper flattens the latent without patches (patch_size 1). The gate width is mlp_hidden().
struct SSMConfig {
  int state_size = 0;               // S4D state N of each kernel (N/2 complex modes); 0 = not a DiffuSSM
  int hourglass = 2;                // M: the dense layers see M raster neighbours packed into one token
  std::string kernels = "channel";  // channel: one SSM kernel per channel; shared: one for all channels

  bool ssm() const { return state_size > 0; }
  bool shared_kernel() const { return kernels == "shared"; }
};

// Text conditioning (docs/TEXT.md): a prompt's words are looked up in `vocabulary` (ids 2.., after the
// padding id 0 and the start id 1 that begins every prompt and alone is the empty prompt, the null condition),
// read by a small transformer encoder of its own width, and reach the backbone twice: token states through
// cross-attention in the blocks, their mean through the adaLN condition. 0 words = a class-conditional model.
struct TextConfig {
  std::vector<std::string> vocabulary;  // lowercase words; empty = not a text model
  int max_tokens = 48;   // the start token plus at most max_tokens - 1 words
  int width = 128;       // the encoder's width
  int layers = 2;        // encoder transformer layers
  int heads = 4;         // encoder attention heads

  bool enabled() const { return !vocabulary.empty(); }
  int vocab_size() const { return static_cast<int>(vocabulary.size()) + 2; }  // with padding and start
};

struct DiTConfig {
  int depth = 12;
  int hidden_size = 384;
  int num_heads = 6;
  int patch_size = 2;
  double mlp_ratio = 4.0;
  int in_channels = 4;
  int input_height = 32;  // the training size; any size divisible by patch_size runs
  int input_width = 32;
  int input_frames = 1;  // the training clip length; 1 = an image model (docs/VIDEO.md)
  // How much of their noise a clip's frames share, in training and sampling (sampling/frame_noise.h); 0 for
  // images and for clips with independent noise.
  double frame_noise_correlation = 0;
  int num_classes = 1000;          // 0 for a text model
  double class_dropout_prob = 0.1;  // training drops the condition (class or caption) this often: CFG's null
  bool learn_sigma = true;
  Objective objective = Objective::Eps;
  int diffusion_steps = 1000;
  std::string beta_schedule = "linear";
  ImageSpace image_space = ImageSpace::Latent;
  FlexConfig flex;
  SparseConfig sparse;
  ProxyConfig proxy;
  SSMConfig ssm;
  TextConfig text;

  int out_channels() const { return learn_sigma ? 2 * in_channels : in_channels; }
  int mlp_hidden() const { return static_cast<int>(std::lround(hidden_size * mlp_ratio)); }
  bool video() const { return input_frames > 1; }
  // The frames a PT-DiT window spans in a clip of `frames` (1 for an image).
  int window_frames(int frames) const { return frames > 1 ? proxy.window_frames : 1; }
  bool has_null_class() const { return class_dropout_prob > 0 || text.enabled(); }  // text: the empty prompt
  // Whether the model runs at patch size p (0 = its own patch_size).
  bool supports_patch(int p) const;
  // The patch sizes the model runs, patch_size first.
  std::vector<int> runnable_patches() const;
  // The dense blocks after the sparse stages (all blocks of a dense model).
  int top_blocks() const;
  // The sparse grid a forward runs at for `grid` (0 = max_grid); 0 for a dense model.
  int sparse_grid(int grid) const;
  // A PT-DiT's windows need its token grid to divide into them, a DiffuSSM's hourglass its token count:
  // Error(Usage) naming the sizes that do when a grid_h x grid_w token grid does not (nothing for others).
  void check_token_grid(int grid_h, int grid_w) const;
  // Clips run through dense and PT-DiT backbones, whose windows must divide the frames: Error(Usage) saying
  // why when a clip of `frames` cannot run (nothing for frames = 1).
  void check_frames(int frames) const;
  // Throws Error(kind) when a field is out of range (heads must divide hidden_size, ...).
  void validate(ErrorKind kind) const;
};

nlohmann::json to_json(const DiTConfig& config);
// Parses and validates; throws Error(Model) naming the bad field.
DiTConfig config_from_json(const nlohmann::json& json);

// The twelve official configs: DiT-{S,B,L,XL}/{2,4,8} with 4-channel 32x32 latents and 1000 classes;
// FlexiDiT-{S,B,L,XL}/2: the /2 models with a shared flexible tokenizer for patch sizes 1, 2, 4 and 8;
// SparseDiT-XL/2 (the paper's 256 px layout: 1 Poolingformer, 4 modules [1,3,1,1], 3 top blocks, grids 6..10)
// and SparseDiT-XL/2-512 (64x64 latents: 2 Poolingformers, 4 modules, 2 top blocks, grids 6..10) with
// DiT-XL/2-512, its dense counterpart; PT-DiT-XL/2: DiT-XL/2's width and depth in proxy-token blocks (8 x 8
// windows, one proxy each); DiffuSSM-XL: 29 gated bidirectional S4D blocks of width 1152 on unpatched
// 32x32 latents (L = 1024), gate width 1536, hourglass 2, state 64, a kernel per channel.
const std::map<std::string, DiTConfig>& official_configs();
// Looks a registry name up case-insensitively; throws Error(Usage) listing the names when unknown.
DiTConfig official_config(const std::string& name);

const char* objective_name(Objective objective);
const char* image_space_name(ImageSpace space);

}  // namespace ditgen
