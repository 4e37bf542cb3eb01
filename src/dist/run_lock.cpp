#include "dist/run_lock.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "core/atomic_file.hpp"
#include "core/clock.hpp"
#include "core/error.hpp"
#include "core/hash.hpp"

namespace sf::dist {
namespace {

namespace fs = std::filesystem;

std::string first_line_of(const fs::path& file) {
  std::ifstream in(file);
  std::string line;
  std::getline(in, line);
  return line;
}

// The process's start time in clock ticks after boot (field 22 of /proc/<pid>/stat), 0 when the
// process does not exist or /proc cannot be read.
uint64_t process_start(int64_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!in || !std::getline(in, stat)) return 0;
  const size_t paren = stat.rfind(')');  // the command name may contain spaces and ')'
  if (paren == std::string::npos) return 0;
  std::istringstream fields(stat.substr(paren + 1));
  std::string field;
  for (int i = 3; i <= 22 && fields >> field; ++i) {
    if (i == 22) return std::strtoull(field.c_str(), nullptr, 10);
  }
  return 0;
}

// The state letter of a process (field 3 of /proc/<pid>/stat), empty when it cannot be read.
std::string process_state(int64_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!in || !std::getline(in, stat)) return "";
  const size_t paren = stat.rfind(')');
  std::istringstream fields(paren == std::string::npos ? std::string() : stat.substr(paren + 1));
  std::string state;
  fields >> state;
  return state;
}

bool process_alive(int64_t pid, uint64_t start) {
  if (pid <= 0) return false;
  const std::string state = process_state(pid);
  if (state == "Z" || state == "X") return false;  // exited, not yet reaped by its parent
  const uint64_t now = process_start(pid);
  if (now != 0) return start == 0 || now == start;
  // No /proc entry: gone, unless /proc is unreadable here (then ask the kernel).
  return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
}

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

std::string unique_token(const std::string& host) {
  std::random_device rd;
  const auto ns = std::chrono::steady_clock::now().time_since_epoch().count();
  std::ostringstream s;
  s << host << "." << ::getpid() << "." << ns << "." << std::hex << rd();
  return s.str();
}

// Writes the holder record under `file` (a unique name) and syncs it.
void write_record(const fs::path& file, const std::string& text) {
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) throw IoError(file.string() + ": cannot create: " + errno_text(errno));
  try {
    write_all(fd, text.data(), text.size(), file);
    sync_fd(fd, file);
  } catch (...) {
    ::close(fd);
    ::unlink(file.c_str());
    throw;
  }
  ::close(fd);
}

// Creates `target` holding `me`'s record, atomically: the record is written under a unique name and
// link()ed to the target. True when the link was made; false with *error = errno otherwise.
bool link_record(const fs::path& target, const LockHolder& me, int* error) {
  const fs::path mine = target.string() + "." + me.token;
  write_record(mine, me.to_json() + "\n");
  errno = 0;
  const int rc = ::link(mine.c_str(), target.c_str());
  *error = errno;
  struct stat st {};
  // NFS may report a failure for a link whose reply was lost: the unique name then has 2 links.
  const bool linked = rc == 0 || (::stat(mine.c_str(), &st) == 0 && st.st_nlink == 2);
  ::unlink(mine.c_str());
  return linked;
}

// Removes a stale lock if it still holds `stale_text`. Takeovers are serialised by a second lock
// file (<lock>.takeover, taken the same way), so that a fresh lock taken meanwhile by another job
// is never removed. False when another job is taking over at this moment (try again).
bool remove_stale(const fs::path& file, const std::string& stale_text, const LockHolder& me) {
  const fs::path guard = file.string() + ".takeover";
  int err = 0;
  if (!link_record(guard, me, &err)) {
    if (err != EEXIST) throw IoError(guard.string() + ": cannot take the takeover lock: " + errno_text(err));
    const std::string text = first_line_of(guard);
    // A takeover whose process died in the middle of it (a fault within a fault): its guard goes.
    if (!text.empty() && !stale_reason(LockHolder::parse(text, guard), me).empty() && first_line_of(guard) == text)
      ::unlink(guard.c_str());
    return false;
  }
  if (first_line_of(file) == stale_text) ::unlink(file.c_str());
  ::unlink(guard.c_str());
  return true;
}

}  // namespace

LockHolder LockHolder::self(const std::string& fingerprint, const std::string& command) {
  LockHolder h;
  h.host = host_name();
  h.boot_id = first_line_of("/proc/sys/kernel/random/boot_id");
  h.pid = ::getpid();
  h.pid_start = process_start(h.pid);
  h.fingerprint = fingerprint;
  h.command = command;
  h.started = utc_now_iso8601();
  h.slurm_job_id = env("SLURM_JOB_ID");
  h.slurm_restart_count = std::atoll(env("SLURM_RESTART_COUNT").c_str());
  h.token = unique_token(h.host);
  return h;
}

std::string LockHolder::to_json() const {
  return nlohmann::json{{"host", host},
                        {"boot_id", boot_id},
                        {"pid", pid},
                        {"pid_start", pid_start},
                        {"job_fingerprint", fingerprint},
                        {"command", command},
                        {"started", started},
                        {"slurm_job_id", slurm_job_id},
                        {"slurm_restart_count", slurm_restart_count},
                        {"token", token}}
      .dump();
}

