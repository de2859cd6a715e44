// safetensors reader/writer (round trips, strict refusal of malformed files) and the SHA-256 helper.
#include <stdlib.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "catch.h"
#include "helpers.h"
#include "ditgen/core/error.h"
#include "ditgen/core/hash.h"
#include "ditgen/io/safetensors.h"

namespace fs = std::filesystem;
using ditgen::Error;
using ditgen::ErrorKind;
using namespace ditgen::io;
using ditgen::test::contains;
using ditgen::test::TempDir;

namespace {



template <typename T>
std::vector<std::byte> bytes_of(const std::vector<T>& values) {
  std::vector<std::byte> out(values.size() * sizeof(T));
  if (!out.empty()) std::memcpy(out.data(), values.data(), out.size());
  return out;
}

std::vector<std::byte> bytes_of(std::string_view text) {
  std::vector<std::byte> out(text.size());
  if (!out.empty()) std::memcpy(out.data(), text.data(), out.size());
  return out;
}

std::string read_all(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_all(const fs::path& file, std::string_view content) {
  std::ofstream out(file, std::ios::binary);
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
}

// A hand-made file: little-endian length field (the header's size unless given), header, data.
fs::path write_raw(const fs::path& file, std::string_view header, std::string_view data = "",
                   std::optional<uint64_t> length = std::nullopt) {
  uint64_t n = length.value_or(header.size());
  std::string content;
  for (int i = 0; i < 8; ++i) content.push_back(static_cast<char>(n >> (8 * i)));
  content.append(header);
  content.append(data);
  write_all(file, content);
  return file;
}

// Opens a file that must be refused with `kind`; returns the message after checking it names the file.
std::string refusal(const fs::path& file, ErrorKind kind = ErrorKind::Input) {
  try {
    SafetensorsFile::open(file, kind);
  } catch (const Error& e) {
    std::string message = e.what();
    INFO(message);
    CHECK(e.kind() == kind);
    CHECK(contains(message, file.string()));
    return message;
  }
  FAIL("accepted " << file.string());
  return {};
}

std::string tensor_json(const std::string& name, const std::string& dtype, const std::string& shape,
                        const std::string& offsets) {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":" + offsets + "}";
}

}  // namespace

TEST_CASE("dtype names and sizes follow the format", "[safetensors]") {
  const std::vector<std::pair<DType, std::size_t>> expected = {
      {DType::F64, 8}, {DType::F32, 4}, {DType::F16, 2}, {DType::BF16, 2}, {DType::I8, 1},
      {DType::U8, 1},  {DType::I32, 4}, {DType::I64, 8},  {DType::BOOL, 1}};
  for (auto [dtype, size] : expected) {
    CHECK(dtype_size(dtype) == size);
    CHECK(parse_dtype(dtype_name(dtype)) == dtype);
  }
  CHECK(dtype_name(DType::BF16) == "BF16");
  CHECK(dtype_name(DType::BOOL) == "BOOL");
  CHECK_FALSE(parse_dtype("F8_E4M3").has_value());
  CHECK_FALSE(parse_dtype("f32").has_value());
}

TEST_CASE("every dtype, a scalar and an empty tensor round-trip with metadata", "[safetensors]") {
  TempDir dir;
  const fs::path file = dir / "model.safetensors";
  const std::vector<std::byte> f32 = bytes_of(std::vector<float>{0.f, 1.5f, -2.25f, 3e7f, -0.f, 1e-30f});
  const std::vector<std::byte> f16 = bytes_of(std::vector<uint16_t>{0x3c00, 0xc000, 0x7bff, 0x0001});
  const std::vector<std::byte> bf16 = bytes_of(std::vector<uint16_t>{0x3f80, 0xbf80, 0x7f80, 0x0000});
  const std::vector<std::byte> i8 = bytes_of(std::vector<int8_t>{-128, 0, 127});
  const std::vector<std::byte> u8 = bytes_of(std::vector<uint8_t>{0, 1, 128, 254, 255});
  const std::vector<std::byte> i32 = bytes_of(std::vector<int32_t>{std::numeric_limits<int32_t>::min(), 123456});
  const std::vector<std::byte> i64 =
      bytes_of(std::vector<int64_t>{std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()});
  const std::vector<std::byte> flags = bytes_of(std::vector<uint8_t>{1, 0, 1});
  const std::vector<std::byte> scalar = bytes_of(std::vector<float>{2.5f});
  // Deliberately not in name order: the writer sorts.
  const std::vector<TensorData> tensors = {
      {"w.f32", DType::F32, {2, 3}, f32},   {"w.bf16", DType::BF16, {2, 2}, bf16},
      {"w.f16", DType::F16, {4}, f16},      {"w.i8", DType::I8, {3}, i8},
      {"w.u8", DType::U8, {5}, u8},         {"w.i32", DType::I32, {2}, i32},
      {"w.i64", DType::I64, {1, 1, 2}, i64}, {"w.bool", DType::BOOL, {3}, flags},
      {"scale", DType::F32, {}, scalar},    {"empty", DType::I64, {0, 3}, {}},
  };
  const Metadata metadata = {{"ditgen.format", "1"},
                             {"ditgen.config", R"({"depth": 12, "name": "DiT-S/2"})"},
                             {"note", "h\xc3\xa9llo \xe2\x9c\x93"}};
  write_safetensors(file, tensors, metadata);

  SafetensorsFile st = SafetensorsFile::open(file);
  CHECK(st.path() == file);
  CHECK(st.metadata() == metadata);
  REQUIRE(st.tensors().size() == tensors.size());
  for (const TensorData& expected : tensors) {
    INFO(expected.name);
    const TensorView* view = st.find(expected.name);
    REQUIRE(view != nullptr);
    CHECK(view->name == expected.name);
    CHECK(view->dtype == expected.dtype);
    CHECK(view->shape == expected.shape);
    REQUIRE(view->nbytes == expected.bytes.size());
    if (view->nbytes > 0) CHECK(std::memcmp(view->data, expected.bytes.data(), view->nbytes) == 0);
  }
  CHECK(st.find("w") == nullptr);
  CHECK(st.find("") == nullptr);
  CHECK(st.find("scale")->shape.empty());

  // File order is ascending offset, and the writer laid tensors out by name.
  for (std::size_t i = 1; i < st.tensors().size(); ++i) {
    CHECK(st.tensors()[i - 1].data <= st.tensors()[i].data);
    CHECK(st.tensors()[i - 1].name < st.tensors()[i].name);
  }

  // The header is space-padded to a multiple of 8 and the data section is exactly the tensors.
  const std::string raw = read_all(file);
  REQUIRE(raw.size() >= 8);
  uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = header_size << 8 | static_cast<unsigned char>(raw[i]);
  CHECK(header_size % 8 == 0);
  std::size_t total = 0;
  for (const TensorData& t : tensors) total += t.bytes.size();
  CHECK(raw.size() == 8 + header_size + total);
  CHECK(raw[8] == '{');
  CHECK(contains(raw.substr(8, header_size), "\"__metadata__\""));
}

TEST_CASE("the writer omits empty metadata and writes an empty file validly", "[safetensors]") {
  TempDir dir;
  const std::vector<std::byte> one = bytes_of(std::vector<float>{1.f});
  write_safetensors(dir / "a.safetensors", {{"x", DType::F32, {1}, one}});
  CHECK_FALSE(contains(read_all(dir / "a.safetensors"), "__metadata__"));
  CHECK(SafetensorsFile::open(dir / "a.safetensors").metadata().empty());

  write_safetensors(dir / "none.safetensors", {});
  const std::string raw = read_all(dir / "none.safetensors");
  CHECK(raw.size() == 16);
  CHECK(raw.substr(8) == "{}      ");
  SafetensorsFile st = SafetensorsFile::open(dir / "none.safetensors");
  CHECK(st.tensors().empty());
  CHECK(st.metadata().empty());
}

TEST_CASE("the reader accepts padded headers, any entry order, holes and an empty data section", "[safetensors]") {
  TempDir dir;
  SECTION("out-of-order entries with a hole and a zero-byte tensor") {
    // "b" holds bytes 8..12, "a" bytes 0..4; bytes 4..8 belong to no tensor. Header padded with spaces.
    const std::string header = "{" + tensor_json("b", "U8", "[4]", "[8,12]") + "," +
                               tensor_json("a", "U8", "[2,2]", "[0,4]") + "," +
                               tensor_json("z", "F32", "[0]", "[4,4]") + R"(,"__metadata__":{"k":"v"}}   )";
    const fs::path file = write_raw(dir / "holes.safetensors", header, "ABCD....EFGH");
    SafetensorsFile st = SafetensorsFile::open(file);
    REQUIRE(st.tensors().size() == 3);
    CHECK(st.tensors()[0].name == "a");
    CHECK(st.tensors()[1].name == "z");
    CHECK(st.tensors()[2].name == "b");
    CHECK(std::string(reinterpret_cast<const char*>(st.find("a")->data), 4) == "ABCD");
    CHECK(std::string(reinterpret_cast<const char*>(st.find("b")->data), 4) == "EFGH");
    CHECK(st.find("z")->nbytes == 0);
    CHECK(st.metadata() == Metadata{{"k", "v"}});
  }
  SECTION("a minimal header and no data") {
    SafetensorsFile st = SafetensorsFile::open(write_raw(dir / "min.safetensors", "{}"));
    CHECK(st.tensors().empty());
  }
  SECTION("only zero-byte tensors") {
    const std::string header = "{" + tensor_json("e", "BF16", "[3,0]", "[0,0]") + "}";
    SafetensorsFile st = SafetensorsFile::open(write_raw(dir / "zero.safetensors", header));
    REQUIRE(st.tensors().size() == 1);
    CHECK(st.tensors()[0].shape == std::vector<int64_t>{3, 0});
    CHECK(st.tensors()[0].nbytes == 0);
  }
}

TEST_CASE("the reader refuses malformed files, naming the file and the tensor", "[safetensors]") {
  TempDir dir;
  const fs::path file = dir / "model.safetensors";
  const std::string eight_bytes = "01234567";

  SECTION("missing file") {
    const std::string message = refusal(dir / "absent.safetensors", ErrorKind::Model);
    CHECK(message == "cannot open " + (dir / "absent.safetensors").string() + ": No such file or directory");
  }
  SECTION("a folder") { CHECK(contains(refusal(dir.path()), "not a regular file")); }
  SECTION("empty file") {
    write_all(file, "");
    CHECK(contains(refusal(file), "truncated"));
  }
  SECTION("shorter than the length field") {
    write_all(file, std::string("\x02\0\0\0\0", 5));
    CHECK(contains(refusal(file, ErrorKind::Model), "truncated"));
  }
  SECTION("header length beyond the file") {
    write_raw(file, "{}", "", 100);
    CHECK(contains(refusal(file), "truncated: header length 100 exceeds the 2 bytes"));
  }
  SECTION("huge header length") {
    write_raw(file, "{}", "", uint64_t{1} << 63);
    CHECK(contains(refusal(file), "exceeds the limit of 100 MiB"));
    write_raw(file, "{}", "", (uint64_t{100} << 20) + 1);
    CHECK(contains(refusal(file), "exceeds the limit of 100 MiB"));
  }
  SECTION("header length too short") {
    write_raw(file, "{}", "", 1);
    CHECK(contains(refusal(file), "header length 1 is too short"));
  }
  SECTION("non-JSON header") {
    write_raw(file, "{not json}");
    CHECK(contains(refusal(file), "header is not valid JSON"));
    write_raw(file, "{} x");
    CHECK(contains(refusal(file), "header is not valid JSON"));
    write_raw(file, "{\"\xff\":1}");
    CHECK(contains(refusal(file), "header is not valid JSON"));
  }
  SECTION("JSON that is not an object") {
    write_raw(file, "[1, 2]");
    CHECK(contains(refusal(file), "header is not a JSON object"));
  }
  SECTION("entry that is not an object") {
    write_raw(file, R"({"w": [1]})");
    CHECK(contains(refusal(file), "tensor 'w': entry is not a JSON object"));
  }
  SECTION("unexpected or missing keys") {
    write_raw(file, R"({"w":{"dtype":"U8","shape":[8],"data_offsets":[0,8],"extra":1}})", eight_bytes);
    CHECK(contains(refusal(file), "tensor 'w': unexpected key 'extra'"));
    write_raw(file, R"({"w":{"dtype":"U8","data_offsets":[0,8]}})", eight_bytes);
    CHECK(contains(refusal(file), "tensor 'w': missing \"shape\""));
  }
  SECTION("unknown dtype") {
    write_raw(file, "{" + tensor_json("w", "C64", "[1]", "[0,8]") + "}", eight_bytes);
    CHECK(contains(refusal(file), "tensor 'w': unsupported dtype 'C64'"));
    write_raw(file, R"({"w":{"dtype":4,"shape":[8],"data_offsets":[0,8]}})", eight_bytes);
    CHECK(contains(refusal(file), "tensor 'w': dtype is not a string"));
  }
  SECTION("negative dimension") {
    write_raw(file, "{" + tensor_json("w", "U8", "[-2, 4]", "[0,8]") + "}", eight_bytes);
    CHECK(contains(refusal(file), "tensor 'w': negative dimension -2"));
  }
  SECTION("non-integer dimension") {
    write_raw(file, "{" + tensor_json("w", "U8", "[8.0]", "[0,8]") + "}", eight_bytes);
    CHECK(contains(refusal(file), "tensor 'w': shape holds a dimension that is not an integer"));
    write_raw(file, "{" + tensor_json("w", "U8", "8", "[0,8]") + "}", eight_bytes);
    CHECK(contains(refusal(file), "tensor 'w': shape is not an array"));
  }
  SECTION("rank beyond the limit") {
    write_raw(file, "{" + tensor_json("w", "U8", "[1,1,1,1,1,1,1,1,8]", "[0,8]") + "}", eight_bytes);
    CHECK(contains(refusal(file), "tensor 'w': shape has rank 9"));
  }
  SECTION("element count overflow") {
    write_raw(file, "{" + tensor_json("w", "F32", "[4294967296, 4294967296, 4]", "[0,0]") + "}");
    CHECK(contains(refusal(file), "tensor 'w': F32 [4294967296, 4294967296, 4] needs more than 2^64 bytes"));
  }
  SECTION("offsets out of range") {
    write_raw(file, "{" + tensor_json("w", "F32", "[4]", "[0,16]") + "}", eight_bytes);
    CHECK(contains(refusal(file), "tensor 'w': data_offsets [0, 16] exceed the data section of 8 bytes"));
    write_raw(file, "{" + tensor_json("w", "U8", "[0]", "[9,9]") + "}", eight_bytes);
    CHECK(contains(refusal(file), "tensor 'w': data_offsets [9, 9] exceed"));
  }
  SECTION("offsets reversed or malformed") {
    write_raw(file, "{" + tensor_json("w", "U8", "[0]", "[8,0]") + "}", eight_bytes);
    CHECK(contains(refusal(file), "tensor 'w': data_offsets [8, 0] run backwards"));
    for (const char* offsets : {"[0]", "[0,8,8]", "[-1,7]", "[0,8.0]", "\"0,8\""}) {
      INFO(offsets);
      write_raw(file, "{" + tensor_json("w", "U8", "[8]", offsets) + "}", eight_bytes);
      CHECK(contains(refusal(file), "tensor 'w': data_offsets is not a pair of non-negative integers"));
    }
  }
  SECTION("byte count mismatch") {
    write_raw(file, "{" + tensor_json("blocks.0.attn.qkv.weight", "F32", "[4, 4]", "[0,12]") + "}", "0123456789ab");
    CHECK(refusal(file, ErrorKind::Model) == file.string() +
                                                  ": tensor 'blocks.0.attn.qkv.weight': data_offsets [0, 12] hold "
                                                  "12 bytes but F32 [4, 4] needs 64");
  }
  SECTION("overlapping tensors") {
    const std::string header =
        "{" + tensor_json("a", "F32", "[4]", "[0,16]") + "," + tensor_json("b", "F32", "[4]", "[8,24]") + "}";
    write_raw(file, header, std::string(24, 'x'));
    const std::string message = refusal(file);
    CHECK(contains(message, "tensor 'b': data_offsets [8, 24] overlap tensor 'a' at data_offsets [0, 16]"));
  }
  SECTION("the same bytes claimed twice") {
    const std::string header =
        "{" + tensor_json("a", "U8", "[8]", "[0,8]") + "," + tensor_json("b", "U8", "[8]", "[0,8]") + "}";
    write_raw(file, header, eight_bytes);
    CHECK(contains(refusal(file), "overlap tensor 'a'"));
  }
  SECTION("duplicate tensor names") {
    const std::string header =
        "{" + tensor_json("w", "U8", "[4]", "[0,4]") + "," + tensor_json("w", "U8", "[4]", "[4,8]") + "}";
    write_raw(file, header, eight_bytes);
    CHECK(contains(refusal(file), "duplicate tensor name 'w'"));
  }
  SECTION("duplicate keys inside an entry or the metadata") {
    write_raw(file, R"({"w":{"dtype":"U8","dtype":"U8","shape":[8],"data_offsets":[0,8]}})", eight_bytes);
    CHECK(contains(refusal(file), "tensor 'w': duplicate key 'dtype'"));
    write_raw(file, R"({"__metadata__":{"k":"a","k":"b"}})");
    CHECK(contains(refusal(file), "__metadata__: duplicate key 'k'"));
  }
  SECTION("metadata with a non-string value") {
    write_raw(file, R"({"__metadata__":{"ok":"yes","steps":50}})");
    CHECK(contains(refusal(file), "__metadata__ value of 'steps' is not a string"));
    write_raw(file, R"({"__metadata__":["a"]})");
    CHECK(contains(refusal(file), "__metadata__ is not a JSON object"));
  }
  SECTION("empty tensor name") {
    write_raw(file, "{" + tensor_json("", "U8", "[8]", "[0,8]") + "}", eight_bytes);
    CHECK(contains(refusal(file), "a tensor has an empty name"));
  }
  SECTION("control characters in names are escaped in messages") {
    write_raw(file, "{" + tensor_json("a\\nb", "C64", "[1]", "[0,8]") + "}", eight_bytes);
    CHECK(contains(refusal(file), "tensor 'a\\x0ab'"));
  }
}

TEST_CASE("the writer refuses inconsistent tensors and leaves no file behind", "[safetensors]") {
  TempDir dir;
  const fs::path file = dir / "out.safetensors";
  const std::vector<std::byte> twelve(12);
  const std::vector<std::byte> four(4);
  auto refused = [&](const std::vector<TensorData>& tensors, const std::string& fragment) {
    try {
      write_safetensors(file, tensors);
    } catch (const Error& e) {
      INFO(e.what());
      CHECK(e.kind() == ErrorKind::Usage);
      CHECK(contains(e.what(), file.string()));
      CHECK(contains(e.what(), fragment));
      return;
    }
    FAIL("write_safetensors accepted the tensors");
  };

  SECTION("byte count mismatch") {
    refused({{"w", DType::F32, {4, 4}, twelve}}, "tensor 'w': 12 bytes given but F32 [4, 4] needs 64");
    CHECK(fs::is_empty(dir.path()));
  }
  SECTION("duplicate names") {
    refused({{"w", DType::U8, {4}, four}, {"w", DType::U8, {4}, four}}, "duplicate tensor name 'w'");
    CHECK(fs::is_empty(dir.path()));
  }
  SECTION("empty, reserved and misshapen names") {
    refused({{"", DType::U8, {4}, four}}, "empty name");
    refused({{"__metadata__", DType::U8, {4}, four}}, "reserved");
    refused({{"w", DType::U8, {-1, -4}, four}}, "negative dimension");
    refused({{"w", DType::U8, {1, 1, 1, 1, 1, 1, 1, 1, 4}, four}}, "rank 9");
    refused({{"w\xff", DType::U8, {4}, four}}, "not valid UTF-8");
    CHECK(fs::is_empty(dir.path()));
  }
  SECTION("an existing file survives a refused write") {
    write_safetensors(file, {{"old", DType::U8, {4}, four}});
    refused({{"w", DType::F32, {4}, twelve}}, "needs 16");
    SafetensorsFile st = SafetensorsFile::open(file);
    REQUIRE(st.tensors().size() == 1);
    CHECK(st.tensors()[0].name == "old");
    CHECK(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()) == 1);
  }
}

