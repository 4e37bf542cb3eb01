#pragma once
// Typed errors. Library code throws these; `main` catches them once, prints the one-line
// message (which names the file, key, tensor or byte offset) and exits non-zero.
#include <stdexcept>
#include <string>

namespace sf {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A file, tensor or record that does not follow its format (safetensors, tokenizer.json, HDF5 schema).
class FormatError : public Error {
 public:
  using Error::Error;
};

// A configuration value that is missing, of the wrong type, unknown or unsupported.
class ConfigError : public Error {
 public:
  using Error::Error;
};

// The operating system refused: missing file, permission, disk full.
class IoError : public Error {
 public:
  using Error::Error;
};

// Tensor shapes, ids or sizes that do not fit together.
class ShapeError : public Error {
 public:
  using Error::Error;
};

// A computed number that is not finite (NaN/Inf logits of a model, a diverged loss): the unit of
// work stops instead of storing or using it.
class NumericError : public Error {
 public:
  using Error::Error;
};

// The job was asked to stop (SIGTERM/SIGUSR1) and stopped cleanly after flushing.
class Interrupted : public Error {
 public:
  using Error::Error;
};

}  // namespace sf
