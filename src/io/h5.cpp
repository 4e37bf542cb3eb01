#include "io/h5.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

#include "core/atomic_file.hpp"
#include "core/error.hpp"
#include "core/fault.hpp"
#include "io/h5_probe.hpp"

namespace sf::h5 {
namespace {

// HDF5 prints its error stack to stderr by default; errors are reported through exceptions instead.
void silence_hdf5() {
  static const bool done = [] {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    return true;
  }();
  (void)done;
}

void close_any(hid_t id) {
  switch (H5Iget_type(id)) {
    case H5I_FILE:
      H5Fclose(id);
      break;
    case H5I_GROUP:
      H5Gclose(id);
      break;
    case H5I_DATASET:
      H5Dclose(id);
      break;
    case H5I_ATTR:
      H5Aclose(id);
      break;
    case H5I_DATATYPE:
      H5Tclose(id);
      break;
    case H5I_DATASPACE:
      H5Sclose(id);
      break;
    case H5I_GENPROP_LST:
      H5Pclose(id);
      break;
    default:
      break;
  }
}

// Checks an HDF5 return value; throws IoError "<where>: <what> failed".
hid_t check(hid_t id, const std::string& where, const std::string& what) {
  if (id < 0) throw IoError(where + ": " + what + " failed");
  return id;
}

// The fault-injection seam (core/fault.hpp) for a write to disk, consulted before anything changes
// (an injected failure leaves the dataset as it was).
void inject_write_fault(const std::string& where, const std::string& what) {
  if (const int e = fault::inject(fault::Op::kWrite, where))
    throw IoError(where + ": " + what + " failed: " + errno_text(e));
}

// Runs an HDF5 call that writes data to disk: IoError "<where>: <what> failed: <errno text>" on failure.
template <class F>
void disk_write(const std::string& where, const std::string& what, F call) {
  errno = 0;
  if (call() < 0) {
    const int e = errno;
    throw IoError(where + ": " + what + " failed" + (e != 0 ? ": " + errno_text(e) : std::string(" (disk full?)")));
  }
}

bool is_predefined_type(const std::string& dtype) {
  static const std::vector<std::string> names = {"int8",     "uint8",   "int32",   "int64", "float16",
                                                 "bfloat16", "float32", "float64", "string"};
  return std::find(names.begin(), names.end(), dtype) != names.end();
}

// The HDF5 type used for a schema type name, both in the file and in memory (little-endian host).
Handle make_type(const std::string& dtype, const std::string& where) {
  hid_t t = -1;
  if (dtype == "int8") t = H5Tcopy(H5T_STD_I8LE);
  if (dtype == "uint8") t = H5Tcopy(H5T_STD_U8LE);
  if (dtype == "int32") t = H5Tcopy(H5T_STD_I32LE);
  if (dtype == "int64") t = H5Tcopy(H5T_STD_I64LE);
  if (dtype == "float32") t = H5Tcopy(H5T_IEEE_F32LE);
  if (dtype == "float64") t = H5Tcopy(H5T_IEEE_F64LE);
  if (dtype == "float16" || dtype == "bfloat16") {
    const bool half = dtype == "float16";
    t = H5Tcopy(H5T_IEEE_F32LE);
    // sign bit 15; exponent at bit 10 (5 bits) or 7 (8 bits); mantissa at 0 (10 or 7 bits).
    H5Tset_fields(t, 15, half ? 10 : 7, half ? 5 : 8, 0, half ? 10 : 7);
    H5Tset_size(t, 2);
    H5Tset_precision(t, 16);
    H5Tset_ebias(t, half ? 15 : 127);
  }
  if (dtype == "string") {
    t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
  }
  if (t < 0) throw ShapeError(where + ": unsupported dtype '" + dtype + "'");
  return Handle(t);
}

std::string describe_type(hid_t t) {
  switch (H5Tget_class(t)) {
    case H5T_INTEGER: {
      const bool is_signed = H5Tget_sign(t) == H5T_SGN_2;
      return (is_signed ? "int" : "uint") + std::to_string(8 * H5Tget_size(t));
    }
    case H5T_FLOAT: {
      const size_t size = H5Tget_size(t);
      if (size == 2) return H5Tget_ebias(t) == 15 ? "float16" : H5Tget_ebias(t) == 127 ? "bfloat16" : "float2-custom";
      return "float" + std::to_string(8 * size);
    }
    case H5T_STRING:
      return H5Tis_variable_str(t) > 0 ? "string" : "fixed-string[" + std::to_string(H5Tget_size(t)) + "]";
    default:
      return "other-class-" + std::to_string(static_cast<int>(H5Tget_class(t)));
  }
}

torch::Dtype torch_dtype(const std::string& dtype, const std::string& where) {
  if (dtype == "int8") return torch::kInt8;
  if (dtype == "uint8") return torch::kUInt8;
  if (dtype == "int32") return torch::kInt32;
  if (dtype == "int64") return torch::kInt64;
  if (dtype == "float16") return torch::kFloat16;
  if (dtype == "bfloat16") return torch::kBFloat16;
  if (dtype == "float32") return torch::kFloat32;
  if (dtype == "float64") return torch::kFloat64;
  throw ShapeError(where + ": dtype '" + dtype + "' has no tensor type");
}

std::vector<hsize_t> to_hsize(const std::vector<int64_t>& v) { return std::vector<hsize_t>(v.begin(), v.end()); }

std::string join_path(const std::string& base, const std::string& name) {
  if (base.empty() || base.back() == '/') return base + name;
  return base + "/" + name;
}

}  // namespace

// ---- Handle ------------------------------------------------------------------------------------

Handle::Handle(hid_t id) : id_(id) {}
Handle::~Handle() { reset(); }
Handle::Handle(Handle&& o) noexcept : id_(o.id_) { o.id_ = -1; }
Handle& Handle::operator=(Handle&& o) noexcept {
  if (this != &o) {
    reset();
    id_ = o.id_;
    o.id_ = -1;
  }
  return *this;
}
hid_t Handle::release() {
  const hid_t id = id_;
  id_ = -1;
  return id;
}
void Handle::reset() {
  if (id_ >= 0) close_any(id_);
  id_ = -1;
}

// ---- Object (attributes) -----------------------------------------------------------------------

bool Object::has_attr(const std::string& name) const { return H5Aexists(id(), name.c_str()) > 0; }

namespace {

// Replaces an attribute: deletes an old one of that name, then creates a scalar one.
Handle new_scalar_attr(hid_t obj, const std::string& name, hid_t type, const std::string& where) {
  if (H5Aexists(obj, name.c_str()) > 0) H5Adelete(obj, name.c_str());
  Handle space(H5Screate(H5S_SCALAR));
  return Handle(check(H5Acreate2(obj, name.c_str(), type, space.get(), H5P_DEFAULT, H5P_DEFAULT), where,
                      "creating attribute '" + name + "'"));
}

}  // namespace

void Object::set_attr(const std::string& name, const std::string& value) const {
  Handle type = make_type("string", where_);
  Handle a = new_scalar_attr(id(), name, type.get(), where_);
  const char* p = value.c_str();
  check(H5Awrite(a.get(), type.get(), &p), where_, "writing attribute '" + name + "'");
}

void Object::set_attr(const std::string& name, int64_t value) const {
  Handle a = new_scalar_attr(id(), name, H5T_STD_I64LE, where_);
  check(H5Awrite(a.get(), H5T_NATIVE_INT64, &value), where_, "writing attribute '" + name + "'");
}

void Object::set_attr(const std::string& name, double value) const {
  Handle a = new_scalar_attr(id(), name, H5T_IEEE_F64LE, where_);
  check(H5Awrite(a.get(), H5T_NATIVE_DOUBLE, &value), where_, "writing attribute '" + name + "'");
}

namespace {

Handle open_attr(hid_t obj, const std::string& name, const std::string& where) {
  if (H5Aexists(obj, name.c_str()) <= 0) throw FormatError(where + ": attribute '" + name + "' is missing");
  return Handle(check(H5Aopen(obj, name.c_str(), H5P_DEFAULT), where, "opening attribute '" + name + "'"));
}

void require_scalar(hid_t attr, const std::string& where, const std::string& name) {
  Handle space(H5Aget_space(attr));
  if (H5Sget_simple_extent_npoints(space.get()) != 1)
    throw FormatError(where + ": attribute '" + name + "' is not a single value");
}

}  // namespace

std::string Object::attr_type(const std::string& name) const {
  Handle a = open_attr(id(), name, where_);
  Handle t(H5Aget_type(a.get()));
  return describe_type(t.get());
}

std::string Object::attr_string(const std::string& name) const {
  Handle a = open_attr(id(), name, where_);
  Handle t(H5Aget_type(a.get()));
  if (H5Tget_class(t.get()) != H5T_STRING)
    throw FormatError(where_ + ": attribute '" + name + "' is " + describe_type(t.get()) + ", expected a string");
  require_scalar(a.get(), where_, name);
  if (H5Tis_variable_str(t.get()) > 0) {
    Handle mem = make_type("string", where_);
    char* p = nullptr;
    check(H5Aread(a.get(), mem.get(), &p), where_, "reading attribute '" + name + "'");
    std::string s = p ? p : "";
    H5free_memory(p);
    return s;
  }
  std::string s(H5Tget_size(t.get()), '\0');
  check(H5Aread(a.get(), t.get(), s.data()), where_, "reading attribute '" + name + "'");
  return s.substr(0, s.find('\0'));
}

int64_t Object::attr_int(const std::string& name) const {
  Handle a = open_attr(id(), name, where_);
  Handle t(H5Aget_type(a.get()));
  if (H5Tget_class(t.get()) != H5T_INTEGER)
    throw FormatError(where_ + ": attribute '" + name + "' is " + describe_type(t.get()) + ", expected an integer");
  require_scalar(a.get(), where_, name);
  int64_t v = 0;
  check(H5Aread(a.get(), H5T_NATIVE_INT64, &v), where_, "reading attribute '" + name + "'");
  return v;
}

double Object::attr_double(const std::string& name) const {
  Handle a = open_attr(id(), name, where_);
  Handle t(H5Aget_type(a.get()));
  if (H5Tget_class(t.get()) != H5T_FLOAT && H5Tget_class(t.get()) != H5T_INTEGER)
    throw FormatError(where_ + ": attribute '" + name + "' is " + describe_type(t.get()) + ", expected a number");
  require_scalar(a.get(), where_, name);
  double v = 0;
  check(H5Aread(a.get(), H5T_NATIVE_DOUBLE, &v), where_, "reading attribute '" + name + "'");
  return v;
}

std::vector<std::string> Object::attr_names() const {
  H5O_info_t info;
  check(H5Oget_info2(id(), &info, H5O_INFO_NUM_ATTRS), where_, "listing attributes");
  std::vector<std::string> names;
  for (hsize_t i = 0; i < info.num_attrs; ++i) {
    Handle a(H5Aopen_by_idx(id(), ".", H5_INDEX_NAME, H5_ITER_INC, i, H5P_DEFAULT, H5P_DEFAULT));
    const ssize_t n = H5Aget_name(a.get(), 0, nullptr);
    std::string s(static_cast<size_t>(std::max<ssize_t>(n, 0)), '\0');
    H5Aget_name(a.get(), s.size() + 1, s.data());
    names.push_back(s);
  }
  return names;
}

// ---- Dataset -----------------------------------------------------------------------------------

std::vector<int64_t> Dataset::shape() const {
  Handle space(check(H5Dget_space(id()), where_, "reading the shape"));
  const int rank = H5Sget_simple_extent_ndims(space.get());
  std::vector<hsize_t> dims(static_cast<size_t>(std::max(rank, 0)));
  H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  return std::vector<int64_t>(dims.begin(), dims.end());
}

std::string Dataset::dtype() const {
  Handle t(check(H5Dget_type(id()), where_, "reading the type"));
  return describe_type(t.get());
}

bool Dataset::is_virtual() const {
  Handle dcpl(H5Dget_create_plist(id()));
  return H5Pget_layout(dcpl.get()) == H5D_VIRTUAL;
}

std::optional<std::vector<int64_t>> Dataset::chunk_shape() const {
  Handle dcpl(H5Dget_create_plist(id()));
  if (H5Pget_layout(dcpl.get()) != H5D_CHUNKED) return std::nullopt;
  std::vector<hsize_t> dims(32);
  const int rank = H5Pget_chunk(dcpl.get(), static_cast<int>(dims.size()), dims.data());
  dims.resize(static_cast<size_t>(std::max(rank, 0)));
  return std::vector<int64_t>(dims.begin(), dims.end());
}

std::vector<std::string> Dataset::filters() const {
  Handle dcpl(H5Dget_create_plist(id()));
  std::vector<std::string> out;
  const int n = H5Pget_nfilters(dcpl.get());
  for (int i = 0; i < n; ++i) {
    unsigned flags = 0, config = 0;
    size_t nelem = 0;
    char name[64] = {0};
    H5Pget_filter2(dcpl.get(), static_cast<unsigned>(i), &flags, &nelem, nullptr, sizeof(name), name, &config);
    out.emplace_back(name);
  }
  return out;
}

namespace {

// Extends dataset `d` by `n` rows and returns the file space selecting the new rows.
Handle extend_rows(const Dataset& d, hid_t dset, int64_t n, std::vector<hsize_t>& count) {
  std::vector<int64_t> shape = d.shape();
  std::vector<hsize_t> dims = to_hsize(shape);
  std::vector<hsize_t> start(dims.size(), 0);
  start[0] = dims[0];
  dims[0] += static_cast<hsize_t>(n);
  check(H5Dset_extent(dset, dims.data()), d.where(), "extending");
  Handle space(check(H5Dget_space(dset), d.where(), "reading the shape"));
  count = dims;
  count[0] = static_cast<hsize_t>(n);
  H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr);
  return space;
}

}  // namespace

