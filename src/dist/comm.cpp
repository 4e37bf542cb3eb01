#include "dist/comm.hpp"

#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <limits>
#include <mutex>
#include <set>
#include <thread>

#include "core/error.hpp"
#include "dist/layout.hpp"

#if defined(__SANITIZE_ADDRESS__)
#define SF_LEAK_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SF_LEAK_SANITIZER 1
#endif
#endif
#ifdef SF_LEAK_SANITIZER
#include <sanitizer/lsan_interface.h>
#endif

#ifdef SUPERFICIAL_WITH_NCCL
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <nccl.h>
#endif

namespace sf::dist {

struct Comm::Handle {
  MPI_Comm comm = MPI_COMM_NULL;  // MPI_COMM_NULL: a single rank without MPI
  bool owned = false;             // made by split(): freed with the handle (or at MPI_Finalize)
  int rank = 0;
  int size = 1;
  int local_rank = 0;
  int local_size = 1;
  CommStats stats;
#ifdef SUPERFICIAL_WITH_NCCL
  ncclComm_t nccl = nullptr;  // made on the first CUDA collective, on that tensor's device
  int nccl_device = -1;
#endif
  Handle() = default;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle();
  void release();  // frees the NCCL and MPI communicators (idempotent)
};

namespace {

// True when a launcher (mpirun, srun with PMI/PMIx) started this process as one of several ranks.
bool launched_by_mpi() {
  for (const char* n : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "PMI_RANK"})
    if (std::getenv(n)) return true;
  return false;
}

bool mpi_active() {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  return initialized && !finalized;
}

void check_mpi(int rc, const char* what) {
  if (rc != MPI_SUCCESS) throw IoError(std::string("MPI: ") + what + " failed (code " + std::to_string(rc) + ")");
}

// Every live handle that owns a communicator, so that they are freed before MPI_Finalize.
std::mutex registry_mu;
std::set<Comm::Handle*>& registry() {
  static std::set<Comm::Handle*> handles;
  return handles;
}

#ifdef SUPERFICIAL_WITH_NCCL
void check_nccl(ncclResult_t rc, const char* what) {
  if (rc != ncclSuccess) throw IoError(std::string("NCCL: ") + what + " failed: " + ncclGetErrorString(rc));
}

// The handle's NCCL communicator over the same ranks, made on first use (a collective call, so
// every rank makes it at the same point) on the device of the tensor being reduced.
ncclComm_t nccl_comm(Comm::Handle& h, int device) {
  if (h.nccl) {
    if (h.nccl_device != device)
      throw ShapeError("collective: CUDA tensor on device " + std::to_string(device) +
                       ", but this rank's NCCL communicator is on device " + std::to_string(h.nccl_device));
    return h.nccl;
  }
  ncclUniqueId id;
  if (h.rank == 0) check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
  check_mpi(MPI_Bcast(&id, sizeof(id), MPI_BYTE, 0, h.comm), "MPI_Bcast (NCCL id)");
  const c10::cuda::CUDAGuard guard(static_cast<c10::DeviceIndex>(device));
  check_nccl(ncclCommInitRank(&h.nccl, h.size, id, h.rank), "ncclCommInitRank");
  h.nccl_device = device;
  return h.nccl;
}

ncclDataType_t nccl_type(const torch::Tensor& t, const char* what) {
  switch (t.scalar_type()) {
    case torch::kFloat32:
      return ncclFloat;
    case torch::kFloat64:
      return ncclDouble;
    case torch::kBFloat16:
      return ncclBfloat16;
    case torch::kFloat16:
      return ncclHalf;
    case torch::kInt64:
      return ncclInt64;
    default:
      throw ShapeError(std::string(what) + ": tensor dtype " + c10::toString(t.scalar_type()) +
                       " unsupported (float32, float64, bfloat16, float16, int64)");
  }
}

cudaStream_t stream_of(const torch::Tensor& t) {
  return c10::cuda::getCurrentCUDAStream(static_cast<c10::DeviceIndex>(t.get_device())).stream();
}
#endif

void finalize_at_exit() {
  {
    std::lock_guard<std::mutex> lock(registry_mu);
    for (Comm::Handle* h : registry()) h->release();
  }
  if (mpi_active()) MPI_Finalize();
}

// Reductions run on float32/float64/int64; bfloat16 and float16 are reduced in float32.
bool reducible(torch::ScalarType s) {
  return s == torch::kFloat32 || s == torch::kFloat64 || s == torch::kInt64 || s == torch::kBFloat16 ||
         s == torch::kFloat16;
}

MPI_Datatype mpi_reduce_type(torch::ScalarType s) {
  if (s == torch::kFloat32) return MPI_FLOAT;
  if (s == torch::kFloat64) return MPI_DOUBLE;
  return MPI_INT64_T;
}

// MPI counts are ints: large buffers go in pieces.
constexpr int64_t kMaxCount = std::numeric_limits<int>::max();

int provided_thread_level = MPI_THREAD_SINGLE;

// Fills rank/size/local_* of a handle from its communicator.
void describe(Comm::Handle& h) {
  MPI_Comm_rank(h.comm, &h.rank);
  MPI_Comm_size(h.comm, &h.size);
  MPI_Comm node;
  MPI_Comm_split_type(h.comm, MPI_COMM_TYPE_SHARED, h.rank, MPI_INFO_NULL, &node);
  MPI_Comm_rank(node, &h.local_rank);
  MPI_Comm_size(node, &h.local_size);
  MPI_Comm_free(&node);
}

// Adds the wall time of one tensor collective to the handle's counters.
class Timed {
 public:
  Timed(CommStats& s, const torch::Tensor& t)
      : stats_(s), bytes_(t.numel() * static_cast<int64_t>(t.element_size())), t0_(std::chrono::steady_clock::now()) {}
  ~Timed() {
    stats_.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
    stats_.calls += 1;
    stats_.bytes += bytes_;
  }
  Timed(const Timed&) = delete;
  Timed& operator=(const Timed&) = delete;

