#include "ditgen/io/yaml_json.h"

#include "ditgen/core/error.h"
#include "ditgen/io/bounded_file.h"

namespace ditgen::io {

namespace {

constexpr int kMaxDepth = 64;

nlohmann::json convert(const YAML::Node& node, int depth) {
  if (depth > kMaxDepth) throw Error(ErrorKind::Input, "YAML nested deeper than " + std::to_string(kMaxDepth));
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      nlohmann::json j = nlohmann::json::object();
      for (const auto& kv : node) {
        // YAML allows a list or a mapping as a key (`? [a, b]`); no setting is named that way.
        if (!kv.first.IsScalar())
          throw Error(ErrorKind::Input, "a key must be a name, not a list or mapping (line " +
                                            std::to_string(kv.first.Mark().line + 1) + ")");
        j[kv.first.Scalar()] = convert(kv.second, depth + 1);
      }
      return j;
    }
    case YAML::NodeType::Sequence: {
      nlohmann::json j = nlohmann::json::array();
      for (const auto& item : node) j.push_back(convert(item, depth + 1));
      return j;
    }
    case YAML::NodeType::Scalar: {
      const std::string s = node.Scalar();
      if (node.Tag() == "!") return s;  // quoted: keep as string
      if (s == "true" || s == "false") return s == "true";
      try {
        size_t used = 0;
        long long i = std::stoll(s, &used);
        if (used == s.size()) return i;
        double d = std::stod(s, &used);
        if (used == s.size()) return d;
      } catch (const std::exception&) {
      }
      return s;
    }
    default: return nullptr;
  }
}

}  // namespace

nlohmann::json yaml_to_json(const YAML::Node& node) { return convert(node, 0); }

nlohmann::json parse_yaml(const std::string& text, const std::string& source) {
  try {
    return yaml_to_json(YAML::Load(text));
  } catch (const YAML::Exception& e) {
    throw Error(ErrorKind::Input, source + ": " + e.what());
  } catch (const Error& e) {
    throw Error(e.kind(), source + ": " + e.what());
  }
}

YAML::Node load_yaml_file(const std::filesystem::path& path) {
  const std::string text = read_bounded_file(path, kMaxYamlFileBytes, ErrorKind::Input);
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw Error(ErrorKind::Input, path.string() + ": " + e.what());
  }
}

nlohmann::json read_yaml_file(const std::filesystem::path& path) {
  return parse_yaml(read_bounded_file(path, kMaxYamlFileBytes, ErrorKind::Input), path.string());
}

}  // namespace ditgen::io