void Dataset::append(const torch::Tensor& rows) const {
  const std::string dt = dtype();
  const std::vector<int64_t> shape = this->shape();
  torch::Tensor t = rows;
  if (t.scalar_type() == torch::kBool && dt == "uint8") t = t.to(torch::kUInt8);
  if (t.scalar_type() != torch_dtype(dt, where_))
    throw ShapeError(where_ + ": appending " + std::string(c10::toString(t.scalar_type())) + " rows to a " + dt +
                     " dataset");
  if (t.dim() != static_cast<int64_t>(shape.size()) ||
      !std::equal(shape.begin() + 1, shape.end(), t.sizes().begin() + 1))
    throw ShapeError(where_ + ": appending rows of shape " + c10::str(t.sizes()) + " to a dataset of shape " +
                     c10::str(c10::IntArrayRef(shape)));
  if (t.size(0) == 0) return;
  t = t.contiguous().cpu();
  const std::string what = "writing " + std::to_string(t.size(0)) + " rows";
  inject_write_fault(where_, what);
  std::vector<hsize_t> count;
  Handle fspace = extend_rows(*this, id(), t.size(0), count);
  Handle mspace(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr));
  Handle type = make_type(dt, where_);
  disk_write(where_, what,
             [&] { return H5Dwrite(id(), type.get(), mspace.get(), fspace.get(), H5P_DEFAULT, t.data_ptr()); });
}