 private:
  CommStats& stats_;
  int64_t bytes_;
  std::chrono::steady_clock::time_point t0_;
};

void allreduce(Comm::Handle& h, torch::Tensor& t, MPI_Op op, const char* what) {
  if (!reducible(t.scalar_type())) {
    throw ShapeError(std::string(what) + ": tensor dtype " + c10::toString(t.scalar_type()) +
                     " unsupported (float32, float64, bfloat16, float16, int64)");
  }
  if (h.size == 1) return;
  const Timed timed(h.stats, t);
#ifdef SUPERFICIAL_WITH_NCCL
  if (t.is_cuda()) {
    torch::Tensor buf = t.is_contiguous() ? t : t.contiguous();
    const int device = t.get_device();
    ncclComm_t comm = nccl_comm(h, device);
    const c10::cuda::CUDAGuard guard(static_cast<c10::DeviceIndex>(device));
    // On the tensor's current stream, so that later torch ops on that stream see the result.
    check_nccl(ncclAllReduce(buf.data_ptr(), buf.data_ptr(), static_cast<size_t>(buf.numel()), nccl_type(buf, what),
                             op == MPI_MAX ? ncclMax : ncclSum, comm, stream_of(buf)),
               "ncclAllReduce");
    if (!buf.is_same(t)) t.copy_(buf);
    return;
  }
#endif
  // CPU tensors (and CUDA tensors in builds without NCCL, staged through host memory).
  const bool half = t.scalar_type() == torch::kBFloat16 || t.scalar_type() == torch::kFloat16;
  torch::Tensor host = t;
  if (half) {
    host = t.to(torch::kCPU, torch::kFloat32).contiguous();
  } else if (!t.device().is_cpu() || !t.is_contiguous()) {
    host = t.to(torch::kCPU).contiguous();
  }
  const MPI_Datatype type = mpi_reduce_type(host.scalar_type());
  auto* base = static_cast<char*>(host.data_ptr());
  const int64_t esize = static_cast<int64_t>(host.element_size());
  for (int64_t off = 0; off < host.numel(); off += kMaxCount) {
    const int count = static_cast<int>(std::min(kMaxCount, host.numel() - off));
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, base + off * esize, count, type, op, h.comm), "MPI_Allreduce");
  }
  if (!host.is_same(t)) t.copy_(host);
}

}  // namespace

