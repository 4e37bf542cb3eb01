#include "core/fault.hpp"

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <vector>

#include "core/error.hpp"

namespace sf::fault {
namespace {

struct Plan {
  Op op = Op::kWrite;
  long long n = 0;
  int error = 0;      // the errno to fail with, unless `kill`
  bool kill = false;  // SIGKILL instead of the n-th operation
  std::string text;
};

Plan parse(const std::string& v) {
  const std::string where = "SUPERFICIAL_FAULT=" + v;
  std::vector<std::string> parts;
  size_t start = 0;
  for (int i = 0; i < 3; ++i) {
    const size_t colon = v.find(':', start);
    if (colon == std::string::npos) break;
    parts.push_back(v.substr(start, colon - start));
    start = colon + 1;
  }
  parts.push_back(v.substr(start));
  if (parts.size() < 3)
    throw ConfigError(where + ": expected <write|fsync|rename>:<n>:<ENOSPC|EIO|KILL>[:<path text>]");
  Plan p;
  if (parts[0] == "write") {
    p.op = Op::kWrite;
  } else if (parts[0] == "fsync") {
    p.op = Op::kSync;
  } else if (parts[0] == "rename") {
    p.op = Op::kRename;
  } else if (parts[0] == "probe") {
    p.op = Op::kProbe;
  } else {
    throw ConfigError(where + ": operation '" + parts[0] + "' is not write, fsync, rename or probe");
  }
  char* end = nullptr;
  p.n = std::strtoll(parts[1].c_str(), &end, 10);
  if (parts[1].empty() || *end != '\0' || p.n < 1)
    throw ConfigError(where + ": '" + parts[1] + "' is not a count >= 1");
  if (parts[2] == "ENOSPC") {
    p.error = ENOSPC;
  } else if (parts[2] == "EIO") {
    p.error = EIO;
  } else if (parts[2] == "KILL") {
    p.kill = true;
  } else {
    throw ConfigError(where + ": '" + parts[2] + "' is not ENOSPC, EIO or KILL");
  }
  if (p.op == Op::kProbe && !p.kill) throw ConfigError(where + ": a probe can only be made to fail with KILL");
  if (parts.size() == 4) p.text = parts[3];
  return p;
}

// The plan, when this operation on `path` is the n-th one it names.
std::optional<Plan> due(Op op, const std::string& path) {
  const char* env = std::getenv("SUPERFICIAL_FAULT");
  if (env == nullptr || *env == '\0') return std::nullopt;
  static std::mutex mutex;
  static std::string active;  // the value the plan and count belong to
  static std::optional<Plan> plan;
  static long long seen = 0;
  std::lock_guard<std::mutex> lock(mutex);
  if (!plan || active != env) {  // a new value starts a new count
    plan.reset();
    seen = 0;
    active = env;
    plan = parse(active);
  }
  if (plan->op != op || path.find(plan->text) == std::string::npos) return std::nullopt;
  if (++seen != plan->n) return std::nullopt;
  return plan;
}

}  // namespace

int inject(Op op, const std::string& path) {
  const std::optional<Plan> p = due(op, path);
  if (!p) return 0;
  if (p->kill) std::raise(SIGKILL);
  return p->error;
}

bool planned(Op op, const std::string& path) { return due(op, path).has_value(); }

}  // namespace sf::fault
