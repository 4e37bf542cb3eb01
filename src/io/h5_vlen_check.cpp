#include "io/h5_vlen_check.hpp"

#include <zlib.h>

#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "io/h5.hpp"

namespace sf::h5 {
namespace {

uint64_t align8(uint64_t n) { return (n + 7) & ~uint64_t{7}; }

// The file's raw bytes and its global heaps.
struct Heaped : Raw {
  const GlobalHeaps& heaps;
  uint64_t reference_size() const { return 8 + static_cast<uint64_t>(sb.size_of_offsets); }
};

// ---- Types ---------------------------------------------------------------------------------------

struct VlenType {
  bool holds = false;      // the type holds variable-length data
  bool checkable = false;  // ... at its top level (a string or a sequence of fixed-size elements)
  uint64_t element = 1;    // bytes of one element of the sequence (1 for strings)
};

VlenType classify(hid_t t) {
  if (H5Tis_variable_str(t) > 0) return {true, true, 1};
  switch (H5Tget_class(t)) {
    case H5T_VLEN: {
      const Handle super(H5Tget_super(t));
      if (!super.valid() || classify(super.get()).holds) return {true, false, 0};
      return {true, true, H5Tget_size(super.get())};
    }
    case H5T_ARRAY: {
      const Handle super(H5Tget_super(t));
      return {super.valid() && classify(super.get()).holds, false, 0};
    }
    case H5T_COMPOUND:
      for (int i = 0; i < H5Tget_nmembers(t); ++i) {
        const Handle m(H5Tget_member_type(t, static_cast<unsigned>(i)));
        if (m.valid() && classify(m.get()).holds) return {true, false, 0};
      }
      return {};
    default:
      return {};
  }
}

// ---- References ----------------------------------------------------------------------------------

// One stored reference: length (4 bytes), collection address, object index (4 bytes).
void check_reference(const Heaped& r, const uint8_t* p, uint64_t element, const std::string& what, uint64_t i) {
  const int sa = r.sb.size_of_offsets;
  const uint64_t length = little_endian(p, 4);
  const uint64_t address = r.offset(p + 4);
  const uint64_t index = little_endian(p + 4 + sa, 4);
  if (address == 0) return;  // a null reference: libhdf5 reads nothing
  const std::string element_name = what + ", element " + std::to_string(i);
  const auto object = r.heaps.object_size(address, index);
  if (!object) {
    const bool collection = r.heaps.collections.count(address) > 0;
    r.fail(
        element_name,
        "refers to object " + std::to_string(index) + " of " +
            (collection
                 ? "the global heap collection at address " + std::to_string(address) + ", which holds no such object"
                 : "a global heap collection at address " + std::to_string(address) + ", where there is none") +
            " (a damaged file)");
  }
  if (*object != length * element)  // element <= 2^32 bytes and length < 2^32: no overflow
    r.fail(element_name, "has length " + std::to_string(length) + " but the object it refers to holds " +
                             std::to_string(*object) + " bytes (a damaged file)");
}

void check_references(const Heaped& r, const uint8_t* p, uint64_t count, const VlenType& v, const std::string& what) {
  for (uint64_t i = 0; i < count; ++i) check_reference(r, p + i * r.reference_size(), v.element, what, i);
}

// ---- Attributes ----------------------------------------------------------------------------------

constexpr unsigned kSharedFlag = 0x02;
constexpr unsigned kVariableLengthClass = 9;

// An attribute message as stored: its name, its value, and the value's size by its own datatype
// and dataspace messages.
struct StoredAttribute {
  std::string name;
  const uint8_t* value;
  uint64_t value_bytes;  // bytes from `value` to the message's end
  unsigned type_class;   // datatype class (9: variable-length)
  uint64_t type_size;    // bytes of one element as the datatype message gives it
  uint64_t points;       // elements as the dataspace message gives them
};

StoredAttribute parse_attribute(const Heaped& r, const Message& m, const std::string& where) {
  if (m.size < 9) r.fail(where, "an attribute message is too short");
  const uint8_t* b = m.body;
  const unsigned version = b[0];
  if (version < 1 || version > 3) r.fail(where, "an attribute message has unknown version " + std::to_string(version));
  if (version >= 2 && (b[1] & 0x03) != 0)
    r.fail(where, "an attribute with a shared datatype or dataspace cannot be checked before reading");
  const uint64_t name_size = little_endian(b + 2, 2);
  const uint64_t type_size = little_endian(b + 4, 2);
  const uint64_t space_size = little_endian(b + 6, 2);
  const uint64_t name_at = version == 3 ? 9 : 8;
  const uint64_t type_at = name_at + (version == 1 ? align8(name_size) : name_size);
  const uint64_t space_at = type_at + (version == 1 ? align8(type_size) : type_size);
  const uint64_t value_at = space_at + (version == 1 ? align8(space_size) : space_size);
  if (value_at > m.size) r.fail(where, "an attribute message's name, type and shape run past its end");
  const auto* name = reinterpret_cast<const char*>(b + name_at);
  StoredAttribute a{std::string(name, strnlen(name, name_size)), b + value_at, m.size - value_at, 0, 0, 0};
  const std::string what = "attribute '" + a.name + "' of " + where;
  // Datatype message: class and version, 3 bytes of class bits, size (4 bytes).
  if (type_size < 8) r.fail(what, "its datatype message is too short");
  a.type_class = b[type_at] & 0x0F;
  a.type_size = little_endian(b + type_at + 4, 4);
  // Dataspace message: version 1 (dimensions from byte 8; rank 0 is a scalar) or 2 (a type byte:
  // 0 scalar, 1 simple, 2 null; dimensions from byte 4).
  const uint8_t* space = b + space_at;
  if (space_size < 4) r.fail(what, "its dataspace message is too short");
  const unsigned space_version = space[0];
  const unsigned rank = space[1];
  if (space_version != 1 && space_version != 2) r.fail(what, "its dataspace message has an unknown version");
  const uint64_t dims_at = space_version == 1 ? 8 : 4;
  const auto sl = static_cast<uint64_t>(r.sb.size_of_lengths);
  if (rank > 32 || dims_at + rank * sl > space_size) r.fail(what, "its dataspace message is too short for its rank");
  a.points = space_version == 2 && space[3] == 2 ? 0 : 1;
  for (unsigned i = 0; i < rank && a.points > 0; ++i) {
    const uint64_t dim = r.length(space + dims_at + i * sl);
    if (__builtin_mul_overflow(a.points, dim, &a.points)) r.fail(what, "its dataspace holds too many elements");
  }
  // libhdf5 1.10 copies points x type size bytes of value out of the message, and converts
  // variable-length values as references of their size on disk, without checking either.
  uint64_t bytes = 0;
  if (__builtin_mul_overflow(a.points, a.type_size, &bytes) || bytes > a.value_bytes)
    r.fail(what, "its message holds " + std::to_string(a.value_bytes) + " bytes of value, too few for " +
                     std::to_string(a.points) + " elements of " + std::to_string(a.type_size) +
                     " bytes (a damaged file)");
  if (a.type_class == kVariableLengthClass && a.type_size != r.reference_size())
    r.fail(what, "its variable-length datatype gives elements of " + std::to_string(a.type_size) + " bytes, not " +
                     std::to_string(r.reference_size()) + " (a damaged file)");
  return a;
}

// Every attribute of an object is an attribute message in its header that libhdf5 can decode, and
// those holding variable-length data have valid references. libhdf5 1.10 builds a table of all of
// an object's attributes for H5Aiterate and every by-index call, and a message it cannot decode
// leaves the table with empty slots that it then frees (SIGSEGV in H5A__close; h5 fuzz finding,
// input tests/fuzz/regressions/h5/attribute-message-undecodable.h5). Opening each attribute by name
// decodes the messages one at a time and fails cleanly.
void check_attributes(const Heaped& r, hid_t obj, uint64_t header_address, hsize_t count, const std::string& where) {
  std::set<std::string> names;
  for (const Message& m : header_messages(r, header_address, where)) {
    if (m.type != kAttributeMessage) continue;
    if ((m.flags & kSharedFlag) != 0)
      r.fail(where, "an attribute kept in the shared message table cannot be checked before reading");
    const StoredAttribute stored = parse_attribute(r, m, where);
    const std::string what = "attribute '" + stored.name + "' of " + where;
    if (!names.insert(stored.name).second) r.fail(what, "is stored twice (a damaged file)");
    const Handle a(H5Aopen_by_name(obj, ".", stored.name.c_str(), H5P_DEFAULT, H5P_DEFAULT));
    if (!a.valid()) r.fail(what, "cannot be decoded (a damaged file)");
    const Handle type(H5Aget_type(a.get()));
    if (!type.valid()) r.fail(what, "its type cannot be decoded (a damaged file)");
    const VlenType v = classify(type.get());
    if (!v.holds) continue;
    if (!v.checkable) r.fail(what, "variable-length data nested in another type cannot be checked before reading");
    const Handle space(H5Aget_space(a.get()));
    const hssize_t points = space.valid() ? H5Sget_simple_extent_npoints(space.get()) : -1;
    if (points < 0 || static_cast<uint64_t>(points) != stored.points || stored.type_class != kVariableLengthClass)
      r.fail(what, "libhdf5 reads its type or shape differently from its message (a damaged file)");
    check_references(r, stored.value, stored.points, v, what);
  }
  if (names.size() != count)
    r.fail(where, "has " + std::to_string(count) + " attributes, " + std::to_string(names.size()) +
                      " of them in its object header (dense attribute storage, which cannot be checked before "
                      "reading, or a damaged header)");
}

// ---- Datasets ------------------------------------------------------------------------------------

struct Filter {
  H5Z_filter_t id;
  std::vector<unsigned> values;
};

// A chunk's stored bytes with its filters undone (in reverse order, skipping those its mask skips).
std::vector<uint8_t> unfilter(const Heaped& r, std::vector<uint8_t> bytes, const std::vector<Filter>& filters,
                              unsigned mask, uint64_t expected, const std::string& what) {
  for (size_t j = filters.size(); j-- > 0;) {
    if (j < 32 && (mask & (1u << j)) != 0) continue;
    const Filter& f = filters[j];
    if (f.id == H5Z_FILTER_FLETCHER32) {
      if (bytes.size() < 4) r.fail(what, "a chunk is too short for its checksum");
      bytes.resize(bytes.size() - 4);
    } else if (f.id == H5Z_FILTER_DEFLATE) {
      std::vector<uint8_t> out(static_cast<size_t>(expected));
      uLongf got = static_cast<uLongf>(out.size());
      const int rc = uncompress(out.data(), &got, bytes.data(), static_cast<uLong>(bytes.size()));
      if (rc != Z_OK || got != out.size())
        r.fail(what, "a chunk does not inflate to its " + std::to_string(expected) + " bytes");
      bytes = std::move(out);
    } else if (f.id == H5Z_FILTER_SHUFFLE) {
      // Its element size: the one stored with it, or (as libhdf5 1.10 writes it, with none) the size
      // of the dataset's type on disk, which for variable-length data is a reference's.
      const uint64_t size = f.values.empty() || f.values[0] == 0 ? r.reference_size() : f.values[0];
      const uint64_t n = bytes.size() / size;
      std::vector<uint8_t> out(bytes.size());
      for (uint64_t i = 0; i < n; ++i)
        for (uint64_t b = 0; b < size; ++b) out[i * size + b] = bytes[b * n + i];
      std::copy(bytes.begin() + static_cast<std::ptrdiff_t>(n * size), bytes.end(),
                out.begin() + static_cast<std::ptrdiff_t>(n * size));
      bytes = std::move(out);
    } else {
      r.fail(what, "variable-length data behind filter " + std::to_string(f.id) + " cannot be checked before reading");
    }
  }
  if (bytes.size() < expected) r.fail(what, "a chunk holds fewer bytes than its elements need");
  return bytes;
}

void check_chunks(const Heaped& r, hid_t d, hid_t dcpl, const std::vector<hsize_t>& dims, const VlenType& v,
                  const std::string& what) {
  const int rank = static_cast<int>(dims.size());
  std::vector<hsize_t> chunk(dims.size());
  if (H5Pget_chunk(dcpl, rank, chunk.data()) != rank) r.fail(what, "its chunk shape cannot be read");
  uint64_t per_chunk = 1;
  for (const hsize_t c : chunk) {
    if (c == 0 || per_chunk > (uint64_t{1} << 40) / c) r.fail(what, "its chunk shape is not a valid one");
    per_chunk *= c;
  }
  if (per_chunk > r.size) r.fail(what, "its chunks hold more elements than the file has bytes");
  std::vector<Filter> filters;
  for (int j = 0; j < H5Pget_nfilters(dcpl); ++j) {
    unsigned flags = 0;
    unsigned config = 0;
    size_t n = 8;
    std::vector<unsigned> values(n);
    const H5Z_filter_t id =
        H5Pget_filter2(dcpl, static_cast<unsigned>(j), &flags, &n, values.data(), 0, nullptr, &config);
    values.resize(std::min<size_t>(n, 8));
    filters.push_back({id, values});
  }
  const Handle space(H5Dget_space(d));
  hsize_t chunks = 0;
  if (!space.valid() || H5Dget_num_chunks(d, space.get(), &chunks) < 0)
    return;  // libhdf5 cannot index them: it reads none
  const uint64_t expected = per_chunk * r.reference_size();
  std::vector<hsize_t> offset(dims.size());
  for (hsize_t c = 0; c < chunks; ++c) {
    unsigned mask = 0;
    haddr_t address = HADDR_UNDEF;
    hsize_t stored = 0;
    if (H5Dget_chunk_info(d, space.get(), c, offset.data(), &mask, &address, &stored) < 0 || address == HADDR_UNDEF)
      continue;
    const uint8_t* raw = r.at(address, stored, what + ": chunk " + std::to_string(c));
    const std::vector<uint8_t> bytes =
        unfilter(r, std::vector<uint8_t>(raw, raw + stored), filters, mask, expected, what);
    // Elements in row-major order within the chunk; those past the dataset's extent are never read.
    for (uint64_t k = 0; k < per_chunk; ++k) {
      uint64_t rest = k;
      uint64_t flat = 0;  // the element's index in the dataset, row-major
      uint64_t stride = 1;
      bool inside = true;
      for (size_t dim = dims.size(); dim-- > 0;) {
        const uint64_t coordinate = offset[dim] + rest % chunk[dim];
        rest /= chunk[dim];
        inside = inside && coordinate < dims[dim];
        flat += coordinate * stride;
        stride *= dims[dim];
      }
      if (!inside) continue;
      check_reference(r, bytes.data() + k * r.reference_size(), v.element, what, flat);
    }
  }
}

void check_dataset(const Heaped& r, hid_t d, const std::string& where) {
  const Handle type(H5Dget_type(d));
  if (!type.valid()) return;
  const VlenType v = classify(type.get());
  if (!v.holds) return;
  const std::string what = "dataset " + where;
  if (!v.checkable) r.fail(what, "variable-length data nested in another type cannot be checked before reading");
  const Handle space(H5Dget_space(d));
  const int rank = space.valid() ? H5Sget_simple_extent_ndims(space.get()) : -1;
  if (rank < 0) return;
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  if (rank > 0) H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  const hssize_t points = H5Sget_simple_extent_npoints(space.get());
  if (points <= 0) return;
  const Handle dcpl(H5Dget_create_plist(d));
  switch (H5Pget_layout(dcpl.get())) {
    case H5D_CHUNKED:
      check_chunks(r, d, dcpl.get(), dims, v, what);
      return;
    case H5D_CONTIGUOUS: {
      const haddr_t address = H5Dget_offset(d);
      if (address == HADDR_UNDEF) return;  // never written: fill values only
      const auto n = static_cast<uint64_t>(points);
      if (n > r.size / r.reference_size()) r.fail(what, "holds more elements than the file has bytes");
      check_references(r, r.at(address, n * r.reference_size(), what), n, v, what);
      return;
    }
    default:
      r.fail(what, "variable-length data in compact or virtual storage cannot be checked before reading");
  }
}

// ---- Objects -------------------------------------------------------------------------------------

struct Walk {
  const Heaped& r;
  std::set<haddr_t> seen;
};

void check_object(Walk& w, hid_t obj, const std::string& where) {
  H5O_info_t info;
  if (H5Oget_info2(obj, &info, H5O_INFO_BASIC | H5O_INFO_NUM_ATTRS) < 0) return;
  if (!w.seen.insert(info.addr).second) return;
  if (info.num_attrs > 0) check_attributes(w.r, obj, info.addr, info.num_attrs, where);
  if (info.type == H5O_TYPE_DATASET) check_dataset(w.r, obj, where);
}

}  // namespace

void check_vlen_references(hid_t file, const std::vector<std::string>& names, const std::filesystem::path& path,
                           const uint8_t* data, uint64_t size, const Superblock& sb, const GlobalHeaps& heaps) {
  if (sb.size_of_offsets == 0) return;
  const Heaped r{{path, data, size, sb}, heaps};
  Walk w{r, {}};
  check_object(w, file, "/");
  for (const std::string& name : names) {
    const Handle obj(H5Oopen(file, name.c_str(), H5P_DEFAULT));
    if (obj.valid()) check_object(w, obj.get(), "/" + name);
  }
}

}  // namespace sf::h5
