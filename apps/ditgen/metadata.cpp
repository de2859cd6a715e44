// `ditgen metadata`: what a PNG or a clip (MP4, WebM, GIF, a folder of PNG frames) ditgen wrote says about how it
// was made (what `generate --from` replays).
#include <cstdio>
#include <memory>
#include <string>

#include "commands.h"
#include "ditgen/io/png.h"
#include "ditgen/io/video.h"
#include "ditgen/pipeline/outputs.h"

namespace ditgen::cli {

namespace {

struct MetadataOptions {
  std::string file;
  bool json = false;
};

int run_metadata(const MetadataOptions& o) {
  const nlohmann::json record = read_generation_record(o.file);  // Error(Input) for anything else
  if (o.json) {
    std::printf("%s\n", record.dump(2).c_str());
    return 0;
  }
  if (io::detect_video_format(o.file)) {
    std::printf("%s\n", parameters_text(record, o.file).c_str());  // clips keep only the record
  } else {
    for (const io::PngText& t : io::read_png_text(o.file))
      if (t.keyword == "parameters") std::printf("%s\n", t.text.c_str());
  }
  std::printf("Replay: ditgen generate --from %s\n", o.file.c_str());
  return 0;
}

}  // namespace

Command add_metadata_command(CLI::App& root) {
  auto o = std::make_shared<MetadataOptions>();
  CLI::App* app = root.add_subcommand("metadata", "Print the generation parameters a ditgen PNG or clip carries");
  app->add_option("file", o->file, "PNG, MP4, WebM or GIF file, or folder of PNG frames, written by ditgen generate")->required();
  app->add_flag("--json", o->json, "The full record as JSON (prompt, seed, sampler, model hash, device, ...)");
  return {app, [o] { return run_metadata(*o); }};
}

}  // namespace ditgen::cli
