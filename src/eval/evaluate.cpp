#include "eval/evaluate.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <memory>
#include <set>

#include "core/atomic_file.hpp"
#include "core/build_info.hpp"
#include "core/clock.hpp"
#include "core/error.hpp"
#include "core/hash.hpp"
#include "core/stop.hpp"
#include "dist/comm.hpp"
#include "dist/layout.hpp"
#include "eval/results.hpp"
#include "eval/system.hpp"
#include "eval/task.hpp"
#include "io/h5.hpp"

namespace sf::eval {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct Unit {
  size_t system = 0;
  size_t task = 0;
  int64_t begin = 0;  // examples [begin, end) of the task's test split
  int64_t end = 0;
};

fs::path chunk_path(const fs::path& dir, int64_t unit) {
  char name[32];
  std::snprintf(name, sizeof(name), "unit-%06lld.h5", static_cast<long long>(unit));
  return dir / "chunks" / name;
}

// The systems a rank answers as, built on first use; a new system releases the previous one's
// models (units come system by system).
class Runtimes {
 public:
  Runtimes(const Job& job, const study::Study& study, torch::Device device, const dist::Comm& tensor_group)
      : study_(study), models_(job, device, tensor_group), device_(device) {}

  const SystemRuntime& get(const study::SystemDef& def) {
    if (current_ && current_name_ == def.name) return *current_;
    current_.reset();
    heads_.reset();
    std::vector<const study::LoadedModel*> models = models_.acquire(study_.models_of(def));
    if (!def.head.empty())
      heads_ = std::make_unique<heads::HeadSet>(heads::HeadSet::load(study_.head(def.head).file, device_));
    current_ = std::make_unique<SystemRuntime>(def, std::move(models), heads_.get());
    current_name_ = def.name;
    return *current_;
  }

 private:
  const study::Study& study_;
  study::ModelSet models_;
  torch::Device device_;
  std::unique_ptr<heads::HeadSet> heads_;
  std::unique_ptr<SystemRuntime> current_;
  std::string current_name_;
};

}  // namespace

json systems_attribute(const Job& job, const study::Study& study, const std::vector<std::string>& names) {
  json out = json::array();
  for (const auto& name : names) {
    const study::SystemDef& s = study.system(name);
    json j = {{"name", s.name},
              {"model", s.model},
              {"model_path", job.model(s.model).path.string()},
              {"head", s.head},
              {"description", study.describe(s)}};
    j["template"] = s.template_override ? YAML::Dump(s.template_override->yaml()) : job.model(s.model).template_name;
    if (!s.head.empty()) {
      const study::HeadDef& h = study.head(s.head);
      j["head_type"] = h.spec.type;
      j["head_file"] = h.file.string();
      j["head_from"] = h.from ? json{{"base", h.from->base}, {"aligned", h.from->aligned}} : json(nullptr);
    }
    if (s.proxy)
      j["proxy"] = {{"expert", s.proxy->expert}, {"anti_expert", s.proxy->anti_expert}, {"alpha", s.proxy->alpha}};
    j["stop"] = s.stop;
    out.push_back(j);
  }
  return out;
}

