#include "ditgen/io/prompt_file.h"

#include <fstream>
#include <iostream>
#include <set>

#include <nlohmann/json.hpp>

#include "ditgen/core/error.h"
#include "ditgen/io/json_limits.h"
#include "ditgen/io/untrusted_text.h"

namespace ditgen::io {

namespace {

constexpr size_t kMaxLine = 1 << 20;
constexpr size_t kMaxEntries = 1000000;
constexpr std::string_view kByteOrderMark = "\xef\xbb\xbf";  // some editors start UTF-8 files with it

std::string trim(const std::string& s) {
  const auto begin = s.find_first_not_of(" \t\r\n");
  if (begin == std::string::npos) return "";
  return s.substr(begin, s.find_last_not_of(" \t\r\n") - begin + 1);
}

// "WxH" or "N" (square).
void parse_size(const nlohmann::json& v, PromptEntry& e) {
  if (v.is_number_integer()) {
    e.width = e.height = v.get<int>();
    return;
  }
  const std::string s = v.is_string() ? v.get<std::string>() : "";
  const auto x = s.find('x');
  try {
    size_t used = 0;
    if (x == std::string::npos) {
      e.width = e.height = std::stoi(s, &used);
      if (used == s.size()) return;
    } else {
      e.width = std::stoi(s.substr(0, x), &used);
      if (used == x) {
        e.height = std::stoi(s.substr(x + 1), &used);
        if (used == s.size() - x - 1) return;
      }
    }
  } catch (const std::exception&) {
  }
  throw std::invalid_argument("size must be \"WxH\" or a number, got " + json_excerpt(v));
}

template <class T>
T number(const nlohmann::json& v, const char* key, T lo, T hi) {
  if (!v.is_number() || (std::is_integral_v<T> && !v.is_number_integer()))
    throw std::invalid_argument(std::string(key) + " must be a number, got " + json_excerpt(v));
  // A negative number read as unsigned would wrap around; nlohmann stores non-negative integers unsigned.
  if (std::is_unsigned_v<T> && !v.is_number_unsigned())
    throw std::invalid_argument(std::string(key) + " is out of range: " + json_excerpt(v));
  const T value = v.get<T>();
  if (value < lo || value > hi)
    throw std::invalid_argument(std::string(key) + " is out of range: " + json_excerpt(v));
  return value;
}

void parse_json_line(const std::string& text, PromptEntry& e) {
  const nlohmann::json j = parse_json(text, ErrorKind::Input, "the line");
  if (!j.is_object()) throw std::invalid_argument("a JSON line must be an object");
  static const std::set<std::string> known{"prompt", "negative", "seed", "steps", "cfg", "size", "n", "schedule"};
  for (const auto& [key, value] : j.items())
    if (!known.count(key)) throw std::invalid_argument("unknown key '" + excerpt(key) + "'");
  if (!j.contains("prompt") || !j["prompt"].is_string() || trim(j["prompt"].get<std::string>()).empty())
    throw std::invalid_argument("needs a non-empty \"prompt\" string");
  e.prompt = trim(j["prompt"].get<std::string>());
  if (j.contains("negative")) {
    const auto& n = j["negative"];
    if (!n.is_null() && !n.is_string()) throw std::invalid_argument("negative must be a prompt, \"none\" or null");
    if (n.is_string() && trim(n.get<std::string>()) != "none" && !trim(n.get<std::string>()).empty())
      e.negative = trim(n.get<std::string>());
  }
  if (j.contains("seed")) e.seed = number<uint64_t>(j["seed"], "seed", 0, UINT64_MAX);
  if (j.contains("steps")) e.steps = number<int>(j["steps"], "steps", 1, 100000);
  if (j.contains("cfg")) e.cfg = number<double>(j["cfg"], "cfg", 0.0, 1000.0);
  if (j.contains("size")) parse_size(j["size"], e);
  if (j.contains("n")) e.n = number<int>(j["n"], "n", 1, 10000);
  if (j.contains("schedule")) {
    if (!j["schedule"].is_string() || j["schedule"].get<std::string>().empty())
      throw std::invalid_argument("schedule must be a preset name or a schedule string");
    e.schedule = j["schedule"].get<std::string>();
  }
}

// Reads one line into `raw` without its '\n'; false at the end of the input. A line past kMaxLine bytes
// fails (Error(Input) naming `where()`) before more of it is read, so a file without line breaks cannot
// exhaust memory.
template <class Where>
bool read_line(std::istream& in, std::string& raw, const Where& where) {
  raw.clear();
  std::streambuf* buffer = in.rdbuf();
  for (;;) {
    const int c = buffer->sbumpc();
    if (c == std::char_traits<char>::eof()) {
      in.setstate(std::ios::eofbit);
      return !raw.empty();
    }
    if (c == '\n') return true;
    if (raw.size() == kMaxLine) throw Error(ErrorKind::Input, where() + ": line longer than 1 MiB");
    raw += static_cast<char>(c);
  }
}

// Prompts end up in PNG text and file names: a control byte (a NUL, a lone carriage return) is refused here
// rather than after the image was computed.
void check_text(const std::string& text, const char* what) {
  for (unsigned char c : text)
    if ((c < 0x20 && c != '\t') || c == 0x7f) throw std::invalid_argument(std::string(what) + " contains a control character");
}

}  // namespace

std::vector<PromptEntry> parse_prompts(std::istream& in, const std::string& name) {
  std::vector<PromptEntry> entries;
  std::string raw;
  int line = 0;
  while (read_line(in, raw, [&] { return name + ":" + std::to_string(line + 1); })) {
    ++line;
    if (line == 1 && raw.starts_with(kByteOrderMark)) raw.erase(0, kByteOrderMark.size());
    const std::string text = trim(raw);
    if (text.empty() || text[0] == '#') continue;
    if (entries.size() == kMaxEntries)
      throw Error(ErrorKind::Input, name + ": more than " + std::to_string(kMaxEntries) + " prompts");
    PromptEntry e;
    e.line = line;
    try {
      if (!is_utf8(text)) throw std::invalid_argument("not UTF-8 text (prompt files must be UTF-8)");
      if (text[0] == '{')
        parse_json_line(text, e);
      else
        e.prompt = text;
      check_text(e.prompt, "the prompt");
      if (e.negative) check_text(*e.negative, "the negative prompt");
    } catch (const std::exception& ex) {
      e.error = name + ":" + std::to_string(line) + ": " + ex.what();
    }
    entries.push_back(std::move(e));
  }
  if (in.bad()) throw Error(ErrorKind::Input, "cannot read prompts from " + name);
  return entries;
}

std::vector<PromptEntry> read_prompt_file(const std::string& path) {
  if (path == "-") return parse_prompts(std::cin, "stdin");
  std::error_code ec;
  const auto type = std::filesystem::status(path, ec).type();
  if (type == std::filesystem::file_type::directory)
    throw Error(ErrorKind::Input, "prompt file " + path + " is a folder");
  // A pipe is fine (`-f <(command)`); a device such as /dev/zero is not a file of prompts.
  if (!ec && type != std::filesystem::file_type::regular && type != std::filesystem::file_type::fifo)
    throw Error(ErrorKind::Input, "prompt file " + path + " is not a regular file or a pipe");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorKind::Input, "cannot open prompt file " + path);
  return parse_prompts(in, path);
}

}  // namespace ditgen::io