void Dataset::append_strings(const std::vector<std::string>& values) const {
  if (dtype() != "string") throw ShapeError(where_ + ": appending strings to a " + dtype() + " dataset");
  if (values.empty()) return;
  std::vector<const char*> ptrs;
  for (const auto& v : values) ptrs.push_back(v.c_str());
  const std::string what = "writing " + std::to_string(values.size()) + " strings";
  inject_write_fault(where_, what);
  std::vector<hsize_t> count;
  Handle fspace = extend_rows(*this, id(), static_cast<int64_t>(values.size()), count);
  Handle mspace(H5Screate_simple(1, count.data(), nullptr));
  Handle type = make_type("string", where_);
  disk_write(where_, what,
             [&] { return H5Dwrite(id(), type.get(), mspace.get(), fspace.get(), H5P_DEFAULT, ptrs.data()); });
}

namespace {

// Selects rows [begin, begin+count) of `dset`; returns {file space, memory space, dims of the slab}.
struct Selection {
  Handle file_space;
  Handle mem_space;
  std::vector<int64_t> dims;
};

Selection select_rows(const Dataset& d, int64_t begin, int64_t count) {
  std::vector<int64_t> shape = d.shape();
  if (shape.empty()) throw FormatError(d.where() + ": is a scalar, expected rows");
  if (begin < 0 || count < 0 || begin + count > shape[0])
    throw ShapeError(d.where() + ": rows [" + std::to_string(begin) + ", " + std::to_string(begin + count) +
                     ") out of range (" + std::to_string(shape[0]) + " rows)");
  Selection s;
  s.dims = shape;
  s.dims[0] = count;
  std::vector<hsize_t> start(shape.size(), 0), cnt = to_hsize(s.dims);
  start[0] = static_cast<hsize_t>(begin);
  s.file_space = Handle(check(H5Dget_space(d.id()), d.where(), "reading the shape"));
  H5Sselect_hyperslab(s.file_space.get(), H5S_SELECT_SET, start.data(), nullptr, cnt.data(), nullptr);
  s.mem_space = Handle(H5Screate_simple(static_cast<int>(cnt.size()), cnt.data(), nullptr));
  return s;
}

}  // namespace