EvaluateSettings read_evaluate_settings(const Job& job, const study::Study& study) {
  const ConfigNode s = job.section("evaluate");
  EvaluateSettings out;
  std::vector<std::string> all;
  for (const auto& d : study.systems()) all.push_back(d.name);
  out.systems = s.get<std::vector<std::string>>("systems", all);
  std::set<std::string> seen;
  for (const auto& n : out.systems) {
    if (!seen.insert(n).second) throw ConfigError(s.where("systems") + ": '" + n + "' listed twice");
    study.system(n);
  }
  if (out.systems.empty()) throw ConfigError(job.source() + ": systems: define at least one system to evaluate");
  out.tasks = s.get<std::vector<std::string>>("tasks", job.tasks());
  for (const auto& t : out.tasks) {
    if (std::find(job.tasks().begin(), job.tasks().end(), t) == job.tasks().end())
      throw ConfigError(s.where("tasks") + ": '" + t + "' is not one of the job's tasks");
  }
  if (out.tasks.empty()) throw ConfigError(s.where("tasks") + ": no tasks to evaluate (set the job's tasks:)");
  out.max_examples = s.get<int64_t>("max_examples", -1);
  out.chunk_examples = s.get<int64_t>("chunk_examples", 16);
  out.answer.batch_size = s.get<int64_t>("batch_size", 8);
  out.answer.record_top_k = s.get<int64_t>("record_top_k", 20);
  out.answer.max_new_tokens_cap = s.get<int64_t>("max_new_tokens", 0);
  out.tasks_dir = s.get<std::string>("tasks_dir", "configs/tasks");
  if (out.chunk_examples < 1) throw ConfigError(s.where("chunk_examples") + ": must be >= 1");
  if (out.answer.batch_size < 1) throw ConfigError(s.where("batch_size") + ": must be >= 1");
  if (out.answer.record_top_k < 1) throw ConfigError(s.where("record_top_k") + ": must be >= 1");
  if (out.answer.max_new_tokens_cap < 0) throw ConfigError(s.where("max_new_tokens") + ": must be >= 0");
  s.finish();
  return out;
}

fs::path evaluate_dir(const Job& job) { return job.run_dir() / "evaluate"; }
fs::path results_path(const Job& job) { return evaluate_dir(job) / "results.h5"; }
bool evaluate_complete(const Job& job) { return fs::exists(results_path(job)); }

