// The run-folder lock (dist/run_lock.hpp): one holder at a time, a refusal names the holder, stale
// locks (dead process on this host, pid reused, host rebooted, earlier Slurm incarnation) are taken
// over, live ones on other hosts never, and racing processes never both win.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>

#include "core/error.hpp"
#include "dist/run_lock.hpp"
#include "testutil/testutil.hpp"

namespace {

namespace fs = std::filesystem;
using sf::dist::LockHolder;
using sf::dist::RunLock;

// A pid that no process has (a child that has exited and been reaped).
int64_t dead_pid() {
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  int status = 0;
  ::waitpid(child, &status, 0);
  return child;
}

void write_holder(const fs::path& run_dir, const LockHolder& h) {
  fs::create_directories(run_dir);
  sf::test::write_file(run_dir / RunLock::kFileName, h.to_json() + "\n");
}

std::string error_of(const fs::path& run_dir, const std::string& fingerprint) {
  try {
    RunLock::acquire(run_dir, fingerprint, "test");
  } catch (const sf::IoError& e) {
    return e.what();
  }
  return "";
}

TEST(RunLock, SecondHolderIsRefusedWithTheHolderNamed) {
  sf::test::TempDir dir("lock");
  const fs::path run = dir / "run";
  {
    const RunLock lock = RunLock::acquire(run, "fp-1", "evaluate jobs/x.yaml");
    EXPECT_TRUE(fs::exists(run / RunLock::kFileName));
    const LockHolder h = LockHolder::parse(sf::test::read_file(run / RunLock::kFileName), run);
    EXPECT_EQ(h.pid, ::getpid());
    EXPECT_EQ(h.fingerprint, "fp-1");
    const std::string same = error_of(run, "fp-1");
    EXPECT_NE(same.find("in use by the same job"), std::string::npos) << same;
    EXPECT_NE(same.find("pid " + std::to_string(::getpid())), std::string::npos) << same;
    EXPECT_NE(same.find("command 'evaluate jobs/x.yaml'"), std::string::npos) << same;
    EXPECT_NE(same.find(h.host), std::string::npos) << same;
    EXPECT_NE(error_of(run, "fp-2").find("in use by another job"), std::string::npos);
  }
  EXPECT_FALSE(fs::exists(run / RunLock::kFileName));  // released
  EXPECT_NO_THROW(RunLock::acquire(run, "fp-2", "test"));
  // Only the lock file is left behind by taking it: no temporary names.
  for (const auto& e : fs::directory_iterator(run)) ADD_FAILURE() << "left behind: " << e.path();
}

TEST(RunLock, LockOfADeadProcessOnThisHostIsTakenOver) {
  sf::test::TempDir dir("lock");
  LockHolder old = LockHolder::self("fp", "extract");
  old.pid = dead_pid();
  write_holder(dir.path(), old);
  const RunLock lock = RunLock::acquire(dir.path(), "fp", "extract");
  EXPECT_EQ(LockHolder::parse(sf::test::read_file(dir / RunLock::kFileName), dir.path()).pid, ::getpid());
  EXPECT_EQ(sf::dist::stale_reason(old, LockHolder::self("fp", "x")), "its process is gone");
}

TEST(RunLock, StaleReasons) {
  const LockHolder me = LockHolder::self("fp", "run");
  LockHolder alive = me;  // this very process: never stale
  EXPECT_EQ(sf::dist::stale_reason(alive, me), "");
  LockHolder reused = me;  // our pid, but a process started at another time
  reused.pid_start += 1;
  EXPECT_EQ(sf::dist::stale_reason(reused, me), "its process is gone");
  LockHolder rebooted = me;
  rebooted.boot_id = "another-boot";
  EXPECT_EQ(sf::dist::stale_reason(rebooted, me), "this host has restarted since");
  LockHolder elsewhere = me;  // another host: whatever its pid, it may be running
  elsewhere.host = "node-that-is-not-this-one";
  elsewhere.pid = dead_pid();
  EXPECT_EQ(sf::dist::stale_reason(elsewhere, me), "");
  // Slurm requeue: the same job id, an earlier restart count, on any host.
  LockHolder first_run = elsewhere;
  first_run.slurm_job_id = "4242";
  first_run.slurm_restart_count = 0;
  LockHolder requeued = me;
  requeued.slurm_job_id = "4242";
  requeued.slurm_restart_count = 1;
  EXPECT_EQ(sf::dist::stale_reason(first_run, requeued), "an earlier run of this Slurm job, requeued");
  requeued.slurm_restart_count = 0;  // a concurrent step of the same incarnation: not stale
  EXPECT_EQ(sf::dist::stale_reason(first_run, requeued), "");
  requeued.slurm_job_id = "4243";
  requeued.slurm_restart_count = 1;
  EXPECT_EQ(sf::dist::stale_reason(first_run, requeued), "");
}

TEST(RunLock, RequeuedSlurmJobTakesOverItsOwnLock) {
  sf::test::TempDir dir("lock");
  LockHolder old = LockHolder::self("fp", "run");
  old.host = "node-that-is-not-this-one";
  old.slurm_job_id = "777";
  old.slurm_restart_count = 2;
  write_holder(dir.path(), old);
  ::setenv("SLURM_JOB_ID", "777", 1);
  ::setenv("SLURM_RESTART_COUNT", "2", 1);
  const std::string refused = error_of(dir.path(), "fp");  // same incarnation on another node: refused
  EXPECT_NE(refused.find("Slurm job 777 (restart 2)"), std::string::npos) << refused;
  ::setenv("SLURM_RESTART_COUNT", "3", 1);
  {
    const RunLock lock = RunLock::acquire(dir.path(), "fp", "run");
    EXPECT_EQ(lock.holder().slurm_restart_count, 3);
  }
  ::unsetenv("SLURM_JOB_ID");
  ::unsetenv("SLURM_RESTART_COUNT");
}

TEST(RunLock, DamagedLockFileIsAnErrorNamingIt) {
  sf::test::TempDir dir("lock");
  sf::test::write_file(dir / RunLock::kFileName, "{\"host\": 3}\n");
  try {
    RunLock::acquire(dir.path(), "fp", "run");
    FAIL() << "a damaged lock file was taken";
  } catch (const sf::FormatError& e) {
    EXPECT_NE(std::string(e.what()).find(RunLock::kFileName), std::string::npos) << e.what();
  }
}

// Processes racing for a free lock, or for a stale one, start together; a winner marks the
// folder as held (an O_EXCL file) while it holds the lock. Returns the number of winners, or -1
// when two held the lock at once (or a child failed otherwise).
int racers_winning(const fs::path& run_dir, int racers) {
  int go[2];
  if (::pipe(go) != 0) return -1;
  const fs::path marker = run_dir.string() + ".held";
  std::vector<pid_t> children;
  for (int i = 0; i < racers; ++i) {
    const pid_t c = ::fork();
    if (c == 0) {
      char b = 0;
      ::close(go[1]);
      if (::read(go[0], &b, 1) != 0) ::_exit(3);  // wait for the start (the pipe closing)
      try {
        const RunLock lock = RunLock::acquire(run_dir, "fp", "race");
        const int fd = ::open(marker.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
        if (fd < 0) ::_exit(2);  // someone else holds it too
        ::close(fd);
        ::usleep(50000);
        ::unlink(marker.c_str());
      } catch (const sf::IoError&) {
        ::_exit(1);
      } catch (...) {
        ::_exit(4);
      }
      ::_exit(0);
    }
    children.push_back(c);
  }
  ::close(go[0]);
  ::close(go[1]);
  int winners = 0;
  bool ok = true;
  for (pid_t c : children) {
    int status = 0;
    ::waitpid(c, &status, 0);
    ok = ok && WIFEXITED(status) && WEXITSTATUS(status) <= 1;
    winners += WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 1 : 0;
  }
  return ok ? winners : -1;
}

TEST(RunLock, RacingProcessesNeverHoldItTogether) {
  sf::test::TempDir dir("lock");
  for (int round = 0; round < 5; ++round) {
    EXPECT_GE(racers_winning(dir / "free", 6), 1) << "free lock, round " << round;
    LockHolder stale = LockHolder::self("fp", "gone");
    stale.pid = dead_pid();
    write_holder(dir / "stale", stale);
    EXPECT_GE(racers_winning(dir / "stale", 6), 1) << "stale lock, round " << round;
  }
}

}  // namespace