torch::Tensor Dataset::read(int64_t begin, int64_t count) const {
  const std::string dt = dtype();
  if (!is_predefined_type(dt) || dt == "string") throw FormatError(where_ + ": cannot read " + dt + " as a tensor");
  Selection s = select_rows(*this, begin, count);
  torch::Tensor out = torch::empty(s.dims, torch::TensorOptions().dtype(torch_dtype(dt, where_)));
  if (count == 0) return out;
  Handle type = make_type(dt, where_);
  if (H5Dread(id(), type.get(), s.mem_space.get(), s.file_space.get(), H5P_DEFAULT, out.data_ptr()) < 0)
    throw FormatError(where_ + ": reading rows [" + std::to_string(begin) + ", " + std::to_string(begin + count) +
                      ") failed (damaged file or missing source file)");
  return out;
}

std::vector<std::string> Dataset::read_strings(int64_t begin, int64_t count) const {
  if (dtype() != "string") throw FormatError(where_ + ": is " + dtype() + ", expected strings");
  Selection s = select_rows(*this, begin, count);
  std::vector<char*> ptrs(static_cast<size_t>(count), nullptr);
  if (count == 0) return {};
  Handle type = make_type("string", where_);
  if (H5Dread(id(), type.get(), s.mem_space.get(), s.file_space.get(), H5P_DEFAULT, ptrs.data()) < 0)
    throw FormatError(where_ + ": reading strings failed");
  std::vector<std::string> out;
  out.reserve(ptrs.size());
  for (char* p : ptrs) out.emplace_back(p ? p : "");
  H5Dvlen_reclaim(type.get(), s.mem_space.get(), H5P_DEFAULT, ptrs.data());
  return out;
}