void run_evaluate(const Job& job, const study::Study& study, const EvaluateSettings& settings, const dist::Comm& comm,
                  const ProgressFn& progress) {
  const Stopwatch clock;
  const fs::path dir = evaluate_dir(job);
  std::vector<Task> tasks;
  std::vector<std::vector<Example>> examples;
  for (const auto& name : settings.tasks) {
    tasks.push_back(Task::load(name, settings.tasks_dir));
    examples.push_back(tasks.back().examples(Split::kTest, job.data_root(), settings.max_examples));
  }
  std::vector<Unit> units;
  for (size_t s = 0; s < settings.systems.size(); ++s) {
    for (size_t t = 0; t < tasks.size(); ++t) {
      const auto n = static_cast<int64_t>(examples[t].size());
      for (int64_t b = 0; b < n; b += settings.chunk_examples)
        units.push_back({s, t, b, std::min(n, b + settings.chunk_examples)});
    }
  }

  // Provenance and the fingerprint that a resumed job must match.
  const json jsystems = systems_attribute(job, study, settings.systems);
  json jtasks = json::array(), fp;
  fp["systems"] = jsystems;
  for (const auto& name : settings.systems) {
    const study::SystemDef& s = study.system(name);
    json models = json::array();
    for (const auto& m : study.models_of(s)) {
      const ModelRef& ref = job.model(m);
      models.push_back(
          {{"name", m}, {"path", ref.path.string()}, {"dtype", ref.dtype}, {"template", ref.template_name}});
    }
    fp["models"].push_back(models);
    fp["head_sha256"].push_back(s.head.empty() ? "" : sha256_file(study.head(s.head).file));
  }
  for (const auto& t : tasks) {
    jtasks.push_back({{"name", t.name()},
                      {"version", t.version()},
                      {"file", t.source()},
                      {"scores", t.metric().score_names()},
                      {"metric_kind", t.metric().scored() ? "scored" : "unscored"},
                      {"keywords_version", t.metric().keywords_version}});
    fp["tasks"].push_back(t.definition_yaml());
  }
  fp["data_root"] = job.data_root().string();
  fp["settings"] = {settings.max_examples, settings.chunk_examples, settings.answer.record_top_k,
                    settings.answer.max_new_tokens_cap};
  const std::string fingerprint = sha256_hex(fp.dump());
  json jcomparisons = json::array();
  for (const auto& c : study.comparisons())
    jcomparisons.push_back({{"name", c.name}, {"base", c.base}, {"aligned", c.aligned}, {"systems", c.systems}});
  const json attrs = {{"schema", "results"},
                      {"schema_version", kResultsSchemaVersion},
                      {"tool_version", build::kVersion},
                      {"git_sha", build::kGitSha},
                      {"created", utc_now_iso8601()},
                      {"job_config", job.resolved_yaml()},
                      {"job_fingerprint", fingerprint},
                      {"systems", jsystems},
                      {"comparisons", jcomparisons},
                      {"tasks", jtasks},
                      {"record_top_k", settings.answer.record_top_k},
                      {"seed", static_cast<int64_t>(job.seed())},
                      {"num_units", static_cast<int64_t>(units.size())}};

  // Rank 0 decides which units are done (and clears partial files); every rank gets the same list.
  std::string done_text;
  if (comm.is_root()) {
    fs::create_directories(dir / "chunks");
    json done = json::array();
    for (int64_t u = 0; u < static_cast<int64_t>(units.size()); ++u) {
      const fs::path p = chunk_path(dir, u);
      fs::remove(p.string() + ".part");
      if (!fs::exists(p)) continue;
      const h5::File f = h5::File::open(p);
      if (!f.has_attr("job_fingerprint") || f.attr_string("job_fingerprint") != fingerprint)
        throw ConfigError(p.string() +
                          ": written by a different evaluation (models, heads, systems, tasks or evaluate settings "
                          "changed); remove " +
                          dir.string() + " or use another run_dir");
      done.push_back(u);
    }
    done_text = done.dump();
  }
  done_text = comm.broadcast(done_text);
  const auto done = json::parse(done_text).get<std::vector<int64_t>>();
  if (comm.is_root() && !done.empty())
    spdlog::info("evaluate: resuming, {} of {} units already done", done.size(), units.size());

  EvalProgress prog;
  prog.units_total = static_cast<int64_t>(units.size() - done.size());
  // Tensor groups of parallel.tensor ranks each answer a unit together (models split over the
  // group); the groups share the units as single ranks do. A group's first rank writes.
  const dist::ParallelLayout par = dist::ParallelLayout::make(comm, job.tensor_parallel());
  Runtimes runtimes(job, study, study::rank_device(job, comm), par.tensor);
  {
    dist::WorkQueue queue(par, static_cast<int64_t>(units.size()), 1, done);
    while (auto chunk = queue.next()) {
      if (par.tensor.broadcast(static_cast<int64_t>(stop_requested())) != 0)
        throw Interrupted("evaluate: stopped by a signal; finished units are kept, rerun to resume");
      const Unit& u = units[static_cast<size_t>(chunk->index)];
      const Task& task = tasks[u.task];
      const std::vector<Example> batch(examples[u.task].begin() + u.begin, examples[u.task].begin() + u.end);
      const SystemRuntime& sys = runtimes.get(study.system(settings.systems[u.system]));
      const std::vector<Row> rows = [&] {
        torch::InferenceMode guard;
        return answer_unit(task, sys, batch, settings.answer, &prog.tokens);
      }();
      if (par.leader()) {
        const fs::path p = chunk_path(dir, chunk->index);
        const fs::path part = p.string() + ".part";
        json a = attrs;
        a["kind"] = "chunk";
        a["unit"] = chunk->index;
        {
          ResultsWriter w(part, a, settings.answer.record_top_k);
          w.append(rows);
          w.close();
        }
        commit_file(part, p);
      }
      prog.units_done += 1;
      prog.examples += static_cast<int64_t>(rows.size());
      prog.seconds = clock.seconds();
      if (progress && par.leader()) progress(prog);  // one report per group: its ranks did the same work
    }
  }
  comm.barrier();
  if (comm.is_root()) {
    const fs::path out = results_path(job);
    const fs::path part = out.string() + ".part";
    json a = attrs;
    a["kind"] = "merged";
    a["num_chunks"] = static_cast<int64_t>(units.size());
    ResultsWriter w(part, a, settings.answer.record_top_k);
    for (int64_t u = 0; u < static_cast<int64_t>(units.size()); ++u) w.append(read_rows(chunk_path(dir, u)));
    w.close();
    commit_file(part, out);
    spdlog::info("evaluate: wrote {} ({} rows)", out.string(), w.rows());
  }
  comm.barrier();
}

}  // namespace sf::eval
