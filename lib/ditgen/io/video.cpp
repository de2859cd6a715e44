#include "ditgen/io/video.h"

#include "ditgen/core/error.h"

#ifdef DITGEN_HAVE_VIDEO
#include <algorithm>
#include <cstdarg>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "ditgen/io/atomic_file.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>
}
#endif

namespace ditgen::io {

#ifdef DITGEN_HAVE_VIDEO

namespace {

constexpr int kMaxSide = 16384;  // beyond what H.264 levels allow; keeps the size arithmetic in int

// The library never prints: libav's messages are dropped, except that the last error-level line
// on this thread is kept to make our exceptions more specific than av_strerror alone.
thread_local std::string last_log;

void log_callback(void* avcl, int level, const char* fmt, va_list args) {
  if (level > AV_LOG_ERROR) return;
  char line[512];
  int print_prefix = 0;
  av_log_format_line(avcl, level, fmt, args, line, sizeof line, &print_prefix);
  last_log = line;
  while (!last_log.empty() && (last_log.back() == '\n' || last_log.back() == ' ')) last_log.pop_back();
}

// Installs the log callback once and forgets messages left over from earlier calls.
void begin_libav_call() {
  static std::once_flag once;
  std::call_once(once, [] { av_log_set_callback(log_callback); });
  last_log.clear();
}

// av_strerror text for `err`, plus libav's own message when it logged one.
std::string av_error_text(int err) {
  char buffer[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(err, buffer, sizeof buffer);
  std::string text = buffer;
  if (!last_log.empty()) text += " (" + last_log + ")";
  last_log.clear();
  return text;
}

struct OutputFormatFree {
  void operator()(AVFormatContext* f) const {
    avio_closep(&f->pb);
    avformat_free_context(f);  // also runs the muxer's deinit when the trailer was never written
  }
};
struct InputFormatClose {
  void operator()(AVFormatContext* f) const { avformat_close_input(&f); }
};
struct CodecFree {
  void operator()(AVCodecContext* c) const { avcodec_free_context(&c); }
};
struct FrameFree {
  void operator()(AVFrame* f) const { av_frame_free(&f); }
};
struct PacketFree {
  void operator()(AVPacket* p) const { av_packet_free(&p); }
};
struct SwsFree {
  void operator()(SwsContext* s) const { sws_freeContext(s); }
};

}  // namespace

struct VideoWriter::State {
  explicit State(const std::filesystem::path& path) : file(path) {}

  // Declared first so it is destroyed last: the temp file is removed only after libav closed it.
  AtomicFile file;
  int width = 0, height = 0, channels = 0, scale = 1;
  int out_width = 0, out_height = 0;  // scaled, rounded up to even
  std::unique_ptr<AVFormatContext, OutputFormatFree> format;
  std::unique_ptr<AVCodecContext, CodecFree> codec;
  AVStream* stream = nullptr;  // owned by `format`
  std::unique_ptr<AVFrame, FrameFree> frame;
  std::unique_ptr<AVPacket, PacketFree> packet;
  std::unique_ptr<SwsContext, SwsFree> sws;
  std::vector<uint8_t> scaled;  // the upscaled input frame, out_width x out_height x channels
  int64_t next_pts = 0;
  bool finished = false;

  [[noreturn]] void fail(const std::string& what, int err) const {
    throw Error(ErrorKind::Output,
                "cannot write " + file.target().string() + ": " + what + ": " + av_error_text(err));
  }