// ---- Group -------------------------------------------------------------------------------------

bool Group::has(const std::string& path) const {
  std::string prefix;
  std::stringstream ss(path);
  std::string part;
  while (std::getline(ss, part, '/')) {
    if (part.empty()) continue;
    prefix = prefix.empty() ? part : prefix + "/" + part;
    if (H5Lexists(id(), prefix.c_str(), H5P_DEFAULT) <= 0) return false;
  }
  return !prefix.empty();
}

Group Group::group(const std::string& name) const {
  const std::string w = join_path(where_, name);
  if (!has(name)) throw FormatError(w + ": group is missing");
  hid_t g = H5Gopen2(id(), name.c_str(), H5P_DEFAULT);
  if (g < 0) throw FormatError(w + ": is not a group");
  return Group(Handle(g), w);
}

Group Group::create_group(const std::string& name) const {
  const std::string w = join_path(where_, name);
  return Group(Handle(check(H5Gcreate2(id(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), w, "creating")), w);
}

Dataset Group::dataset(const std::string& name) const {
  const std::string w = join_path(where_, name);
  if (!has(name)) throw FormatError(w + ": dataset is missing");
  hid_t d = H5Dopen2(id(), name.c_str(), H5P_DEFAULT);
  if (d < 0) throw FormatError(w + ": is not a dataset");
  return Dataset(Handle(d), w);
}

Dataset Group::create_dataset(const std::string& name, const Layout& layout) const {
  const std::string w = join_path(where_, name);
  if (layout.chunk_rows < 1) throw ConfigError(w + ": chunk rows must be >= 1");
  std::vector<hsize_t> dims{0}, maxdims{H5S_UNLIMITED}, chunk{static_cast<hsize_t>(layout.chunk_rows)};
  for (int64_t d : layout.row_shape) {
    dims.push_back(static_cast<hsize_t>(d));
    maxdims.push_back(static_cast<hsize_t>(d));
    chunk.push_back(static_cast<hsize_t>(std::max<int64_t>(d, 1)));
  }
  Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), maxdims.data()));
  Handle dcpl(H5Pcreate(H5P_DATASET_CREATE));
  H5Pset_chunk(dcpl.get(), static_cast<int>(chunk.size()), chunk.data());
  if (layout.gzip_level > 0) {
    H5Pset_shuffle(dcpl.get());
    H5Pset_deflate(dcpl.get(), static_cast<unsigned>(layout.gzip_level));
  }
  Handle type = make_type(layout.dtype, w);
  hid_t d = H5Dcreate2(id(), name.c_str(), type.get(), space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT);
  return Dataset(Handle(check(d, w, "creating")), w);
}

Dataset Group::write_dataset(const std::string& name, const torch::Tensor& data, const Layout& layout) const {
  Layout l = layout;
  l.row_shape.assign(data.sizes().begin() + 1, data.sizes().end());
  Dataset d = create_dataset(name, l);
  d.append(data);
  return d;
}

Dataset Group::write_strings(const std::string& name, const std::vector<std::string>& values,
                             const Layout& layout) const {
  Layout l = layout;
  l.dtype = "string";
  l.row_shape.clear();
  Dataset d = create_dataset(name, l);
  d.append_strings(values);
  return d;
}

