#include "ditgen/io/av_video.h"

#include "ditgen/core/error.h"

#ifdef DITGEN_HAVE_VIDEO
#include <algorithm>
#include <cstdarg>
#include <cstring>
#include <cstdio>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ditgen/io/atomic_file.h"
#include "ditgen/io/bounded_file.h"
#include "ditgen/io/untrusted_text.h"

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

constexpr int kMaxSide = kMaxClipSide;  // beyond what H.264 levels allow; keeps the size arithmetic in int

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
struct DictionaryFree {
  void operator()(AVDictionary* d) const { av_dict_free(&d); }
};

uint64_t read_be(const uint8_t* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | p[i];
  return v;
}

// Whether the file's top level ends where its parts say: MP4 boxes (32- or 64-bit sizes, 0 meaning "to the end")
// tile the file without running past it; WebM's EBML header and Segment fit in it (a Segment of unknown size
// always does). Reads only the headers.
bool whole_container(std::FILE* file, uint64_t size, VideoFormat format) {
  uint8_t head[16];
  if (format == VideoFormat::Mp4) {
    for (uint64_t at = 0; at < size;) {
      if (size - at < 8 || std::fseek(file, long(at), SEEK_SET) != 0 || std::fread(head, 1, 8, file) != 8) return false;
      uint64_t box = read_be(head, 4);
      if (box == 0) return true;  // the last box, to the end of the file
      if (box == 1) {             // a 64-bit size follows the type
        if (size - at < 16 || std::fread(head + 8, 1, 8, file) != 8) return false;
        box = read_be(head + 8, 8);
        if (box < 16) return false;
      } else if (box < 8) {
        return false;
      }
      if (box > size - at) return false;
      at += box;
    }
    return true;
  }
  // EBML elements: an ID (1..4 bytes, its length marked by the first byte's leading zeros) and a size (1..8 bytes,
  // the marker bit cleared; all ones means unknown).
  uint64_t at = 0;
  for (int element = 0; element < 2; ++element) {
    if (size - at < 2 || std::fseek(file, long(at), SEEK_SET) != 0) return false;
    const std::size_t got = std::fread(head, 1, std::size_t(std::min<uint64_t>(12, size - at)), file);
    auto vint_length = [](uint8_t first) {
      int n = 1;
      while (n <= 8 && !(first & (0x80 >> (n - 1)))) ++n;
      return n;
    };
    const int id_length = vint_length(head[0]);
    if (id_length > 4 || std::size_t(id_length) >= got) return false;
    const int size_length = vint_length(head[id_length]);
    if (size_length > 8 || std::size_t(id_length + size_length) > got) return false;
    const uint64_t marker = uint64_t(0x80 >> (size_length - 1)) << (8 * (size_length - 1));
    const uint64_t data = read_be(head + id_length, size_length) & ~marker;
    const uint64_t unknown = (uint64_t(1) << (7 * size_length)) - 1;
    if (data == unknown) return element == 1;
    at += uint64_t(id_length + size_length);
    if (data > size - at) return false;
    at += data;
  }
  return true;
}

// libav reads a name with a colon before any slash ("a:b.mp4") as a protocol; "file:" makes every name a file.
std::string file_url(const std::filesystem::path& path) { return "file:" + path.string(); }

constexpr const char* kFrameSizeTag = "ditgen frame size ";

// The source frame size a ditgen description tag gives, {0, 0} for other text.
std::pair<int, int> tagged_frame_size(const AVDictionary* metadata) {
  const AVDictionaryEntry* tag = av_dict_get(metadata, "description", nullptr, 0);
  int width = 0, height = 0;
  char end = 0;
  if (!tag || std::strncmp(tag->value, kFrameSizeTag, std::strlen(kFrameSizeTag)) != 0 ||
      std::sscanf(tag->value + std::strlen(kFrameSizeTag), "%9dx%9d%c", &width, &height, &end) != 2 || width < 1 ||
      height < 1)
    return {0, 0};
  return {width, height};
}

