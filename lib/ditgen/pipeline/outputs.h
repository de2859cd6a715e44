// What a run writes: output names from a template, images from frames, and the metadata PNGs carry.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "ditgen/io/clip.h"
#include "ditgen/io/png.h"
#include "ditgen/pipeline/generator.h"

namespace ditgen {

// Fields an output-name template may use: {index} (or {index:N}, zero-padded to N digits), {seed},
// {prompt} (lowercased, characters other than a-z 0-9 - _ replaced by '_', at most 48), {class} (the id).
struct OutputFields {
  int64_t index = 0;
  uint64_t seed = 0;
  std::string prompt;
  int64_t class_id = 0;
};

// The output template a user's -o text stands for: a name ending in '/' is a folder that gets the default
// names ({prompt}-{seed}.png). Error(Usage) for an empty name or one not ending in .png.
std::string output_template_from(const std::string& text);
// The same for a run making clips: names say the container (.mp4, .webm, .gif, or a folder of PNG frames for
// a name without an extension and `format` png; io::video_format_for), and a folder ending in '/' gets
// {prompt}-{seed} with the extension of `format`, or .mp4 (.gif in a build without FFmpeg).
std::string clip_template_from(const std::string& text, const std::string& format);

// Expands a template. When the template names neither {index} nor {seed} and the run makes several
// images, "-{index}" is added before the extension so names never collide. Throws Error(Usage) for an
// unknown or unterminated placeholder, or a name that would leave the template's folder ("..").
std::filesystem::path expand_output_name(const std::string& name_template, const OutputFields& fields,
                                         bool several_outputs);

// A frame in [-1, 1] ([C, H, W] float) as 8-bit pixels (grey for 1 channel, RGB for 3).
// Throws Error(Usage) for other channel counts (latents need a VAE).
io::Image to_image(const at::Tensor& frame);

// Tiles frames [N, C, H, W] into one image, `columns` per row, with a 1-pixel gap.
io::Image tile_images(const at::Tensor& frames, int columns);
// A contact sheet of frames [N, C, H, W] of one size: a near-square grid (ceil(sqrt N) columns).
io::Image contact_sheet(const at::Tensor& frames);
// An 8-bit image read back as a frame [C, H, W] in [-1, 1] (to_image's inverse, up to rounding).
at::Tensor frame_from_image(const io::Image& image);
// A clip read back (io::read_video) as frames [F, C, H, W] in [-1, 1] with `channels` (1 takes the grey of
// ditgen's grey clips, stored as three equal channels).
at::Tensor frames_from_clip(const io::VideoClip& clip, int channels);
// A denoising trajectory [T + 1, N, C, H, W] as an H.264 video: one frame per state, the N images tiled
// `columns` to a row, scaled up to about 256 pixels wide.
void write_trajectory_video(const std::filesystem::path& path, const at::Tensor& trajectory, int columns);

// The full record of one image or clip: request, model, version; what `--from` will replay. A clip's record
// also holds its "frames" (BatchRun adds its "fps").
// `prompt` is the class label it resolved to, or a text model's prompt as given (its class_id is null);
// `negative` is the negative prompt as resolved ("" for the null condition); dtype as dtype_label gives it;
// the GFLOPs of each denoising step (Generator::step_gflops) and their total go in too.
nlohmann::json generation_record(const ModelInfo& model, const GenerationRequest& request, size_t image,
                                 const std::string& prompt, const std::string& negative, const std::string& device,
                                 const std::string& dtype, const std::vector<double>& gflops_per_step);

// What `--from` takes from a record: long option names of `ditgen generate` with their values as text (prompt,
// seed, sampler, steps, ...), and the model it was made with. Error(Input) naming the field when the record
// lacks one or a field has the wrong type or an impossible value (a damaged or forged record).
struct ReplayRecord {
  std::vector<std::pair<std::string, std::string>> options;
  std::string model_file;    // the model file's name as recorded (no folder)
  std::string model_sha256;  // "" when not recorded
  std::string vae_file;      // a latent model's decoder as recorded (no folder); "" for pixel models
  std::string vae_sha256;
};
ReplayRecord parse_replay_record(const nlohmann::json& record, const std::string& source);

// A file a run reads or writes, with what it is for messages ("--grid", "the model", "image 3").
struct RunFile {
  std::filesystem::path path;
  std::string role;
};

// Checks a run's files before any compute: Error(Usage) when an output exists as anything but a regular file
// (a folder, a device node, a pipe), is one of the inputs (the same file under any name), or is named by
// another output too.
void check_run_files(const std::vector<RunFile>& outputs, const std::vector<RunFile>& inputs);

// Error(Usage) unless `path` ends in `extension` (any case): ditgen writes what a name says, or refuses it.
void require_extension(const std::filesystem::path& path, const std::string& extension, const std::string& role);

// Whether an existing image's record describes the same output: same model, prompt (and class), seed,
// sampling, size and VAE.
bool same_output(const nlohmann::json& record, const nlohmann::json& wanted);

// The record embedded in a PNG ("ditgen" text chunk) or a clip (io/video.h: MP4, WebM, GIF, a folder of PNG
// frames; told apart by content). Error(Input) when it is neither, or holds no ditgen record.
nlohmann::json read_generation_record(const std::filesystem::path& path);

// The A1111-style "parameters" text of a record (prompt, steps, sampler, CFG scale, seed, size, ...).
// Error(Input) naming `source` when the record lacks one of those fields or has the wrong type.
std::string parameters_text(const nlohmann::json& record, const std::string& source);

// PNG text chunks for an image: A1111-style "parameters" and "ditgen" (the JSON record).
std::vector<io::PngText> png_metadata(const nlohmann::json& record);

// A clip's frames [F, C, H, W] in [-1, 1] (C 1 grey or 3 RGB) written as `format` at `fps` with `record` (as JSON
// text; PNG frames also get the "parameters" text), through io::write_video: check the output first with
// io::check_video_output.
void write_generation_video(const std::filesystem::path& path, const at::Tensor& frames, int fps,
                            const nlohmann::json& record, io::VideoFormat format);

}  // namespace ditgen