Dataset Group::create_virtual(const std::string& name, const std::string& dtype, const std::vector<int64_t>& row_shape,
                              const std::vector<VirtualSource>& sources) const {
  const std::string w = join_path(where_, name);
  int64_t total = 0;
  for (const auto& s : sources) total += s.rows;
  std::vector<hsize_t> dims{static_cast<hsize_t>(total)};
  for (int64_t d : row_shape) dims.push_back(static_cast<hsize_t>(d));
  Handle vspace(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr));
  Handle dcpl(H5Pcreate(H5P_DATASET_CREATE));
  int64_t offset = 0;
  for (const auto& s : sources) {
    if (s.rows == 0) continue;
    std::vector<hsize_t> src_dims = dims, start(dims.size(), 0);
    src_dims[0] = static_cast<hsize_t>(s.rows);
    start[0] = static_cast<hsize_t>(offset);
    Handle src_space(H5Screate_simple(static_cast<int>(src_dims.size()), src_dims.data(), nullptr));
    H5Sselect_hyperslab(vspace.get(), H5S_SELECT_SET, start.data(), nullptr, src_dims.data(), nullptr);
    check(H5Pset_virtual(dcpl.get(), vspace.get(), s.file.c_str(), s.dataset.c_str(), src_space.get()), w,
          "mapping " + s.file + ":" + s.dataset);
    offset += s.rows;
  }
  H5Sselect_all(vspace.get());
  Handle type = make_type(dtype, w);
  hid_t d = H5Dcreate2(id(), name.c_str(), type.get(), vspace.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT);
  return Dataset(Handle(check(d, w, "creating the virtual dataset")), w);
}

std::vector<std::string> Group::members() const {
  H5G_info_t info;
  check(H5Gget_info(id(), &info), where_, "listing members");
  std::vector<std::string> names;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t n = H5Lget_name_by_idx(id(), ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    std::string s(static_cast<size_t>(std::max<ssize_t>(n, 0)), '\0');
    H5Lget_name_by_idx(id(), ".", H5_INDEX_NAME, H5_ITER_INC, i, s.data(), s.size() + 1, H5P_DEFAULT);
    names.push_back(s);
  }
  return names;
}

// ---- File --------------------------------------------------------------------------------------

File::File(Handle h, std::filesystem::path path) : Group(std::move(h), path.string() + ":/"), path_(std::move(path)) {}

File File::create(const std::filesystem::path& path) {
  silence_hdf5();
  errno = 0;
  hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (f < 0)
    throw IoError(path.string() + ": cannot create HDF5 file" +
                  (errno != 0 ? ": " + errno_text(errno) : std::string(" (missing folder, permission or disk full)")));
  return File(Handle(f), path);
}

File File::open(const std::filesystem::path& path, bool writable) {
  silence_hdf5();
  if (!std::filesystem::exists(path)) throw IoError(path.string() + ": no such file");
  if (H5Fis_hdf5(path.c_str()) <= 0) throw FormatError(path.string() + ": not an HDF5 file");
  // libhdf5 1.10 hangs or crashes on many kinds of damaged file: it is checked and read in a child
  // process first (h5_probe.hpp).
  probe_in_child(path);
  hid_t f = H5Fopen(path.c_str(), writable ? H5F_ACC_RDWR : H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) throw IoError(path.string() + ": cannot open HDF5 file");
  return File(Handle(f), path);
}

void File::flush() const {
  inject_write_fault(path_.string(), "flushing");
  disk_write(path_.string(), "flushing", [&] { return H5Fflush(id(), H5F_SCOPE_LOCAL); });
}

void File::close() {
  if (!h_.valid()) return;
  const hid_t id = h_.release();
  const int injected = fault::inject(fault::Op::kWrite, path_.string());
  errno = 0;
  const herr_t rc = H5Fclose(id);  // closed even when a failure is injected
  const int e = injected != 0 ? injected : errno;
  if (injected != 0 || rc < 0)
    throw IoError(path_.string() + ": closing failed" + (e != 0 ? ": " + errno_text(e) : std::string(" (disk full?)")));
}

// ---- Attributes as JSON ------------------------------------------------------------------------

nlohmann::json read_attrs(const Object& obj) {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& name : obj.attr_names()) {
    const std::string t = obj.attr_type(name);
    if (t == "string") {
      out[name] = obj.attr_string(name);
    } else if (t.rfind("int", 0) == 0 || t.rfind("uint", 0) == 0) {
      out[name] = obj.attr_int(name);
    } else if (t.rfind("float", 0) == 0) {
      out[name] = obj.attr_double(name);
    } else {
      throw FormatError(obj.where() + ": attribute '" + name + "' has unsupported type " + t);
    }
  }
  return out;
}

void write_attrs(const Object& obj, const nlohmann::json& attrs) {
  for (const auto& [name, v] : attrs.items()) {
    if (v.is_string()) {
      obj.set_attr(name, v.get<std::string>());
    } else if (v.is_boolean()) {
      obj.set_attr(name, static_cast<int64_t>(v.get<bool>()));
    } else if (v.is_number_integer()) {
      obj.set_attr(name, v.get<int64_t>());
    } else if (v.is_number_float()) {
      obj.set_attr(name, v.get<double>());
    } else if (v.is_object() || v.is_array()) {
      obj.set_attr(name, v.dump());
    } else {
      throw ShapeError(obj.where() + ": attribute '" + name + "' is null");
    }
  }
}

