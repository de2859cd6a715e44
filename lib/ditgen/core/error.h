// Typed errors: every failure the library reports carries a category that the CLI maps to an exit code.
#pragma once

#include <stdexcept>
#include <string>

namespace ditgen {

// Categories of failure; the numbers are the CLI's documented exit codes.
enum class ErrorKind {
  Runtime = 1,  // the computation failed: out of memory, device error, internal fault
  Usage = 2,    // a flag or value is invalid (unknown class, steps <= 0, bad size, ...)
  Input = 3,    // an input file (noise, prompts, config, dataset) is missing, unreadable or malformed
  Model = 4,    // a model file is missing, corrupt or incompatible
  Output = 5,   // an output file or folder cannot be written
  Partial = 6,  // some outputs of a batch failed while others were written
};

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const { return kind_; }

 private:
  ErrorKind kind_;
};

// The process exit code for a category (see the README's table).
inline int exit_code(ErrorKind kind) { return static_cast<int>(kind); }

// Short lowercase name of a category, used in messages ("model error: ...").
const char* kind_name(ErrorKind kind);

}  // namespace ditgen
