#include "io/h5_probe.hpp"

#include <fcntl.h>
#include <hdf5.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "core/error.hpp"
#include "core/fault.hpp"
#include "io/h5.hpp"
#include "io/h5_group_check.hpp"
#include "io/h5_heap_check.hpp"
#include "io/h5_links.hpp"
#include "io/h5_raw.hpp"
#include "io/h5_vlen_check.hpp"
#include "io/mapped_file.hpp"

namespace sf::h5 {
namespace {

constexpr char kErrorPrefix[] = "error\t";          // a line the child sends for a FormatError of its own
constexpr hsize_t kWholeBytes = hsize_t{64} << 20;  // datasets up to this size are read whole
constexpr hsize_t kBlockBytes = hsize_t{4} << 20;   // one read of a larger one
constexpr int kQuietSeconds = 20;  // a child that says nothing for this long is stuck (one step is far shorter)

// ---- The child: say what it reads, then read it --------------------------------------------------

struct Child {
  int out = -1;  // write end of the pipe

  void say(const std::string& line) const {
    std::string text = line;
    std::replace(text.begin(), text.end(), '\n', ' ');
    text += '\n';
    for (size_t done = 0; done < text.size();) {
      const ssize_t n = ::write(out, text.data() + done, text.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) _exit(3);  // the parent is gone
      done += static_cast<size_t>(n);
    }
  }
};

bool holds_variable_length(hid_t type) { return H5Tdetect_class(type, H5T_VLEN) > 0 || H5Tis_variable_str(type) > 0; }

// `count` elements read by `read` into memory of the type's native form; what the library allocated
// for variable-length elements is freed.
template <class Read>
void read_elements(hid_t type, hid_t mem_space, hsize_t count, Read read) {
  const hid_t mem = H5Tget_native_type(type, H5T_DIR_DEFAULT);
  if (mem < 0) return;
  const size_t size = H5Tget_size(mem);
  if (size > 0 && count <= kWholeBytes / size) {
    std::vector<unsigned char> buf(static_cast<size_t>(count) * size);
    if (read(mem, buf.data()) >= 0 && holds_variable_length(mem))
      H5Dvlen_reclaim(mem, mem_space, H5P_DEFAULT, buf.data());
  }
  H5Tclose(mem);
}

herr_t read_attribute(hid_t loc, const char* name, const H5A_info_t* /*info*/, void* data) {
  const auto& child = *static_cast<const Child*>(data);
  child.say("reading attribute '" + std::string(name) + "'");
  const hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
  if (a < 0) return 0;
  const hid_t type = H5Aget_type(a);
  const hid_t space = H5Aget_space(a);
  const hssize_t n = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
  if (type >= 0 && n >= 0)
    read_elements(type, space, static_cast<hsize_t>(n), [&](hid_t mem, void* buf) { return H5Aread(a, mem, buf); });
  if (space >= 0) H5Sclose(space);
  if (type >= 0) H5Tclose(type);
  H5Aclose(a);
  return 0;
}

// Rows [start, start + rows) of a dataset of rank >= 1, or the whole of a scalar one.
void read_rows(const Child& child, const std::string& where, hid_t d, hid_t type, hid_t space,
               const std::vector<hsize_t>& dims, hsize_t start, hsize_t rows, hsize_t row_points) {
  child.say("reading " +
            (dims.empty() ? std::string("the data")
                          : "rows " + std::to_string(start) + " to " + std::to_string(start + rows - 1)) +
            " of " + where);
  if (dims.empty()) {
    const hid_t mem_space = H5Screate(H5S_SCALAR);
    read_elements(type, mem_space, 1,
                  [&](hid_t mem, void* buf) { return H5Dread(d, mem, mem_space, H5S_ALL, H5P_DEFAULT, buf); });
    H5Sclose(mem_space);
    return;
  }
  std::vector<hsize_t> offset(dims.size(), 0), count = dims;
  offset[0] = start;
  count[0] = rows;
  const hid_t file_space = H5Scopy(space);
  H5Sselect_hyperslab(file_space, H5S_SELECT_SET, offset.data(), nullptr, count.data(), nullptr);
  const hid_t mem_space = H5Screate_simple(static_cast<int>(dims.size()), count.data(), nullptr);
  read_elements(type, mem_space, rows * row_points,
                [&](hid_t mem, void* buf) { return H5Dread(d, mem, mem_space, file_space, H5P_DEFAULT, buf); });
  H5Sclose(mem_space);
  H5Sclose(file_space);
}

// The whole dataset when it holds at most 64 MiB in memory, else its first and last rows, in reads
// of at most 4 MiB (variable-length elements count as their pointers; their references are checked
// whole by check_vlen_references).
void read_dataset(const Child& child, hid_t d, const std::string& where) {
  const hid_t type = H5Dget_type(d);
  const hid_t space = H5Dget_space(d);
  const int rank = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
  if (type >= 0 && rank >= 0) {
    std::vector<hsize_t> dims(static_cast<size_t>(rank));
    if (rank > 0) H5Sget_simple_extent_dims(space, dims.data(), nullptr);
    const hsize_t element = std::max<hsize_t>(1, H5Tget_size(type));
    hsize_t row_points = 1;  // elements per row (past dimension 0), capped: larger rows are not read
    for (size_t i = 1; i < dims.size(); ++i)
      row_points = dims[i] == 0 ? 0 : std::min(row_points * dims[i], kWholeBytes);
    const hsize_t rows_total = dims.empty() ? 1 : dims[0];
    const hsize_t row_bytes = row_points * element;
    const hsize_t block = row_bytes == 0 ? 0 : std::max<hsize_t>(1, kBlockBytes / row_bytes);
    const bool whole = row_bytes > 0 && rows_total <= kWholeBytes / row_bytes;
    if (whole) {
      for (hsize_t start = 0; block > 0 && start < rows_total; start += block)
        read_rows(child, where, d, type, space, dims, start, std::min(block, rows_total - start), row_points);
    } else if (block > 0) {
      const hsize_t rows = std::min(block, rows_total);
      read_rows(child, where, d, type, space, dims, 0, rows, row_points);
      read_rows(child, where, d, type, space, dims, rows_total - rows, rows, row_points);
    }
  }
  if (space >= 0) H5Sclose(space);
  if (type >= 0) H5Tclose(type);
}

void read_object(const Child& child, hid_t file, const std::string& name) {
  const std::string where = "/" + name;
  child.say("opening " + where);
  const hid_t obj = name.empty() ? H5Oopen(file, ".", H5P_DEFAULT) : H5Oopen(file, name.c_str(), H5P_DEFAULT);
  if (obj < 0) return;
  H5Aiterate2(obj, H5_INDEX_NAME, H5_ITER_NATIVE, nullptr, read_attribute, const_cast<Child*>(&child));
  if (H5Iget_type(obj) == H5I_DATASET) read_dataset(child, obj, where);
  H5Oclose(obj);
}

[[noreturn]] void run_child(const std::filesystem::path& path, const uint8_t* data, uint64_t size, const Superblock& sb,
                            const GlobalHeaps& heaps, bool fail, int out) {
  const int null = ::open("/dev/null", O_WRONLY);  // a sanitizer's or libhdf5's report is not ours to print
  if (null >= 0) ::dup2(null, STDERR_FILENO);
  const Child child{out};
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  child.say("opening the file");
  if (fail) ::raise(SIGKILL);  // the test seam's crash (core/fault.hpp)
  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f >= 0) {
    child.say("checking its variable-length data");
    std::vector<std::string> names;
    try {
      names = hard_link_names(f, path);
      check_vlen_references(f, names, path, data, size, sb, heaps);
    } catch (const Error& e) {
      child.say(kErrorPrefix + std::string(e.what()));
      _exit(0);
    }
    names.insert(names.begin(), "");  // the root group
    for (const std::string& name : names) read_object(child, f, name);
  }
  child.say("");  // the end
  _exit(0);
}

// ---- The parent ----------------------------------------------------------------------------------

std::string how_it_ended(int status) {
  if (WIFSIGNALED(status)) return std::string("crashed (") + strsignal(WTERMSIG(status)) + ")";
  if (WIFEXITED(status)) return "stopped with exit status " + std::to_string(WEXITSTATUS(status));
  return "stopped";
}

using Key = std::tuple<dev_t, ino_t, off_t, int64_t, int64_t>;

std::mutex probed_mutex;
std::set<Key> probed;

}  // namespace