// ---- Schema checking ---------------------------------------------------------------------------

namespace {

std::vector<std::string> allowed_types(const nlohmann::json& spec) {
  const nlohmann::json& t = spec.contains("dtype") ? spec.at("dtype") : spec.at("type");
  if (t.is_array()) return t.get<std::vector<std::string>>();
  return {t.get<std::string>()};
}

std::string join(const std::vector<std::string>& v, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? sep : "") + v[i];
  return out;
}

void check_attributes(const Object& obj, const nlohmann::json& attrs, std::vector<std::string>& problems) {
  for (const auto& [name, spec] : attrs.items()) {
    if (!obj.has_attr(name)) {
      if (!spec.value("optional", false)) problems.push_back(obj.where() + ": attribute '" + name + "' is missing");
      continue;
    }
    const std::vector<std::string> allowed = allowed_types(spec);
    const std::string stored = obj.attr_type(name);
    // "json" is a string attribute whose text must parse as JSON.
    const bool ok_type = std::any_of(allowed.begin(), allowed.end(), [&](const std::string& a) {
      return a == stored || (a == "json" && stored == "string");
    });
    if (!ok_type) {
      problems.push_back(obj.where() + ": attribute '" + name + "' is " + stored + ", expected " + join(allowed, "|"));
      continue;
    }
    if (std::find(allowed.begin(), allowed.end(), "json") != allowed.end() &&
        !nlohmann::json::accept(obj.attr_string(name)))
      problems.push_back(obj.where() + ": attribute '" + name + "' is not valid JSON");
    if (spec.contains("value")) {
      const auto& v = spec.at("value");
      const bool same =
          v.is_string() ? obj.attr_string(name) == v.get<std::string>() : obj.attr_int(name) == v.get<int64_t>();
      if (!same) problems.push_back(obj.where() + ": attribute '" + name + "' must be " + v.dump());
    }
  }
}

// The source files of a virtual dataset must exist next to the file and hold enough rows.
void check_virtual_sources(const File& file, const Dataset& d, std::vector<std::string>& problems) {
  Handle dcpl(H5Dget_create_plist(d.id()));
  size_t count = 0;
  H5Pget_virtual_count(dcpl.get(), &count);
  for (size_t i = 0; i < count; ++i) {
    const ssize_t fn = H5Pget_virtual_filename(dcpl.get(), i, nullptr, 0);
    const ssize_t dn = H5Pget_virtual_dsetname(dcpl.get(), i, nullptr, 0);
    std::string fname(static_cast<size_t>(std::max<ssize_t>(fn, 0)), '\0');
    std::string dname(static_cast<size_t>(std::max<ssize_t>(dn, 0)), '\0');
    H5Pget_virtual_filename(dcpl.get(), i, fname.data(), fname.size() + 1);
    H5Pget_virtual_dsetname(dcpl.get(), i, dname.data(), dname.size() + 1);
    if (fname == ".") continue;  // a source inside the same file
    std::filesystem::path src = fname;
    if (src.is_relative()) src = file.path().parent_path() / src;
    Handle srcsel(H5Pget_virtual_srcspace(dcpl.get(), i));
    const hssize_t need = H5Sget_select_npoints(srcsel.get());
    try {
      File f = File::open(src);
      Dataset sd = f.dataset(dname);
      int64_t have = 1;
      for (int64_t x : sd.shape()) have *= x;
      if (have < need)
        problems.push_back(d.where() + ": source " + src.string() + ":" + dname + " has " + std::to_string(have) +
                           " values, the mapping needs " + std::to_string(need));
    } catch (const Error& e) {
      problems.push_back(d.where() + ": source " + fname + " unusable: " + e.what());
    }
  }
}

// Checks one dataset's type, shape (binding symbolic dimensions), attributes and virtual sources.
void check_dataset(const File& file, const Dataset& d, const nlohmann::json& spec,
                   std::map<std::string, int64_t>& bound, std::vector<std::string>& problems) {
  const std::string& where = d.where();
  const std::vector<std::string> allowed = allowed_types(spec);
  const std::string dt = d.dtype();
  if (std::find(allowed.begin(), allowed.end(), dt) == allowed.end())
    problems.push_back(where + ": dtype is " + dt + ", expected " + join(allowed, "|"));
  const std::vector<int64_t> shape = d.shape();
  const auto& want = spec.at("shape");
  if (shape.size() != want.size()) {
    problems.push_back(where + ": has " + std::to_string(shape.size()) + " dimensions, expected " +
                       std::to_string(want.size()) + " " + want.dump());
  } else {
    for (size_t i = 0; i < shape.size(); ++i) {
      if (want[i].is_number_integer()) {
        if (shape[i] != want[i].get<int64_t>())
          problems.push_back(where + ": dimension " + std::to_string(i) + " is " + std::to_string(shape[i]) +
                             ", expected " + want[i].dump());
        continue;
      }
      const std::string dim = want[i].get<std::string>();
      auto [it, fresh] = bound.emplace(dim, shape[i]);
      if (!fresh && it->second != shape[i])
        problems.push_back(where + ": dimension " + std::to_string(i) + " (" + dim + ") is " +
                           std::to_string(shape[i]) + ", but " + dim + " = " + std::to_string(it->second) +
                           " elsewhere");
    }
  }
  if (spec.contains("attributes")) check_attributes(d, spec.at("attributes"), problems);
  if (d.is_virtual()) check_virtual_sources(file, d, problems);
}

}  // namespace

