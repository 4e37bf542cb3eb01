#pragma once
// One job at a time per run folder. Every stage command that writes into a run folder (run,
// extract, train-head, evaluate, judge, reduce) holds <run_dir>/.superficial.lock while it runs: a
// one-line JSON file naming the holder (host, boot id, pid and the pid's start time, job
// fingerprint, command, start time, Slurm job id and restart count). A second job on the same
// folder stops at once with an IoError naming the holder.
//
// Taking the lock: the holder record is written and fsynced under a unique name, then link(2)ed to
// the lock name. link() either creates the name or fails with EEXIST, atomically, on local
// filesystems and on NFS (v2 and later) alike; a link whose reply NFS lost is recognised by the
// unique file's link count of 2. flock()/fcntl() locks are not used: NFS clients without lockd,
// some parallel filesystems and mounts with `nolock` grant them locally without telling other
// nodes, and they vanish with the process, so they cannot name the holder.
//
// A lock is taken over, with a warning, when its holder is certainly gone:
//   - it ran on this host (same host name and boot id) and its pid no longer exists or now
//     belongs to a process started at another time;
//   - it ran on this host before the last reboot (another boot id);
//   - it is an earlier incarnation of this Slurm job (same SLURM_JOB_ID, lower
//     SLURM_RESTART_COUNT): a requeued job may take over its own lock on any node.
// A holder on this host gets up to 5 s to exit (an MPI rank ending just after mpirun returned)
// before the refusal. A lock held by a live process, or by one on another host, is never taken
// over: the message says to delete the lock file only if no job is running there. Removing a stale lock is serialised
// by a second lock file (<lock>.takeover, taken the same way): its holder removes the lock only if it still holds the
// stale record, then every contender takes the lock as above, so a fresh lock is never removed and two jobs never both
// hold one. (A takeover guard left by a process that died within its few microseconds of work is itself removed when
// stale.)
//
// In an MPI job rank 0 takes the lock (lock_run_folder) and tells every rank the outcome.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "core/job.hpp"
#include "dist/comm.hpp"

namespace sf::dist {

// The holder record of a lock file.
struct LockHolder {
  std::string host;
  std::string boot_id;
  int64_t pid = 0;
  uint64_t pid_start = 0;  // the process start time (clock ticks since boot, /proc/<pid>/stat)
  std::string fingerprint;
  std::string command;
  std::string started;  // ISO 8601 UTC
  std::string slurm_job_id;
  int64_t slurm_restart_count = 0;
  std::string token;  // unique per acquisition

  // This process, now.
  static LockHolder self(const std::string& fingerprint, const std::string& command);
  std::string to_json() const;
  // FormatError naming `file` when the text is not a holder record.
  static LockHolder parse(const std::string& text, const std::filesystem::path& file);
  // "host h, pid p, command c, started t, Slurm job j" for messages.
  std::string describe() const;
};

class RunLock {
 public:
  static constexpr const char* kFileName = ".superficial.lock";

  // Takes the lock of `run_dir` (created if missing). IoError naming the holder when another job
  // holds it; a stale lock is taken over with a warning (see above).
  static RunLock acquire(const std::filesystem::path& run_dir, const std::string& fingerprint,
                         const std::string& command);

  RunLock(RunLock&& other) noexcept;
  RunLock& operator=(RunLock&& other) noexcept;
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;
  ~RunLock();  // releases (never throws)

  // Removes the lock file if it is still this job's record.
  void release() noexcept;
  const std::filesystem::path& file() const { return file_; }
  const LockHolder& holder() const { return holder_; }

 private:
  RunLock(std::filesystem::path file, LockHolder holder);
  std::filesystem::path file_;
  LockHolder holder_;
  bool held_ = false;
};

// Whether the process that wrote `h` is certainly gone, seen from this process (the reasons
// above); the reason as text, or empty when it may still be running.
std::string stale_reason(const LockHolder& h, const LockHolder& self);

// The lock of `run_dir` for a stage command (`command`, e.g. "evaluate jobs/x.yaml") of `job`
// (fingerprint: the sha256 of its resolved YAML, --set overrides included), taken by rank 0 of
// `comm` and held until the returned object goes (nullopt on the other ranks). A refusal is an
// IoError on rank 0; the other ranks wait for the outcome (MPI_Abort ends them).
std::optional<RunLock> lock_run_folder(const std::filesystem::path& run_dir, const Job& job, const std::string& command,
                                       const Comm& comm);
// The same for the job's own run_dir.
std::optional<RunLock> lock_run_folder(const Job& job, const std::string& command, const Comm& comm);

}  // namespace sf::dist