void probe_in_child(const std::filesystem::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw IoError(path.string() + ": " + std::strerror(errno));
  const Key key{st.st_dev, st.st_ino, st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec};
  {
    const std::lock_guard<std::mutex> lock(probed_mutex);
    if (probed.count(key) > 0) return;
  }
  // The global heaps and the groups' names are checked here on the raw bytes, before any libhdf5 call
  // on the file (a collection libhdf5 would loop on, or a name it would read past, is refused here);
  // the child inherits the mapping and the heap table.
  const auto raw = io::MappedFile::open(path);
  const Superblock sb = read_superblock(raw->data(), raw->size());
  const GlobalHeaps heaps = read_global_heaps(path, raw->data(), raw->size(), sb);
  check_group_names(path, raw->data(), raw->size(), sb);

  const bool fail = fault::planned(fault::Op::kProbe, path.string());
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw IoError(path.string() + ": cannot create a pipe: " + std::strerror(errno));
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int e = errno;
    ::close(fds[0]);
    ::close(fds[1]);
    throw IoError(path.string() + ": cannot start the process that checks the file: " + std::strerror(e));
  }
  if (pid == 0) {
    ::close(fds[0]);
    run_child(path, raw->data(), raw->size(), sb, heaps, fail, fds[1]);
  }
  ::close(fds[1]);

  // At most a minute plus a second per 50 MB in all, and kQuietSeconds between two steps.
  const auto limit = std::chrono::seconds(60 + st.st_size / 50'000'000);
  const auto start = std::chrono::steady_clock::now();
  auto news = start;
  std::string said;
  std::string stuck;  // why the child was stopped, if it was
  while (true) {
    const auto now = std::chrono::steady_clock::now();
    if (now - start >= limit) {
      stuck = "did not finish within " + std::to_string(limit.count()) + " s";
      break;
    }
    if (now - news >= std::chrono::seconds(kQuietSeconds)) {
      stuck = "made no progress for " + std::to_string(kQuietSeconds) + " s";
      break;
    }
    pollfd p{fds[0], POLLIN, 0};
    if (::poll(&p, 1, 500) <= 0) continue;  // no news yet, or a signal
    char buf[4096];
    const ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // the child ended
    news = std::chrono::steady_clock::now();
    said.append(buf, static_cast<size_t>(n));
    if (said.size() > (1u << 20)) said.erase(0, said.size() - (1u << 16));  // only the last lines matter
  }
  ::close(fds[0]);
  const bool timed_out = !stuck.empty();
  if (timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }

  std::vector<std::string> lines;
  for (size_t at = 0; at < said.size();) {
    const size_t end = said.find('\n', at);
    if (end == std::string::npos) break;
    lines.push_back(said.substr(at, end - at));
    at = end + 1;
  }
  const std::string last = lines.empty() ? "starting" : lines.back();
  if (last.rfind(kErrorPrefix, 0) == 0) throw FormatError(last.substr(sizeof(kErrorPrefix) - 1));
  const bool finished = !timed_out && WIFEXITED(status) && WEXITSTATUS(status) == 0 && !lines.empty() && last.empty();
  if (finished) {
    const std::lock_guard<std::mutex> lock(probed_mutex);
    probed.insert(key);
    return;
  }
  const std::string doing = lines.size() >= 2 && last.empty() ? lines[lines.size() - 2] : last;
  const std::string how = timed_out ? stuck : how_it_ended(status);
  throw FormatError(path.string() + ": libhdf5 " + how + " " + doing +
                    ", in the process that checks a file before it is read (a damaged file)");
}

}  // namespace sf::h5