Comm::Handle::~Handle() {
  release();
  std::lock_guard<std::mutex> lock(registry_mu);
  registry().erase(this);
}

void Comm::Handle::release() {
#ifdef SUPERFICIAL_WITH_NCCL
  if (nccl) ncclCommDestroy(nccl);
  nccl = nullptr;
#endif
  if (owned && comm != MPI_COMM_NULL && mpi_active()) MPI_Comm_free(&comm);
  comm = MPI_COMM_NULL;
}

Comm::Comm() : h_(std::make_shared<Handle>()) {}

Comm& Comm::world() {
  static Comm comm = [] {
    auto h = std::make_shared<Handle>();
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized && launched_by_mpi()) {
      {
#ifdef SF_LEAK_SANITIZER
        // Open MPI and PMIx never free much of what MPI_Init allocates, in plugins they unload before
        // the leak check (so suppressions cannot name them): not the project's leaks (README: Sanitizers).
        const __lsan::ScopedDisabler not_ours;
#endif
        check_mpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided_thread_level), "MPI_Init_thread");
      }
      std::atexit(finalize_at_exit);
    } else if (initialized) {
      MPI_Query_thread(&provided_thread_level);
    }
    if (mpi_active()) {  // else a single process without a launcher: one rank
      h->comm = MPI_COMM_WORLD;
      describe(*h);
      // Its NCCL communicator is released at exit like those of split() handles.
      std::lock_guard<std::mutex> lock(registry_mu);
      registry().insert(h.get());
    }
    return Comm(h);
  }();
  return comm;
}

int Comm::rank() const { return h_->rank; }
int Comm::size() const { return h_->size; }
int Comm::local_rank() const { return h_->local_rank; }
int Comm::local_size() const { return h_->local_size; }

int Comm::threads_per_rank(int configured) const {
  if (configured > 0) return configured;
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / std::max(1, h_->local_size));
}

Comm Comm::split(int color, int key) const {
  if (h_->comm == MPI_COMM_NULL) return Comm();
  if (color < 0) throw ShapeError("Comm::split: color must be >= 0, got " + std::to_string(color));
  auto h = std::make_shared<Handle>();
  check_mpi(MPI_Comm_split(h_->comm, color, key, &h->comm), "MPI_Comm_split");
  h->owned = true;
  describe(*h);
  std::lock_guard<std::mutex> lock(registry_mu);
  registry().insert(h.get());
  return Comm(h);
}

void Comm::barrier() const {
  if (h_->size > 1) check_mpi(MPI_Barrier(h_->comm), "MPI_Barrier");
}

void Comm::allreduce_sum(torch::Tensor& t) const { allreduce(*h_, t, MPI_SUM, "allreduce_sum"); }
void Comm::allreduce_max(torch::Tensor& t) const { allreduce(*h_, t, MPI_MAX, "allreduce_max"); }