LockHolder LockHolder::parse(const std::string& text, const fs::path& file) {
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object())
    throw FormatError(file.string() + ": not a run-folder lock record; delete it if no job is running in this folder");
  try {
    LockHolder h;
    h.host = j.at("host").get<std::string>();
    h.boot_id = j.at("boot_id").get<std::string>();
    h.pid = j.at("pid").get<int64_t>();
    h.pid_start = j.at("pid_start").get<uint64_t>();
    h.fingerprint = j.at("job_fingerprint").get<std::string>();
    h.command = j.at("command").get<std::string>();
    h.started = j.at("started").get<std::string>();
    h.slurm_job_id = j.at("slurm_job_id").get<std::string>();
    h.slurm_restart_count = j.at("slurm_restart_count").get<int64_t>();
    h.token = j.at("token").get<std::string>();
    return h;
  } catch (const nlohmann::json::exception&) {
    throw FormatError(file.string() +
                      ": a run-folder lock record with missing or mistyped keys; delete it if no job is running in "
                      "this folder");
  }
}

std::string LockHolder::describe() const {
  std::string s = "host " + host + ", pid " + std::to_string(pid) + ", command '" + command + "', started " + started +
                  ", job fingerprint " + fingerprint.substr(0, 12);
  if (!slurm_job_id.empty())
    s += ", Slurm job " + slurm_job_id + " (restart " + std::to_string(slurm_restart_count) + ")";
  return s;
}

std::string stale_reason(const LockHolder& h, const LockHolder& self) {
  if (!h.slurm_job_id.empty() && h.slurm_job_id == self.slurm_job_id &&
      h.slurm_restart_count < self.slurm_restart_count)
    return "an earlier run of this Slurm job, requeued";
  if (h.host != self.host) return "";
  if (!h.boot_id.empty() && !self.boot_id.empty() && h.boot_id != self.boot_id) return "this host has restarted since";
  if (!process_alive(h.pid, h.pid_start)) return "its process is gone";
  return "";
}

RunLock::RunLock(fs::path file, LockHolder holder) : file_(std::move(file)), holder_(std::move(holder)), held_(true) {}

RunLock::RunLock(RunLock&& other) noexcept
    : file_(std::move(other.file_)), holder_(std::move(other.holder_)), held_(other.held_) {
  other.held_ = false;
}

RunLock& RunLock::operator=(RunLock&& other) noexcept {
  if (this != &other) {
    release();
    file_ = std::move(other.file_);
    holder_ = std::move(other.holder_);
    held_ = other.held_;
    other.held_ = false;
  }
  return *this;
}

RunLock::~RunLock() { release(); }

void RunLock::release() noexcept {
  if (!held_) return;
  held_ = false;
  try {
    const std::string text = first_line_of(file_);
    if (!text.empty() && LockHolder::parse(text, file_).token == holder_.token) {
      ::unlink(file_.c_str());
      return;
    }
    spdlog::warn("{}: the run-folder lock was taken over by another job; left in place", file_.string());
  } catch (const std::exception& e) {
    spdlog::warn("{}: the run-folder lock was not released: {}", file_.string(), e.what());
  }
}

RunLock RunLock::acquire(const fs::path& run_dir, const std::string& fingerprint, const std::string& command) {
  std::error_code ec;
  fs::create_directories(run_dir, ec);
  if (ec) throw IoError(run_dir.string() + ": cannot create the run folder: " + ec.message());
  const fs::path file = run_dir / kFileName;
  for (int attempt = 0; attempt < 50; ++attempt) {
    const LockHolder me = LockHolder::self(fingerprint, command);
    int err = 0;
    if (link_record(file, me, &err)) return RunLock(file, me);
    if (err != EEXIST) throw IoError(file.string() + ": cannot take the run-folder lock: " + errno_text(err));
    const std::string current = first_line_of(file);
    if (current.empty()) continue;  // released in the meantime
    const LockHolder holder = LockHolder::parse(current, file);
    std::string reason = stale_reason(holder, me);
    // Another process of this host may be exiting (an MPI rank ending after a peer died, just as
    // mpirun returns): it gets up to 5 s to go before the refusal.
    for (int i = 0; reason.empty() && holder.host == me.host && holder.pid != me.pid && i < 50; ++i) {
      ::usleep(100000);
      if (first_line_of(file) != current) break;
      reason = stale_reason(holder, me);
    }
    if (first_line_of(file) != current) continue;  // released or replaced meanwhile
    if (reason.empty())
      throw IoError(run_dir.string() + ": in use by " +
                    (holder.fingerprint == fingerprint ? std::string("the same job") : std::string("another job")) +
                    " (" + holder.describe() + "); wait for it to end or use another run_dir (lock file " +
                    file.string() + ": delete it only if that job is no longer running)");
    if (remove_stale(file, current, me)) {
      spdlog::warn("{}: removed the lock of a job that is gone ({}): {}", run_dir.string(), reason, holder.describe());
    } else {
      ::usleep(10000);  // another job is taking over this stale lock: see who wins
    }
  }
  throw IoError(file.string() + ": could not take the run-folder lock: other jobs keep changing it");
}

std::optional<RunLock> lock_run_folder(const fs::path& run_dir, const Job& job, const std::string& command,
                                       const Comm& comm) {
  std::optional<RunLock> lock;
  if (comm.is_root()) lock.emplace(RunLock::acquire(run_dir, sha256_hex(job.resolved_yaml()), command));
  // Rank 0 only gets here holding the lock: its errors end every rank before this broadcast.
  if (comm.broadcast(lock ? "held" : "") != "held") throw IoError(run_dir.string() + ": run-folder lock not taken");
  return lock;
}

std::optional<RunLock> lock_run_folder(const Job& job, const std::string& command, const Comm& comm) {
  return lock_run_folder(job.run_dir(), job, command, comm);
}

}  // namespace sf::dist