std::vector<std::string> check_schema(const File& file, const nlohmann::json& schema) {
  std::vector<std::string> problems;
  std::map<std::string, int64_t> bound;
  const std::string name = schema.value("schema", "?");
  // Dimensions tied to integer root attributes bind first.
  if (schema.contains("dimensions")) {
    for (const auto& [dim, spec] : schema.at("dimensions").items()) {
      if (!spec.contains("attribute")) continue;
      const std::string attr = spec.at("attribute").get<std::string>();
      if (file.has_attr(attr) && file.attr_type(attr).rfind("int", 0) == 0) bound[dim] = file.attr_int(attr);
    }
  }
  if (schema.contains("attributes")) check_attributes(file, schema.at("attributes"), problems);
  if (schema.contains("groups")) {
    for (const auto& [g, spec] : schema.at("groups").items()) {
      if (!file.has(g)) {
        problems.push_back(file.path().string() + ":/" + g + ": group is missing");
        continue;
      }
      if (spec.contains("attributes")) check_attributes(file.group(g), spec.at("attributes"), problems);
    }
  }
  if (!schema.contains("datasets")) return problems;
  for (const auto& [path, spec] : schema.at("datasets").items()) {
    const std::string where = file.path().string() + ":/" + path;
    if (!file.has(path)) {
      if (!spec.value("optional", false)) problems.push_back(where + ": dataset is missing (schema " + name + ")");
      continue;
    }
    try {
      check_dataset(file, file.dataset(path), spec, bound, problems);
    } catch (const Error& e) {
      problems.push_back(e.what());
    }
  }
  return problems;
}

std::filesystem::path schema_dir() {
  if (const char* env = std::getenv("SUPERFICIAL_SCHEMA_DIR")) {
    if (!std::filesystem::is_directory(env))
      throw IoError(std::string("SUPERFICIAL_SCHEMA_DIR=") + env + ": not a folder");
    return env;
  }
  std::vector<std::filesystem::path> candidates{std::filesystem::current_path() / "results-schema"};
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    std::filesystem::path dir = exe.parent_path();
    for (int up = 0; up < 4 && !dir.empty(); ++up, dir = dir.parent_path()) {
      candidates.push_back(dir / "results-schema");
      candidates.push_back(dir / "share" / "superficial" / "results-schema");
    }
  }
  for (const auto& c : candidates)
    if (std::filesystem::is_directory(c)) return c;
  throw IoError("results-schema/: not found next to the working folder or the executable; set SUPERFICIAL_SCHEMA_DIR");
}

nlohmann::json load_schema(const std::string& name, int64_t version) {
  const std::filesystem::path file = schema_dir() / (name + "-v" + std::to_string(version) + ".json");
  std::ifstream in(file);
  if (!in)
    throw IoError(file.string() + ": no such schema (this build knows the files in " + file.parent_path().string() +
                  ")");
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::parse_error& e) {
    throw FormatError(file.string() + ": byte " + std::to_string(e.byte) + ": invalid JSON");
  }
}

std::vector<std::string> validate_file(const std::filesystem::path& path) {
  File f = File::open(path);
  if (!f.has_attr("schema") || !f.has_attr("schema_version"))
    return {path.string() + ": no 'schema'/'schema_version' root attributes; not a superficial results file"};
  const std::string name = f.attr_string("schema");
  const int64_t version = f.attr_int("schema_version");
  const std::filesystem::path file = schema_dir() / (name + "-v" + std::to_string(version) + ".json");
  if (!std::filesystem::exists(file))
    return {path.string() + ": schema " + name + " version " + std::to_string(version) +
            " is unknown to this build (no " + file.string() +
            "); use the superficial version that wrote it (see attribute tool_version) or re-run that stage"};
  return check_schema(f, load_schema(name, version));
}

}  // namespace sf::h5