torch::Tensor Comm::allgather(const torch::Tensor& t) const {
  std::vector<int64_t> shape{h_->size};
  for (int64_t d : t.sizes()) shape.push_back(d);
  if (h_->size == 1) return t.unsqueeze(0).clone();
  const Timed timed(h_->stats, t);
  const torch::Tensor src = t.contiguous();
  const int64_t bytes = src.numel() * static_cast<int64_t>(src.element_size());
#ifdef SUPERFICIAL_WITH_NCCL
  if (t.is_cuda()) {
    torch::Tensor out = torch::empty(shape, src.options());
    const int device = t.get_device();
    ncclComm_t comm = nccl_comm(*h_, device);
    const c10::cuda::CUDAGuard guard(static_cast<c10::DeviceIndex>(device));
    check_nccl(
        ncclAllGather(src.data_ptr(), out.data_ptr(), static_cast<size_t>(bytes), ncclInt8, comm, stream_of(src)),
        "ncclAllGather");
    return out;
  }
#endif
  if (bytes > kMaxCount) {
    throw ShapeError("allgather: " + std::to_string(bytes) + " bytes per rank exceed MPI's count limit (2^31 - 1)");
  }
  const torch::Tensor host = src.device().is_cpu() ? src : src.cpu();
  torch::Tensor out = torch::empty(shape, host.options());
  check_mpi(MPI_Allgather(host.data_ptr(), static_cast<int>(bytes), MPI_BYTE, out.data_ptr(), static_cast<int>(bytes),
                          MPI_BYTE, h_->comm),
            "MPI_Allgather");
  return out.to(t.device());
}

void Comm::broadcast(torch::Tensor& t, int root) const {
  if (h_->size == 1) return;
  const Timed timed(h_->stats, t);
#ifdef SUPERFICIAL_WITH_NCCL
  if (t.is_cuda()) {
    torch::Tensor buf = t.is_contiguous() ? t : t.contiguous();
    const int device = t.get_device();
    ncclComm_t comm = nccl_comm(*h_, device);
    const c10::cuda::CUDAGuard guard(static_cast<c10::DeviceIndex>(device));
    check_nccl(ncclBroadcast(buf.data_ptr(), buf.data_ptr(),
                             static_cast<size_t>(buf.numel()) * static_cast<size_t>(buf.element_size()), ncclInt8, root,
                             comm, stream_of(buf)),
               "ncclBroadcast");
    if (!buf.is_same(t)) t.copy_(buf);
    return;
  }
#endif
  torch::Tensor host = t.device().is_cpu() && t.is_contiguous() ? t : t.to(torch::kCPU).contiguous();
  auto* base = static_cast<char*>(host.data_ptr());
  const int64_t bytes = host.numel() * static_cast<int64_t>(host.element_size());
  for (int64_t off = 0; off < bytes; off += kMaxCount) {
    const int count = static_cast<int>(std::min(kMaxCount, bytes - off));
    check_mpi(MPI_Bcast(base + off, count, MPI_BYTE, root, h_->comm), "MPI_Bcast");
  }
  if (!host.is_same(t)) t.copy_(host);
}

double Comm::allreduce_sum(double v) const {
  if (h_->size > 1) check_mpi(MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_DOUBLE, MPI_SUM, h_->comm), "MPI_Allreduce");
  return v;
}

int64_t Comm::allreduce_sum(int64_t v) const {
  if (h_->size > 1) check_mpi(MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_INT64_T, MPI_SUM, h_->comm), "MPI_Allreduce");
  return v;
}

double Comm::allreduce_max(double v) const {
  if (h_->size > 1) check_mpi(MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_DOUBLE, MPI_MAX, h_->comm), "MPI_Allreduce");
  return v;
}

int64_t Comm::broadcast(int64_t v, int root) const {
  if (h_->size > 1) check_mpi(MPI_Bcast(&v, 1, MPI_INT64_T, root, h_->comm), "MPI_Bcast");
  return v;
}

std::string Comm::broadcast(const std::string& s, int root) const {
  if (h_->size == 1) return s;
  int64_t n = static_cast<int64_t>(s.size());
  check_mpi(MPI_Bcast(&n, 1, MPI_INT64_T, root, h_->comm), "MPI_Bcast");
  if (n > kMaxCount) throw ShapeError("broadcast: a string of " + std::to_string(n) + " bytes exceeds MPI's limit");
  std::string out = h_->rank == root ? s : std::string(static_cast<size_t>(n), '\0');
  check_mpi(MPI_Bcast(out.data(), static_cast<int>(n), MPI_CHAR, root, h_->comm), "MPI_Bcast");
  return out;
}