  // Sends one frame (nullptr flushes) and muxes every packet the encoder has ready.
  void encode(const AVFrame* input) {
    int ret = avcodec_send_frame(codec.get(), input);
    if (ret < 0) fail("encoding failed", ret);
    for (;;) {
      ret = avcodec_receive_packet(codec.get(), packet.get());
      if (ret == AVERROR(EAGAIN) || ret == AVERROR_EOF) return;
      if (ret < 0) fail("encoding failed", ret);
      av_packet_rescale_ts(packet.get(), codec->time_base, stream->time_base);
      packet->stream_index = stream->index;
      ret = av_interleaved_write_frame(format.get(), packet.get());
      av_packet_unref(packet.get());
      if (ret < 0) fail("writing a packet failed", ret);
    }
  }
};

bool video_supported() { return true; }

VideoWriter::VideoWriter(const std::filesystem::path& path, int width, int height, int channels,
                         VideoOptions options) {
  auto usage = [&](const std::string& what) {
    return Error(ErrorKind::Usage, "video " + path.string() + ": " + what);
  };
  if (width <= 0 || height <= 0)
    throw usage("frame size must be positive, got " + std::to_string(width) + "x" + std::to_string(height));
  if (channels != 1 && channels != 3)
    throw usage("frames must have 1 (grey) or 3 (RGB) channels, got " + std::to_string(channels));
  if (options.fps <= 0 || options.fps > 1000)
    throw usage("fps must be in 1..1000, got " + std::to_string(options.fps));
  if (options.scale <= 0) throw usage("scale must be positive, got " + std::to_string(options.scale));
  if (options.crf < 0 || options.crf > 51)
    throw usage("crf must be in 0..51, got " + std::to_string(options.crf));
  // yuv420p needs even sizes: an odd scaled size is rounded up and the extra row or column repeats
  // the last one (no resampling, so nearest-neighbour pixels stay exact).
  const int64_t out_width = (int64_t(width) * options.scale + 1) / 2 * 2;
  const int64_t out_height = (int64_t(height) * options.scale + 1) / 2 * 2;
  if (out_width > kMaxSide || out_height > kMaxSide)
    throw usage("scaled frame size " + std::to_string(out_width) + "x" + std::to_string(out_height) +
                " exceeds " + std::to_string(kMaxSide));

  begin_libav_call();
  state_ = std::make_unique<State>(path);
  State& s = *state_;
  s.width = width;
  s.height = height;
  s.channels = channels;
  s.scale = options.scale;
  s.out_width = int(out_width);
  s.out_height = int(out_height);

  const AVCodec* encoder = avcodec_find_encoder_by_name("libx264");
  if (!encoder) encoder = avcodec_find_encoder(AV_CODEC_ID_H264);
  if (!encoder)
    throw Error(ErrorKind::Output, "cannot write " + path.string() + ": FFmpeg has no H.264 encoder");

  // The temp name has no .mp4 extension, so the muxer is named explicitly.
  const std::string temp = s.file.temp_path().string();
  AVFormatContext* format = nullptr;
  int ret = avformat_alloc_output_context2(&format, nullptr, "mp4", temp.c_str());
  if (ret < 0) s.fail("cannot create the MP4 muxer", ret);
  s.format.reset(format);
  s.stream = avformat_new_stream(format, nullptr);
  s.codec.reset(avcodec_alloc_context3(encoder));
  if (!s.stream || !s.codec) s.fail("out of memory", AVERROR(ENOMEM));

  AVCodecContext* codec = s.codec.get();
  codec->width = s.out_width;
  codec->height = s.out_height;
  codec->pix_fmt = AV_PIX_FMT_YUV420P;
  codec->time_base = AVRational{1, options.fps};
  codec->framerate = AVRational{options.fps, 1};
  // swscale converts with BT.601 limited range; say so, or players guess BT.709 for large frames.
  codec->color_range = AVCOL_RANGE_MPEG;
  codec->colorspace = AVCOL_SPC_SMPTE170M;
  codec->color_primaries = AVCOL_PRI_SMPTE170M;
  codec->color_trc = AVCOL_TRC_SMPTE170M;
  if (format->oformat->flags & AVFMT_GLOBALHEADER) codec->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  // crf is an x264 option; other H.264 encoders keep their default rate control.
  if (std::strcmp(encoder->name, "libx264") == 0) {
    ret = av_opt_set(codec->priv_data, "crf", std::to_string(options.crf).c_str(), 0);
    if (ret < 0) s.fail("cannot set crf", ret);
  }
  ret = avcodec_open2(codec, encoder, nullptr);
  if (ret < 0) s.fail(std::string("cannot open the ") + encoder->name + " encoder", ret);
  ret = avcodec_parameters_from_context(s.stream->codecpar, codec);
  if (ret < 0) s.fail("cannot set the stream parameters", ret);
  s.stream->time_base = codec->time_base;  // a hint; the muxer may pick its own in write_header
  s.stream->avg_frame_rate = codec->framerate;

  ret = avio_open(&format->pb, temp.c_str(), AVIO_FLAG_WRITE);
  if (ret < 0) s.fail("cannot open the file", ret);
  ret = avformat_write_header(format, nullptr);
  if (ret < 0) s.fail("cannot write the MP4 header", ret);

  s.frame.reset(av_frame_alloc());
  s.packet.reset(av_packet_alloc());
  if (!s.frame || !s.packet) s.fail("out of memory", AVERROR(ENOMEM));
  s.frame->format = AV_PIX_FMT_YUV420P;
  s.frame->width = s.out_width;
  s.frame->height = s.out_height;
  ret = av_frame_get_buffer(s.frame.get(), 0);
  if (ret < 0) s.fail("cannot allocate a frame", ret);
  // Same size in and out: swscale only converts colours and subsamples chroma.
  s.sws.reset(sws_getContext(s.out_width, s.out_height, channels == 1 ? AV_PIX_FMT_GRAY8 : AV_PIX_FMT_RGB24,
                             s.out_width, s.out_height, AV_PIX_FMT_YUV420P, SWS_BILINEAR | SWS_ACCURATE_RND,
                             nullptr, nullptr, nullptr));
  if (!s.sws) s.fail("cannot create the colour converter", AVERROR(EINVAL));
  s.scaled.resize(std::size_t(s.out_width) * s.out_height * channels);
}

VideoWriter::~VideoWriter() = default;

void VideoWriter::add_frame(const uint8_t* pixels) {
  State& s = *state_;
  if (!pixels) throw Error(ErrorKind::Usage, "video " + s.file.target().string() + ": null frame");
  if (s.finished)
    throw Error(ErrorKind::Usage, "video " + s.file.target().string() + ": add_frame after finish");
  begin_libav_call();

  // Nearest-neighbour upscale; rows and columns past width*scale / height*scale repeat the last one.
  const std::size_t c = std::size_t(s.channels);
  const std::size_t out_row = std::size_t(s.out_width) * c;
  for (int oy = 0; oy < s.out_height; ++oy) {
    uint8_t* dst = s.scaled.data() + std::size_t(oy) * out_row;
    const int sy = std::min(oy / s.scale, s.height - 1);
    if (oy > 0 && sy == std::min((oy - 1) / s.scale, s.height - 1)) {
      std::memcpy(dst, dst - out_row, out_row);
      continue;
    }
    const uint8_t* src = pixels + std::size_t(sy) * s.width * c;
    for (int ox = 0; ox < s.out_width; ++ox)
      std::memcpy(dst + std::size_t(ox) * c, src + std::size_t(std::min(ox / s.scale, s.width - 1)) * c, c);
  }

  // The encoder may still reference the previous frame's buffers.
  int ret = av_frame_make_writable(s.frame.get());
  if (ret < 0) s.fail("cannot allocate a frame", ret);
  const uint8_t* src_planes[1] = {s.scaled.data()};
  const int src_strides[1] = {int(out_row)};
  sws_scale(s.sws.get(), src_planes, src_strides, 0, s.out_height, s.frame->data, s.frame->linesize);
  s.frame->pts = s.next_pts++;
  s.encode(s.frame.get());
}

void VideoWriter::finish() {
  State& s = *state_;
  if (s.finished)
    throw Error(ErrorKind::Usage, "video " + s.file.target().string() + ": finish called twice");
  s.finished = true;
  begin_libav_call();
  s.encode(nullptr);
  int ret = av_write_trailer(s.format.get());
  if (ret < 0) s.fail("cannot write the MP4 trailer", ret);
  ret = avio_closep(&s.format->pb);
  if (ret < 0) s.fail("cannot close the file", ret);
  s.file.commit();
}

VideoInfo probe_video(const std::filesystem::path& path) {
  begin_libav_call();
  const std::string name = path.string();
  auto fail = [&](const std::string& what, int err) {
    return Error(ErrorKind::Input, "cannot read video " + name + ": " + what + ": " + av_error_text(err));
  };

  AVFormatContext* raw_format = nullptr;
  int ret = avformat_open_input(&raw_format, name.c_str(), nullptr, nullptr);
  if (ret < 0) throw fail("cannot open", ret);
  std::unique_ptr<AVFormatContext, InputFormatClose> format(raw_format);
  ret = avformat_find_stream_info(format.get(), nullptr);
  if (ret < 0) throw fail("cannot read the stream info", ret);
  const int index = av_find_best_stream(format.get(), AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0);
  if (index < 0) throw fail("no video stream", index);
  const AVCodecParameters* par = format->streams[index]->codecpar;

  VideoInfo info;
  info.codec = avcodec_get_name(par->codec_id);
  info.width = par->width;
  info.height = par->height;

  const AVCodec* decoder = avcodec_find_decoder(par->codec_id);
  if (!decoder) throw fail("no decoder for " + info.codec, AVERROR_DECODER_NOT_FOUND);
  std::unique_ptr<AVCodecContext, CodecFree> codec(avcodec_alloc_context3(decoder));
  std::unique_ptr<AVFrame, FrameFree> frame(av_frame_alloc());
  std::unique_ptr<AVPacket, PacketFree> packet(av_packet_alloc());
  if (!codec || !frame || !packet) throw fail("out of memory", AVERROR(ENOMEM));
  ret = avcodec_parameters_to_context(codec.get(), par);
  if (ret < 0) throw fail("bad codec parameters", ret);
  ret = avcodec_open2(codec.get(), decoder, nullptr);
  if (ret < 0) throw fail("cannot open the decoder", ret);

  auto drain = [&] {
    while ((ret = avcodec_receive_frame(codec.get(), frame.get())) >= 0) {
      ++info.frames;
      av_frame_unref(frame.get());
    }
    if (ret != AVERROR(EAGAIN) && ret != AVERROR_EOF) throw fail("decoding failed", ret);
  };
  while ((ret = av_read_frame(format.get(), packet.get())) >= 0) {
    if (packet->stream_index == index) ret = avcodec_send_packet(codec.get(), packet.get());
    av_packet_unref(packet.get());
    if (ret < 0) throw fail("decoding failed", ret);
    drain();
  }
  if (ret != AVERROR_EOF) throw fail("reading failed", ret);
  ret = avcodec_send_packet(codec.get(), nullptr);
  if (ret < 0) throw fail("decoding failed", ret);
  drain();
  return info;
}

#else  // !DITGEN_HAVE_VIDEO

namespace {
[[noreturn]] void no_video() {
  throw Error(
      ErrorKind::Usage,
      "this ditgen was built without video support (FFmpeg's libav libraries were not found at build time)");
}
}  // namespace

struct VideoWriter::State {};

bool video_supported() { return false; }

VideoWriter::VideoWriter(const std::filesystem::path&, int, int, int, VideoOptions) { no_video(); }
VideoWriter::~VideoWriter() = default;
void VideoWriter::add_frame(const uint8_t*) { no_video(); }
void VideoWriter::finish() { no_video(); }
VideoInfo probe_video(const std::filesystem::path&) { no_video(); }

#endif

}  // namespace ditgen::io