TEST_CASE("writing into a missing folder is an output error and creates nothing", "[safetensors]") {
  TempDir dir;
  const fs::path folder = dir / "missing";
  const std::vector<std::byte> four(4);
  try {
    write_safetensors(folder / "out.safetensors", {{"w", DType::U8, {4}, four}});
    FAIL("write_safetensors wrote into a missing folder");
  } catch (const Error& e) {
    INFO(e.what());
    CHECK(e.kind() == ErrorKind::Output);
    CHECK(contains(e.what(), (folder / "out.safetensors").string()));
  }
  CHECK_FALSE(fs::exists(folder));
  CHECK(fs::is_empty(dir.path()));
}

TEST_CASE("sha256 of byte buffers matches the FIPS 180 vectors", "[hash]") {
  using ditgen::sha256_hex;
  CHECK(sha256_hex(bytes_of("")) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(sha256_hex(bytes_of("abc")) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(sha256_hex(bytes_of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")) ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  // Lengths around the 56-byte padding boundary and the 64-byte block (values from sha256sum).
  const std::vector<std::pair<std::size_t, std::string>> runs = {
      {55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"},
      {56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"},
      {63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34"},
      {64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"},
      {65, "635361c48bb9eab14198e76ea8ab7f1a41685d6ad62aa9146d301d4f17eb0ae0"},
  };
  for (const auto& [length, digest] : runs) {
    INFO(length);
    CHECK(sha256_hex(bytes_of(std::string(length, 'a'))) == digest);
  }
}

TEST_CASE("sha256 of files streams over chunks and reports unreadable files", "[hash]") {
  using ditgen::sha256_hex;
  TempDir dir;
  write_all(dir / "empty", "");
  CHECK(sha256_hex(dir / "empty") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  write_all(dir / "abc", "abc");
  CHECK(sha256_hex(dir / "abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");

  // 2.5 MiB + 3 bytes spans several read chunks and ends mid-block; the digest is from sha256sum.
  std::string big((std::size_t{5} << 19) + 3, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 131 + i / 4099) & 0xff);
  write_all(dir / "big", big);
  const std::string expected = "9648e47405b0308a60bb0740c029bde4cdfd932e562dc9e4fc3b6307ca91a178";
  CHECK(sha256_hex(dir / "big") == expected);
  CHECK(sha256_hex(bytes_of(big)) == expected);

  for (const fs::path& bad : {dir / "absent", dir.path()}) {
    INFO(bad.string());
    try {
      sha256_hex(bad);
      FAIL("hashed an unreadable path");
    } catch (const Error& e) {
      CHECK(e.kind() == ErrorKind::Input);
      CHECK(contains(e.what(), "cannot read " + bad.string()));
    }
  }
}