std::vector<std::string> Comm::gather(const std::string& s, int root) const {
  if (h_->size == 1) return {s};
  int n = static_cast<int>(s.size());
  std::vector<int> sizes(h_->rank == root ? static_cast<size_t>(h_->size) : 0);
  check_mpi(MPI_Gather(&n, 1, MPI_INT, sizes.data(), 1, MPI_INT, root, h_->comm), "MPI_Gather");
  std::vector<int> offsets(sizes.size(), 0);
  for (size_t i = 1; i < sizes.size(); ++i) offsets[i] = offsets[i - 1] + sizes[i - 1];
  std::string all(sizes.empty() ? 0 : static_cast<size_t>(offsets.back() + sizes.back()), '\0');
  check_mpi(MPI_Gatherv(s.data(), n, MPI_CHAR, all.data(), sizes.data(), offsets.data(), MPI_CHAR, root, h_->comm),
            "MPI_Gatherv");
  std::vector<std::string> out;
  for (size_t i = 0; i < sizes.size(); ++i) out.push_back(all.substr(offsets[i], sizes[i]));
  return out;
}

CommStats Comm::stats() const { return h_->stats; }
void Comm::reset_stats() const { h_->stats = CommStats{}; }

// ---- WorkQueue ---------------------------------------------------------------------------------
//
// Rank 0 owns the counter. Its own worker takes chunks under a mutex; a server thread answers the
// other ranks' requests (point-to-point on a duplicated communicator, so that nothing else can
// match). The server polls with MPI_Test and a short sleep instead of a blocking receive, which in
// Open MPI would spin a core that rank 0's own computation needs. A chunk index of -1 means "no
// more work"; the server stops once every other rank has been told so.

namespace {
constexpr int kRequestTag = 1;
constexpr int kReplyTag = 2;
// Chunks take seconds; 2 ms of reply latency is noise, while a 200 µs poll measurably slowed rank 0
// (about 10% fewer tokens/s than rank 1 in `bench extract` on 2 cores).
constexpr auto kPollInterval = std::chrono::milliseconds(2);
}  // namespace

struct WorkQueue::Impl {
  Impl(const Comm& c, const Comm& g, bool a, int64_t n, int64_t ch)
      : comm(c), group(g), asks(a), num_items(n), chunk(ch) {}
  Comm comm;   // the asking ranks (every rank, or the groups' first ranks)
  Comm group;  // the ranks that receive this rank's answers (a single rank: nothing to send)
  bool asks;   // this rank is one of `comm`'s ranks
  int64_t num_items;
  int64_t chunk;
  int64_t num_chunks = 0;
  std::vector<bool> skip;
  bool distributed = false;  // this rank asks over MPI (or serves)
  MPI_Comm qcomm = MPI_COMM_NULL;

  std::mutex mu;  // guards next_chunk (rank 0)
  int64_t next_chunk = 0;
  std::thread server;
  std::atomic<bool> stop{false};
  bool exhausted = false;  // this rank's next() has returned nullopt

  int64_t take() {
    std::lock_guard<std::mutex> lock(mu);
    while (next_chunk < num_chunks && skip[static_cast<size_t>(next_chunk)]) ++next_chunk;
    return next_chunk < num_chunks ? next_chunk++ : -1;
  }

  // The next chunk index for this asking rank (-1: none left).
  int64_t ask() {
    if (!distributed || comm.is_root()) return take();
    int64_t c = -1;
    const int64_t request = comm.rank();
    check_mpi(MPI_Send(&request, 1, MPI_INT64_T, 0, kRequestTag, qcomm), "MPI_Send");
    check_mpi(MPI_Recv(&c, 1, MPI_INT64_T, 0, kReplyTag, qcomm, MPI_STATUS_IGNORE), "MPI_Recv");
    return c;
  }

