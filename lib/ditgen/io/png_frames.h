// A clip as a folder of PNG files, frame-0000.png, frame-0001.png, ... (more digits past frame-9999). Every
// frame carries the generation record in its "ditgen" text chunk, as ditgen's images do, and where it stands in
// "ditgen-frame": {"index": I, "frames": F, "fps": FPS}, so that a folder missing a frame, or mixing runs, is seen.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "ditgen/io/clip.h"
#include "ditgen/io/png.h"

namespace ditgen::io {

// The file name of frame `index`.
std::string png_frame_name(int64_t index);

// Error(Usage) unless `folder` may receive frames: absent, or a folder that is empty or holds only frame-*.png
// files (an earlier clip, replaced).
void check_png_frames_target(const std::filesystem::path& folder);

// Writes `frame_count` frames of width x height x channels (1 or 3) bytes into `folder` (a name with or without a
// trailing '/'), with `record` (UTF-8; "" for none) and `extra_texts` (e.g. A1111 "parameters"; keywords other
// than "ditgen" and "ditgen-frame") in every frame. Atomic: the frames go into a hidden temporary folder beside
// it (.NAME.tmp-XXXXXX), renamed into place when all are written; an earlier frames folder there is replaced.
// On failure nothing is left behind. Error(Usage) for bad arguments or a target that is not a frames folder,
// Error(Output) when it cannot be written.
void write_png_frames(const std::filesystem::path& folder, const uint8_t* frames, int64_t frame_count, int width,
                      int height, int channels, int fps, const std::string& record,
                      const std::vector<PngText>& extra_texts = {});

// Reads a frames folder ditgen wrote: every frame-NNNN.png from 0 on (other names are ignored), each with its
// "ditgen-frame" chunk agreeing with its name and the others, the same record and size; with `decode`, every
// frame's pixels as RGB. Bounded by the kMaxClip* limits. Error(Input) for anything else.
VideoClip read_png_frames(const std::filesystem::path& folder, bool decode);

}  // namespace ditgen::io
