#pragma once
// Thin RAII layer over the HDF5 C API (1.10) for the project's result files, plus a checker that
// compares a file with a machine-readable schema (results-schema/<name>-v<version>.json).
//
// Every HDF5 failure becomes an sf::IoError (open/create/write) or sf::FormatError (a file whose
// content is not what was expected), one line naming the file and the object. HDF5's own error
// stack printing is switched off.
//
// Datasets store rows along dimension 0 and grow by appending rows. Types are named as in the
// schemas: int8 uint8 int32 int64 float16 bfloat16 float32 float64 string (variable-length UTF-8).
// float16 and bfloat16 are 2-byte HDF5 float types (IEEE half; bfloat16 = sign, 8-bit exponent,
// 7-bit mantissa); h5py reads float16 natively and both convert to float32 via HDF5.
#include <hdf5.h>
#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace sf::h5 {

// Owns one hid_t and closes it with the matching H5*close.
class Handle {
 public:
  Handle() = default;
  explicit Handle(hid_t id);
  ~Handle();
  Handle(Handle&& o) noexcept;
  Handle& operator=(Handle&& o) noexcept;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  hid_t release();  // gives up ownership without closing

 private:
  void reset();
  hid_t id_ = -1;
};

// Storage options for a new dataset.
struct Layout {
  std::string dtype;               // schema type name (see above)
  std::vector<int64_t> row_shape;  // dimensions after the first (row) dimension
  int64_t chunk_rows = 64;         // rows per HDF5 chunk
  int gzip_level = 4;              // 0 = no compression; with gzip the shuffle filter is added
};

// Something that carries attributes: a file, group or dataset. `where_` names it in errors.
class Object {
 public:
  hid_t id() const { return h_.get(); }
  const std::string& where() const { return where_; }

  bool has_attr(const std::string& name) const;
  void set_attr(const std::string& name, const std::string& value) const;
  void set_attr(const std::string& name, const char* value) const { set_attr(name, std::string(value)); }
  void set_attr(const std::string& name, int64_t value) const;
  void set_attr(const std::string& name, double value) const;
  // Readers throw FormatError naming the object and attribute when it is absent or of another type.
  std::string attr_string(const std::string& name) const;
  int64_t attr_int(const std::string& name) const;
  double attr_double(const std::string& name) const;
  // "string", "int64", "float64", ... of a stored attribute.
  std::string attr_type(const std::string& name) const;
  std::vector<std::string> attr_names() const;

 protected:
  Object(Handle h, std::string where) : h_(std::move(h)), where_(std::move(where)) {}
  Handle h_;
  std::string where_;
};

class Dataset : public Object {
 public:
  std::vector<int64_t> shape() const;
  int64_t rows() const { return shape().at(0); }
  std::string dtype() const;  // schema type name, or a description for types outside the list
  bool is_virtual() const;
  std::optional<std::vector<int64_t>> chunk_shape() const;
  std::vector<std::string> filters() const;  // "deflate", "shuffle", ...

  // Appends rows: `rows` has shape [n, row_shape...]; its dtype must match the stored type
  // (float16 ↔ kHalf, bfloat16 ↔ kBFloat16, uint8 ↔ kByte or kBool, ...).
  void append(const torch::Tensor& rows) const;
  void append_strings(const std::vector<std::string>& values) const;
  // Appends int32 / int64 / uint8 / double values as rows of a 1-d dataset (nothing when empty).
  template <class T>
  void append_values(const std::vector<T>& values) const {
    static_assert(std::is_same_v<T, int64_t> || std::is_same_v<T, int32_t> || std::is_same_v<T, uint8_t> ||
                  std::is_same_v<T, double>);
    if (values.empty()) return;
    const torch::Dtype dt = std::is_same_v<T, int64_t>   ? torch::kInt64
                            : std::is_same_v<T, int32_t> ? torch::kInt32
                            : std::is_same_v<T, uint8_t> ? torch::kByte
                                                         : torch::kFloat64;
    append(torch::from_blob(const_cast<T*>(values.data()), {static_cast<int64_t>(values.size())}, dt).clone());
  }
  // Reads rows [begin, begin+count) in the stored type. ShapeError when out of range.
  torch::Tensor read(int64_t begin, int64_t count) const;
  torch::Tensor read_all() const { return read(0, rows()); }
  std::vector<std::string> read_strings(int64_t begin, int64_t count) const;
  std::vector<std::string> read_all_strings() const { return read_strings(0, rows()); }

 private:
  friend class Group;
  using Object::Object;
};

// One piece of a virtual dataset: all rows of `dataset` in `file` (a path relative to the
// virtual dataset's own file, or absolute).
struct VirtualSource {
  std::string file;
  std::string dataset;
  int64_t rows = 0;
};

class Group : public Object {
 public:
  bool has(const std::string& path) const;  // a link at this relative path exists
  Group group(const std::string& name) const;
  Group create_group(const std::string& name) const;
  Dataset dataset(const std::string& name) const;
  // An empty, extendible, chunked dataset of shape [0, row_shape...].
  Dataset create_dataset(const std::string& name, const Layout& layout) const;
  // Writes a whole dataset at once (contiguous row count known): shape [n, row_shape...].
  Dataset write_dataset(const std::string& name, const torch::Tensor& data, const Layout& layout) const;
  Dataset write_strings(const std::string& name, const std::vector<std::string>& values, const Layout& layout) const;
  // A virtual dataset concatenating `sources` along dimension 0, each of shape [rows, row_shape...].
  Dataset create_virtual(const std::string& name, const std::string& dtype, const std::vector<int64_t>& row_shape,
                         const std::vector<VirtualSource>& sources) const;
  std::vector<std::string> members() const;

 protected:
  using Object::Object;
};

class File : public Group {
 public:
  // Creates (truncating) a file for writing.
  static File create(const std::filesystem::path& path);
  // Opens an existing file; IoError naming the file when it is missing or not HDF5.
  static File open(const std::filesystem::path& path, bool writable = false);
  // Writes buffered data and metadata to disk (H5Fflush).
  void flush() const;
  // Closes the file now (all objects opened from it must be gone); errors surface here.
  void close();
  const std::filesystem::path& path() const { return path_; }

 private:
  File(Handle h, std::filesystem::path path);
  std::filesystem::path path_;
};

// Root/object attributes as JSON: strings, integers and floats map to the JSON types; when writing,
// objects and arrays are stored as their JSON text (string attributes) and booleans as 0/1.
nlohmann::json read_attrs(const Object& obj);
void write_attrs(const Object& obj, const nlohmann::json& attrs);

// ---- Schema checking --------------------------------------------------------------------------
// A schema (see results-schema/README.md) lists required root attributes, groups and datasets with
// their types and symbolic shapes. Symbolic dimensions bind on first use and must agree across
// datasets; a dimension may be tied to an integer root attribute.

// Every problem found, one line each, or an empty list when the file follows the schema.
std::vector<std::string> check_schema(const File& file, const nlohmann::json& schema);

// The schema folder: $SUPERFICIAL_SCHEMA_DIR, else ./results-schema, else results-schema next to
// or one level above the running executable's folder. IoError when none exists.
std::filesystem::path schema_dir();
// Loads <schema_dir>/<name>-v<version>.json; IoError/FormatError naming the file.
nlohmann::json load_schema(const std::string& name, int64_t version);

// Opens `path`, reads its `schema` and `schema_version` root attributes and checks the file
// against that schema. Returns the problems (empty: valid). A file without the attributes or of a
// version this build does not know is reported as a problem that says what to do.
std::vector<std::string> validate_file(const std::filesystem::path& path);

}  // namespace sf::h5