  void serve() {
    int remaining = comm.size() - 1;
    int64_t dummy = 0;
    MPI_Request req = MPI_REQUEST_NULL;
    while (remaining > 0) {
      if (req == MPI_REQUEST_NULL) MPI_Irecv(&dummy, 1, MPI_INT64_T, MPI_ANY_SOURCE, kRequestTag, qcomm, &req);
      int flag = 0;
      MPI_Status status;
      MPI_Test(&req, &flag, &status);
      if (!flag) {
        if (stop.load()) {
          MPI_Cancel(&req);
          MPI_Request_free(&req);
          return;
        }
        std::this_thread::sleep_for(kPollInterval);
        continue;
      }
      const int64_t c = take();
      MPI_Send(&c, 1, MPI_INT64_T, status.MPI_SOURCE, kReplyTag, qcomm);
      if (c < 0) --remaining;
    }
  }

  void start(const std::vector<int64_t>& skipped) {
    if (num_items < 0) throw ShapeError("WorkQueue: negative item count " + std::to_string(num_items));
    if (chunk < 1) throw ConfigError("WorkQueue: chunk size must be >= 1, got " + std::to_string(chunk));
    num_chunks = (num_items + chunk - 1) / chunk;
    skip.assign(static_cast<size_t>(num_chunks), false);
    for (int64_t s : skipped) {
      if (s < 0 || s >= num_chunks)
        throw ShapeError("WorkQueue: skipped chunk " + std::to_string(s) + " outside [0, " +
                         std::to_string(num_chunks) + ")");
      skip[static_cast<size_t>(s)] = true;
    }
    distributed = asks && comm.size() > 1;
    if (!distributed) return;
    if (provided_thread_level < MPI_THREAD_MULTIPLE)
      throw IoError("WorkQueue: the MPI library does not provide MPI_THREAD_MULTIPLE");
    check_mpi(MPI_Comm_dup(comm.handle().comm, &qcomm), "MPI_Comm_dup");
    if (comm.is_root()) server = std::thread([this] { serve(); });
  }
};

WorkQueue::WorkQueue(const Comm& comm, int64_t num_items, int64_t chunk, std::vector<int64_t> skip)
    : impl_(std::make_unique<Impl>(comm, Comm(), true, num_items, chunk)) {
  impl_->start(skip);
}

WorkQueue::WorkQueue(const ParallelLayout& layout, int64_t num_items, int64_t chunk, std::vector<int64_t> skip)
    : impl_(std::make_unique<Impl>(layout.data, layout.tensor, layout.leader(), num_items, chunk)) {
  impl_->start(skip);
}

WorkQueue::~WorkQueue() {
  if (!impl_->distributed) return;
  // After an error on this rank the others may never ask again: stop serving instead of waiting
  // (the caller aborts the MPI job).
  if (!impl_->exhausted) impl_->stop = true;
  if (impl_->server.joinable()) impl_->server.join();
  if (impl_->exhausted) MPI_Comm_free(&impl_->qcomm);
}

std::optional<WorkQueue::Chunk> WorkQueue::next() {
  if (impl_->exhausted) return std::nullopt;
  int64_t c = impl_->asks ? impl_->ask() : -1;
  c = impl_->group.broadcast(c, 0);  // the group's first rank asked; a single rank keeps its answer
  if (c < 0) {
    impl_->exhausted = true;
    return std::nullopt;
  }
  return Chunk{c, c * impl_->chunk, std::min(impl_->num_items, (c + 1) * impl_->chunk)};
}

std::string host_name() {
  char host[256] = {0};
  if (::gethostname(host, sizeof(host) - 1) != 0) return "unknown-host";
  return host;
}

}  // namespace sf::dist