const char* muxer_name(VideoFormat format) { return format == VideoFormat::WebM ? "webm" : "mp4"; }
const char* container_name(VideoFormat format) { return format == VideoFormat::WebM ? "WebM" : "MP4"; }

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
  const char* container = "MP4";

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
  const bool webm = options.format == VideoFormat::WebM;
  if (options.format != VideoFormat::Mp4 && !webm)
    throw usage("VideoWriter writes MP4 or WebM, not " + std::string(video_format_name(options.format)));
  if (width <= 0 || height <= 0)
    throw usage("frame size must be positive, got " + std::to_string(width) + "x" + std::to_string(height));
  if (channels != 1 && channels != 3)
    throw usage("frames must have 1 (grey) or 3 (RGB) channels, got " + std::to_string(channels));
  if (options.fps <= 0 || options.fps > 1000)
    throw usage("fps must be in 1..1000, got " + std::to_string(options.fps));
  if (options.scale <= 0) throw usage("scale must be positive, got " + std::to_string(options.scale));
  const int max_crf = webm ? 63 : 51;
  if (options.crf < 0 || options.crf > max_crf)
    throw usage("crf must be in 0.." + std::to_string(max_crf) + ", got " + std::to_string(options.crf));
  if (options.comment.size() > kMaxRecordBytes) throw usage("the comment is larger than 1 MiB");
  if (options.comment.find('\0') != std::string::npos || !is_utf8(options.comment))
    throw usage("the comment must be UTF-8 text without NUL bytes");
  // yuv420p H.264 needs even sizes: an odd scaled size is rounded up and the extra row or column repeats
  // the last one (no resampling, so nearest-neighbour pixels stay exact). VP9 codes odd sizes itself.
  const int64_t round = webm ? 1 : 2;
  const int64_t out_width = (int64_t(width) * options.scale + round - 1) / round * round;
  const int64_t out_height = (int64_t(height) * options.scale + round - 1) / round * round;
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
  s.container = container_name(options.format);

  const AVCodec* encoder = nullptr;
  if (webm) {
    encoder = avcodec_find_encoder_by_name("libvpx-vp9");
    if (!encoder)
      throw Error(ErrorKind::Output, "cannot write " + path.string() + ": FFmpeg has no VP9 encoder (libvpx-vp9)");
  } else {
    encoder = avcodec_find_encoder_by_name("libx264");
    if (!encoder) encoder = avcodec_find_encoder(AV_CODEC_ID_H264);
    if (!encoder)
      throw Error(ErrorKind::Output, "cannot write " + path.string() + ": FFmpeg has no H.264 encoder");
  }

  // The temp name has no extension, so the muxer is named explicitly.
  const std::string temp = file_url(s.file.temp_path());
  AVFormatContext* format = nullptr;
  int ret = avformat_alloc_output_context2(&format, nullptr, muxer_name(options.format), temp.c_str());
  if (ret < 0) s.fail(std::string("cannot create the ") + s.container + " muxer", ret);
  s.format.reset(format);
  s.stream = avformat_new_stream(format, nullptr);
  s.codec.reset(avcodec_alloc_context3(encoder));
  if (!s.stream || !s.codec) s.fail("out of memory", AVERROR(ENOMEM));
  // MP4 keeps it as the iTunes ©cmt atom (the muxer writes no other free-form tag), WebM as a COMMENT tag.
  if (!options.comment.empty()) {
    ret = av_dict_set(&format->metadata, "comment", options.comment.c_str(), 0);
    if (ret < 0) s.fail("cannot set the comment", ret);
  }
  // The size before scaling, so that read_av_video gives back the frames it was given (MP4's `desc` atom).
  const std::string frame_size = kFrameSizeTag + std::to_string(width) + "x" + std::to_string(height);
  ret = av_dict_set(&format->metadata, "description", frame_size.c_str(), 0);
  if (ret < 0) s.fail("cannot set the description", ret);

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
  const std::string crf = std::to_string(options.crf);
  if (webm) {
    // Constant quality: libvpx reads crf only with a zero bit rate; "good" at cpu-used 4 is fast enough on 2 cores.
    codec->bit_rate = 0;
    for (auto [key, value] : {std::pair{"crf", crf.c_str()}, {"deadline", "good"}, {"cpu-used", "4"}}) {
      ret = av_opt_set(codec->priv_data, key, value, 0);
      if (ret < 0) s.fail(std::string("cannot set ") + key, ret);
    }
  } else if (std::strcmp(encoder->name, "libx264") == 0) {  // crf is an x264 option; others keep their default
    ret = av_opt_set(codec->priv_data, "crf", crf.c_str(), 0);
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
  if (ret < 0) s.fail(std::string("cannot write the ") + s.container + " header", ret);

  s.frame.reset(av_frame_alloc());
  s.packet.reset(av_packet_alloc());
  if (!s.frame || !s.packet) s.fail("out of memory", AVERROR(ENOMEM));
  s.frame->format = AV_PIX_FMT_YUV420P;
  s.frame->width = s.out_width;
  s.frame->height = s.out_height;
  ret = av_frame_get_buffer(s.frame.get(), 0);
  if (ret < 0) s.fail("cannot allocate a frame", ret);
  // Same size in and out: swscale only converts colours and subsamples chroma.
  // Each 2x2 block's chroma is its mean (SWS_AREA): with a scale of 2 or more, every source pixel keeps its own
  // colour through 4:2:0, where a bilinear filter would bleed it into its neighbours.
  s.sws.reset(sws_getContext(s.out_width, s.out_height, channels == 1 ? AV_PIX_FMT_GRAY8 : AV_PIX_FMT_RGB24,
                             s.out_width, s.out_height, AV_PIX_FMT_YUV420P, SWS_AREA | SWS_ACCURATE_RND,
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
  if (ret < 0) s.fail(std::string("cannot write the ") + s.container + " trailer", ret);
  ret = avio_closep(&s.format->pb);
  if (ret < 0) s.fail("cannot close the file", ret);
  s.file.commit();
}

VideoClip read_av_video(const std::filesystem::path& path, VideoFormat format, bool decode) {
  const std::string name = path.string();
  auto damaged = [&](const std::string& what) { return Error(ErrorKind::Input, "cannot read video " + name + ": " + what); };
  auto fail = [&](const std::string& what, int err) { return damaged(what + ": " + av_error_text(err)); };
  const bool webm = format == VideoFormat::WebM;
  if (format != VideoFormat::Mp4 && !webm)
    throw Error(ErrorKind::Usage, "read_av_video reads MP4 or WebM, not " + std::string(video_format_name(format)));
  // A regular file of bounded size (a FIFO or a device would block libav or never end), whole: libav reads a
  // file cut short without complaint when only the record at its end is lost.
  {
    const RegularFile f = open_regular_file(path, ErrorKind::Input);
    if (f.size > std::size_t(kMaxClipBytes)) throw damaged("larger than " + std::to_string(kMaxClipBytes >> 20) + " MiB");
    if (!whole_container(f.file.get(), f.size, format)) throw damaged("truncated (its last part runs past the end)");
  }

  begin_libav_call();
  // Only the container the caller saw, from a plain file: no probing, no other protocols (an MP4 may point
  // at other files or URLs; the whitelist refuses them).
  AVDictionary* options = nullptr;
  av_dict_set(&options, "protocol_whitelist", "file", 0);
  av_dict_set(&options, "format_whitelist", webm ? "matroska,webm" : "mov,mp4,m4a,3gp,3g2,mj2", 0);
  AVFormatContext* raw_format = nullptr;
  int ret = avformat_open_input(&raw_format, file_url(path).c_str(), av_find_input_format(muxer_name(format)), &options);
  av_dict_free(&options);
  if (ret < 0) throw fail("cannot open", ret);
  std::unique_ptr<AVFormatContext, InputFormatClose> input(raw_format);

  VideoClip clip;
  clip.format = format;
  if (const AVDictionaryEntry* comment = av_dict_get(input->metadata, "comment", nullptr, 0)) {
    clip.record = comment->value;
    if (clip.record.size() > kMaxRecordBytes) throw damaged("its comment is larger than 1 MiB");
  }
  if (!decode) return clip;

  ret = avformat_find_stream_info(input.get(), nullptr);
  if (ret < 0) throw fail("cannot read the stream info", ret);
  const int index = av_find_best_stream(input.get(), AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0);
  if (index < 0) throw fail("no video stream", index);
  const AVStream* stream = input->streams[index];
  const AVCodecParameters* par = stream->codecpar;
  clip.codec = avcodec_get_name(par->codec_id);
  if (par->codec_id != AV_CODEC_ID_H264 && par->codec_id != AV_CODEC_ID_VP9)
    throw damaged("its " + excerpt(clip.codec) + " stream is not one ditgen reads (H.264 or VP9)");
  if (par->width < 1 || par->height < 1 || par->width > kMaxSide || par->height > kMaxSide)
    throw damaged("frame size " + std::to_string(par->width) + "x" + std::to_string(par->height) + " is outside 1.." +
                  std::to_string(kMaxSide));
  AVRational rate = stream->avg_frame_rate;
  if (rate.num <= 0 || rate.den <= 0) rate = stream->r_frame_rate;
  clip.fps = rate.num > 0 && rate.den > 0 ? av_q2d(rate) : 0.0;

  const AVCodec* decoder = avcodec_find_decoder(par->codec_id);
  if (!decoder) throw fail("no decoder for " + clip.codec, AVERROR_DECODER_NOT_FOUND);
  std::unique_ptr<AVCodecContext, CodecFree> codec(avcodec_alloc_context3(decoder));
  std::unique_ptr<AVFrame, FrameFree> frame(av_frame_alloc());
  std::unique_ptr<AVPacket, PacketFree> packet(av_packet_alloc());
  if (!codec || !frame || !packet) throw fail("out of memory", AVERROR(ENOMEM));
  ret = avcodec_parameters_to_context(codec.get(), par);
  if (ret < 0) throw fail("bad codec parameters", ret);
  codec->max_pixels = int64_t(kMaxSide) * kMaxSide;
  ret = avcodec_open2(codec.get(), decoder, nullptr);
  if (ret < 0) throw fail("cannot open the decoder", ret);

  // Each frame is converted to RGB and appended, after the limits are checked for it. A ditgen clip scaled up by
  // an integer factor (its description tag) is scaled back down: each block's mean, padding cut off.
  const auto [tagged_width, tagged_height] = tagged_frame_size(input->metadata);
  int coded_width = 0, coded_height = 0, scale = 1;
  std::unique_ptr<SwsContext, SwsFree> sws;
  std::vector<uint8_t> rgb;  // a decoded frame before it is scaled down
  auto take = [&](const AVFrame& f) {
    if (clip.frames == 0) {
      if (f.width < 1 || f.height < 1 || f.width > kMaxSide || f.height > kMaxSide)
        throw damaged("a decoded frame of " + std::to_string(f.width) + "x" + std::to_string(f.height));
      coded_width = clip.coded_width = f.width;
      coded_height = clip.coded_height = f.height;
      clip.width = f.width;
      clip.height = f.height;
      // The writer scaled by an integer and rounded H.264 sizes up to even: undo both.
      const int s = tagged_width > 0 ? f.width / tagged_width : 0;
      if (s >= 1 && s == f.height / tagged_height && f.width - s * tagged_width <= 1 && f.height - s * tagged_height <= 1) {
        scale = s;
        clip.width = tagged_width;
        clip.height = tagged_height;
      }
    } else if (f.width != coded_width || f.height != coded_height) {
      throw damaged("the frame size changes within the stream");
    }
    const int64_t frame_bytes = int64_t(clip.width) * clip.height * 3;
    if (clip.frames + 1 > kMaxClipFrames) throw damaged("more than " + std::to_string(kMaxClipFrames) + " frames");
    if ((clip.frames + 1) * frame_bytes > kMaxClipBytes)
      throw damaged("its frames decode to more than " + std::to_string(kMaxClipBytes >> 20) + " MiB");
    // Chroma taken as is for each pixel (SWS_POINT, full horizontal resolution): with the writer's scale every
    // 2x2 block holds one source pixel's colour.
    sws.reset(sws_getCachedContext(sws.release(), f.width, f.height, AVPixelFormat(f.format), f.width, f.height,
                                   AV_PIX_FMT_RGB24, SWS_POINT | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT, nullptr,
                                   nullptr, nullptr));
    if (!sws) throw damaged("cannot convert its pixel format to RGB");
    clip.pixels.resize(std::size_t((clip.frames + 1) * frame_bytes));
    uint8_t* out = clip.pixels.data() + std::size_t(clip.frames * frame_bytes);
    const bool direct = clip.width == f.width && clip.height == f.height;
    rgb.resize(direct ? 0 : std::size_t(f.width) * std::size_t(f.height) * 3);
    uint8_t* planes[1] = {direct ? out : rgb.data()};
    const int strides[1] = {f.width * 3};
    sws_scale(sws.get(), f.data, f.linesize, 0, f.height, planes, strides);
    if (rgb.size()) {
      const int area = scale * scale;
      for (int y = 0; y < clip.height; ++y)
        for (int x = 0; x < clip.width; ++x)
          for (int c = 0; c < 3; ++c) {
            int sum = 0;
            for (int dy = 0; dy < scale; ++dy)
              for (int dx = 0; dx < scale; ++dx)
                sum += rgb[(std::size_t(y * scale + dy) * std::size_t(f.width) + std::size_t(x * scale + dx)) * 3 + std::size_t(c)];
            out[(std::size_t(y) * std::size_t(clip.width) + std::size_t(x)) * 3 + std::size_t(c)] = uint8_t((sum + area / 2) / area);
          }
    }
    ++clip.frames;
  };
  auto drain = [&] {
    while ((ret = avcodec_receive_frame(codec.get(), frame.get())) >= 0) {
      take(*frame);
      av_frame_unref(frame.get());
    }
    if (ret != AVERROR(EAGAIN) && ret != AVERROR_EOF) throw fail("decoding failed", ret);
  };
  while ((ret = av_read_frame(input.get(), packet.get())) >= 0) {
    if (packet->stream_index == index) ret = avcodec_send_packet(codec.get(), packet.get());
    av_packet_unref(packet.get());
    if (ret < 0) throw fail("decoding failed", ret);
    drain();
  }
  if (ret != AVERROR_EOF) throw fail("reading failed", ret);
  ret = avcodec_send_packet(codec.get(), nullptr);
  if (ret < 0) throw fail("decoding failed", ret);
  drain();
  if (clip.frames == 0) throw damaged("no frames");
  return clip;
}

VideoInfo probe_video(const std::filesystem::path& path) {
  char head[12] = {};
  const RegularFile f = open_regular_file(path, ErrorKind::Input);
  const std::size_t got = std::fread(head, 1, sizeof head, f.file.get());
  const std::optional<VideoFormat> format = sniff_video_format({head, got});
  if (format != VideoFormat::Mp4 && format != VideoFormat::WebM)
    throw Error(ErrorKind::Input, path.string() + " is not an MP4 or WebM file");
  const VideoClip clip = read_av_video(path, *format, true);
  return {clip.codec, clip.coded_width, clip.coded_height, clip.frames};
}

#else  // !DITGEN_HAVE_VIDEO

namespace {
[[noreturn]] void no_video() {
  throw Error(ErrorKind::Usage,
              "this ditgen was built without FFmpeg, so it writes and reads no MP4 or WebM; a .gif or a folder of "
              "PNG frames (a name ending in '/') works without it");
}
}  // namespace

struct VideoWriter::State {};

bool video_supported() { return false; }

VideoWriter::VideoWriter(const std::filesystem::path&, int, int, int, VideoOptions) { no_video(); }
VideoWriter::~VideoWriter() = default;
void VideoWriter::add_frame(const uint8_t*) { no_video(); }
void VideoWriter::finish() { no_video(); }
VideoClip read_av_video(const std::filesystem::path&, VideoFormat, bool) { no_video(); }
VideoInfo probe_video(const std::filesystem::path&) { no_video(); }

#endif

}  // namespace ditgen::io
