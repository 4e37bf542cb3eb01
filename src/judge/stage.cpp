#include "judge/stage.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
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
#include "eval/evaluate.hpp"
#include "eval/task.hpp"
#include "io/h5.hpp"
#include "judge/fit.hpp"
#include "judge/judge.hpp"
#include "judge/judgments.hpp"
#include "judge/plan.hpp"
#include "model/finite.hpp"
#include "study/model_set.hpp"
#include "study/study.hpp"

namespace sf::judge {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// One work unit: a judge's verdicts on a chunk of answers of one system, or on a chunk of its
// held-out items.
struct Unit {
  size_t judge = 0;
  bool heldout = false;
  std::string system;
  std::vector<int64_t> rows;         // results rows (answers) or held-out items
  std::vector<int64_t> example_ids;  // answers only
  std::vector<std::string> inputs;   // the filled prompts
  std::string key;                   // sha256 of the judge's fingerprint and everything above
};

// The answers of evaluate/results.h5 (the columns every results schema version keeps).
struct Answers {
  std::vector<std::string> task, system, answer;
  std::vector<int64_t> example_id;
  std::string fingerprint;  // the results file's job_fingerprint
};

Answers read_answers(const fs::path& path) {
  if (!fs::exists(path))
    throw IoError(path.string() + ": not found; run `superficial evaluate` first (the judges read its answers)");
  const h5::File f = h5::File::open(path);
  const h5::Group ex = f.group("examples");
  Answers a;
  a.task = ex.dataset("task").read_all_strings();
  a.system = ex.dataset("system").read_all_strings();
  a.answer = ex.dataset("answer").read_all_strings();
  const torch::Tensor ids = ex.dataset("example_id").read_all().to(torch::kInt64).contiguous();
  a.example_id.assign(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + ids.numel());
  if (a.system.size() != a.task.size() || a.answer.size() != a.task.size() || a.example_id.size() != a.task.size())
    throw FormatError(path.string() + ": examples/* datasets differ in length");
  a.fingerprint = f.has_attr("job_fingerprint") ? f.attr_string("job_fingerprint") : sha256_file(path);
  return a;
}

fs::path unit_path(const fs::path& dir, const std::string& key) { return dir / "units" / (key + ".h5"); }

double verdict_value(const Recipe& r, const Verdict& v) {
  if (!v.matched()) return std::nan("");
  if (r.kind == Kind::kGenerate) return v.score;
  return v.label == r.positive ? 1.0 : 0.0;
}

bool verdict_positive(const Recipe& r, const std::string& label) {
  return r.kind == Kind::kGenerate ? label == "positive" : label == r.positive;
}

json judge_json(const ActiveJudge& j) {
  const Recipe& r = j.recipe;
  json labels = r.labels;
  if (r.kind == Kind::kGenerate) labels = json::array();
  return {{"task", j.task},
          {"name", r.name},
          {"kind", kind_name(r.kind)},
          {"metric", r.metric},
          {"labels", labels},
          {"positive", r.positive},
          {"recipe", r.to_json()},
          {"path", j.binding.path.string()},
          {"dtype", j.binding.dtype},
          {"template", j.binding.template_name},
          {"batch_size", j.binding.batch_size},
          {"model_fingerprint", j.model_fingerprint},
          {"tokenizer_fingerprint", j.tokenizer_fingerprint},
          {"fingerprint", j.fingerprint},
          {"heldout", nullptr}};
}

json common_attrs(const Job& job, const Answers& answers) {
  return {
      {"schema", "judgments"},     {"schema_version", kJudgmentsVersion}, {"tool_version", build::kVersion},
      {"git_sha", build::kGitSha}, {"job_config", job.resolved_yaml()},   {"results_fingerprint", answers.fingerprint}};
}

// The units of every judge: its held-out items, then (unless `answers` is null) the answers.
std::vector<Unit> make_units(const Plan& plan, const std::vector<eval::Task>& tasks,
                             const std::vector<std::vector<eval::Example>>& examples, const Answers* answers,
                             const fs::path& results) {
  std::vector<Unit> units;
  for (size_t ji = 0; ji < plan.judges.size(); ++ji) {
    const ActiveJudge& j = plan.judges[ji];
    const Recipe& r = j.recipe;
    const InputFit fit(r, j.binding);
    const int64_t chunk = j.binding.chunk_examples;
    auto finish = [&](Unit u) {
      std::string h = j.fingerprint + "\n" + (u.heldout ? "heldout " + j.heldout_sha256 : "answers") + "\n" + j.task +
                      "\n" + u.system + "\n";
      for (size_t i = 0; i < u.rows.size(); ++i)
        h += std::to_string(u.rows[i]) + ":" + (u.heldout ? "" : std::to_string(u.example_ids[i])) + ":" +
             sha256_hex(u.inputs[i]) + "\n";
      u.key = sha256_hex(h).substr(0, 32);
      units.push_back(std::move(u));
    };
    for (int64_t b = 0; b < static_cast<int64_t>(j.heldout.size()); b += chunk) {
      Unit u;
      u.judge = ji;
      u.heldout = true;
      for (int64_t i = b; i < std::min<int64_t>(b + chunk, static_cast<int64_t>(j.heldout.size())); ++i) {
        auto fields = j.heldout[static_cast<size_t>(i)];
        if (fields.count("answer")) fields["answer"] = r.trim.apply(fields["answer"]);
        u.rows.push_back(i);
        u.inputs.push_back(fit.fill(fields, "task " + j.task + ", held-out item " + std::to_string(i)).text);
      }
      finish(std::move(u));
    }
    if (answers == nullptr) continue;
    const size_t ti = static_cast<size_t>(
        std::find_if(tasks.begin(), tasks.end(), [&](const eval::Task& t) { return t.name() == j.task; }) -
        tasks.begin());
    std::map<int64_t, const eval::Example*> by_id;
    for (const auto& ex : examples[ti]) by_id[ex.id] = &ex;
    std::vector<std::string> systems;
    std::map<std::string, std::vector<int64_t>> rows_of;
    for (size_t row = 0; row < answers->task.size(); ++row) {
      if (answers->task[row] != j.task) continue;
      if (!rows_of.count(answers->system[row])) systems.push_back(answers->system[row]);
      rows_of[answers->system[row]].push_back(static_cast<int64_t>(row));
    }
    if (systems.empty())
      throw FormatError(results.string() + ": no answers of task '" + j.task + "' for judge '" + r.name +
                        "' (evaluate the task, or remove its judge)");
    for (const auto& system : systems) {
      const auto& rows = rows_of[system];
      for (size_t b = 0; b < rows.size(); b += static_cast<size_t>(chunk)) {
        Unit u;
        u.judge = ji;
        u.system = system;
        for (size_t k = b; k < std::min(rows.size(), b + static_cast<size_t>(chunk)); ++k) {
          const auto row = static_cast<size_t>(rows[k]);
          auto ex = by_id.find(answers->example_id[row]);
          if (ex == by_id.end())
            throw FormatError(results.string() + ": examples row " + std::to_string(row) + ": example " +
                              std::to_string(answers->example_id[row]) + " is not in the test split of task '" +
                              j.task + "'");
          u.rows.push_back(rows[k]);
          u.example_ids.push_back(answers->example_id[row]);
          u.inputs.push_back(fit.fill(judge_fields(r, ex->second->fields, ex->second->input, answers->answer[row]),
                                      "task " + j.task + ", system " + system + ", example " +
                                          std::to_string(answers->example_id[row]))
                                 .text);
        }
        finish(std::move(u));
      }
    }
  }
  return units;
}

// Runs one unit's judge and returns its rows.
void judge_unit(const Unit& u, const ActiveJudge& j, const Judge& judge, std::vector<Judgment>* rows,
                std::vector<HeldoutJudgment>* heldout) {
  const std::vector<Verdict> verdicts = judge.judge(u.inputs);
  if (verdicts.size() != u.inputs.size())
    throw ShapeError(j.recipe.where + ": " + std::to_string(verdicts.size()) + " verdicts for " +
                     std::to_string(u.inputs.size()) + " inputs");
  for (size_t i = 0; i < verdicts.size(); ++i) {
    const Verdict& v = verdicts[i];
    // No verdict rests on a non-finite number.
    const std::string what = "judge: judge " + j.recipe.name + " (model " + j.binding.path.string() + "), task " +
                             j.task +
                             (u.heldout ? ", held-out item " + std::to_string(u.rows[i])
                                        : ", system " + u.system + ", example " + std::to_string(u.example_ids[i]));
    model::require_finite(torch::tensor(v.raw, torch::kFloat64), {what, "per-label scores (position = label)", 0, {}});
    model::require_finite(v.step_logits, {what, "generation step logits", 0, {}});
    if (u.heldout) {
      heldout->push_back(
          {j.task, j.recipe.name, j.heldout[static_cast<size_t>(u.rows[i])].at("label"), v.label, u.rows[i], v.score});
      continue;
    }
    Judgment r;
    r.task = j.task;
    r.system = u.system;
    r.judge = j.recipe.name;
    r.metric = j.recipe.metric;
    r.label = v.label;
    r.text = v.text;
    r.input = u.inputs[i];
    r.example_id = u.example_ids[i];
    r.results_row = u.rows[i];
    r.score = v.score;
    r.value = verdict_value(j.recipe, v);
    if (!v.raw.empty()) r.label_names = j.recipe.labels;
    r.raw = v.raw;
    r.prob = v.prob;
    rows->push_back(std::move(r));
  }
}

// A judge's accuracy on its held-out items (null without any); logged.
json heldout_accuracy(const ActiveJudge& j, const std::vector<HeldoutJudgment>& heldout) {
  if (!j.binding.heldout) return nullptr;
  int64_t n = 0, correct = 0;
  for (const auto& h : heldout) {
    if (h.task != j.task || h.judge != j.recipe.name) continue;
    ++n;
    correct += h.correct() ? 1 : 0;
  }
  const double accuracy = n > 0 ? static_cast<double>(correct) / static_cast<double>(n) : 0.0;
  spdlog::info("judge: {}: held-out accuracy {:.3f} ({} of {} items of {})", j.id(), accuracy, correct, n,
               j.binding.heldout->string());
  return {{"file", j.binding.heldout->string()},
          {"sha256", j.heldout_sha256},
          {"items", n},
          {"correct", correct},
          {"accuracy", accuracy}};
}

// The all_of metrics of the plan, from the verdict rows.
std::vector<Judgment> all_of_rows(const Plan& plan, const std::vector<Judgment>& rows) {
  std::map<std::string, const Recipe*> recipe;
  for (const auto& j : plan.judges) recipe[j.id()] = &j.recipe;
  // (task, judge) -> (system, example) -> label
  std::map<std::string, std::map<std::pair<std::string, int64_t>, const Judgment*>> verdicts;
  for (const auto& r : rows) verdicts[r.task + "/" + r.judge][{r.system, r.example_id}] = &r;
  std::vector<Judgment> out;
  for (const auto& m : plan.metrics) {
    if (m.kind != "all_of" || m.status != "scored") continue;
    std::string name;
    for (const auto& j : m.judges) name += (name.empty() ? "" : "&") + j;
    std::vector<const Judgment*> order;
    for (const auto& r : rows)
      if (r.task == m.task && r.judge == m.judges[0]) order.push_back(&r);
    for (const Judgment* base : order) {
      Judgment d;
      d.task = m.task;
      d.system = base->system;
      d.judge = name;
      d.metric = m.metric;
      d.example_id = base->example_id;
      d.results_row = base->results_row;
      bool all = true, complete = true;
      for (const auto& j : m.judges) {
        auto it = verdicts[m.task + "/" + j].find({base->system, base->example_id});
        if (it == verdicts[m.task + "/" + j].end() || !std::isfinite(it->second->value)) {
          complete = false;
          continue;
        }
        all = all && verdict_positive(*recipe[m.task + "/" + j], it->second->label);
      }
      d.label = !complete ? Verdict::kNoMatch : all ? "positive" : "negative";
      d.value = !complete ? std::nan("") : all ? 1.0 : 0.0;
      out.push_back(std::move(d));
    }
  }
  return out;
}

// One log line per (task, metric): each system's mean value (reduce adds intervals and portions).
void log_means(const std::vector<Judgment>& rows) {
  std::vector<std::string> order;
  std::map<std::string, std::map<std::string, std::pair<double, int64_t>>> sums;  // task/metric -> system
  std::map<std::string, std::vector<std::string>> systems;
  for (const auto& r : rows) {
    const std::string key = r.task + "/" + r.metric;
    if (!sums.count(key)) order.push_back(key);
    auto& s = sums[key];
    if (!s.count(r.system)) systems[key].push_back(r.system);
    auto& [sum, n] = s[r.system];
    if (std::isfinite(r.value)) {
      sum += r.value;
      ++n;
    }
  }
  for (const auto& key : order) {
    std::string line;
    for (const auto& system : systems[key]) {
      const auto& [sum, n] = sums[key][system];
      line += (line.empty() ? "" : ", ") + system + " " +
              (n > 0 ? fmt::format("{:.3f}", sum / static_cast<double>(n)) : std::string("-")) +
              " (n=" + std::to_string(n) + ")";
    }
    spdlog::info("judge: {}: {}", key, line);
  }
}

// Writes judgments.h5 (whole, then renamed into place).
void write_merged(const Job& job, const Plan& plan, const Answers& answers, const std::string& plan_fingerprint,
                  const json& judges, const std::vector<Judgment>& rows, const std::vector<HeldoutJudgment>& heldout,
                  size_t num_units, const fs::path& out) {
  json attrs = common_attrs(job, answers);
  attrs["kind"] = "merged";
  attrs["created"] = utc_now_iso8601();
  attrs["plan_fingerprint"] = plan_fingerprint;
  attrs["judges"] = judges;
  attrs["metrics"] = plan.to_json();
  attrs["num_units"] = static_cast<int64_t>(num_units);
  const fs::path part = out.string() + ".part";
  fs::create_directories(out.parent_path());
  {
    JudgmentsWriter w(part, attrs);
    w.append(rows, heldout);
    w.close();
  }
  commit_file(part, out);
}

// The job's tasks with all their test examples, and the judging plan.
struct Planned {
  std::vector<eval::Task> tasks;
  std::vector<std::vector<eval::Example>> examples;
  Plan plan;
};

Planned plan_job(const Job& job) {
  const eval::EvaluateSettings settings = eval::read_evaluate_settings(job, study::Study::from_job(job));
  std::map<std::string, Binding> bindings;
  if (job.has_section("judges")) bindings = parse_job_judges(job.section("judges"));
  Planned p;
  for (const auto& name : settings.tasks) {
    p.tasks.push_back(eval::Task::load(name, settings.tasks_dir));
    p.examples.push_back(p.tasks.back().examples(eval::Split::kTest, job.data_root()));
  }
  p.plan = make_plan(p.tasks, p.examples, bindings);
  return p;
}

}  // namespace

fs::path judge_dir(const Job& job) { return job.run_dir() / "judge"; }
fs::path judgments_path(const Job& job) { return judge_dir(job) / "judgments.h5"; }

void check_judges(const Job& job) { plan_job(job); }

JudgeStageSummary run_judge(const Job& job, const dist::Comm& comm, bool heldout_only) {
  const auto t0 = std::chrono::steady_clock::now();
  const Planned planned = plan_job(job);
  const Plan& plan = planned.plan;
  const std::vector<eval::Task>& tasks = planned.tasks;
  const std::vector<std::vector<eval::Example>>& examples = planned.examples;
  const fs::path results = eval::results_path(job);
  const Answers answers = heldout_only ? Answers{} : read_answers(results);
  const std::vector<Unit> units = make_units(plan, tasks, examples, heldout_only ? nullptr : &answers, results);

  json plan_fp = {{"metrics", plan.to_json()}, {"results", answers.fingerprint}};
  for (const auto& u : units) plan_fp["units"].push_back(u.key);
  const std::string plan_fingerprint = sha256_hex(plan_fp.dump());
  const fs::path dir = judge_dir(job), out = judgments_path(job);
  JudgeStageSummary summary;
  summary.units = static_cast<int64_t>(units.size());

  // Rank 0 decides what is done; every rank gets the same answer.
  std::string decision;
  if (comm.is_root()) {
    json d = {{"skip", false}, {"done", json::array()}};
    if (!heldout_only && fs::exists(out) && h5::File::open(out).attr_string("plan_fingerprint") == plan_fingerprint) {
      d["skip"] = true;
    } else {
      fs::create_directories(dir / "units");
      for (int64_t i = 0; i < static_cast<int64_t>(units.size()); ++i) {
        const fs::path p = unit_path(dir, units[static_cast<size_t>(i)].key);
        fs::remove(p.string() + ".part");
        if (fs::exists(p)) d["done"].push_back(i);
      }
    }
    decision = d.dump();
  }
  const json d = json::parse(comm.broadcast(decision));
  if (d["skip"].get<bool>()) {
    if (comm.is_root()) spdlog::info("judge: {} is complete for this plan, skipped", out.string());
    summary.skipped = true;
    return summary;
  }
  const auto done = d["done"].get<std::vector<int64_t>>();
  summary.units_reused = static_cast<int64_t>(done.size());
  if (comm.is_root()) {
    for (const auto& m : plan.metrics)
      if (m.status != "scored") spdlog::info("judge: {}", m.note);
    spdlog::info("judge: {} judge(s), {} units ({} already done)", plan.judges.size(), units.size(), done.size());
  }

  const torch::Device device = study::rank_device(job, comm);
  {
    // Tensor groups of parallel.tensor ranks judge a unit together (LM judges split over the group);
    // the groups share the units as single ranks do, and a group's first rank writes.
    const dist::ParallelLayout par = dist::ParallelLayout::make(comm, job.tensor_parallel());
    std::unique_ptr<Judge> loaded;
    size_t loaded_judge = plan.judges.size();
    dist::WorkQueue queue(par, static_cast<int64_t>(units.size()), 1, done);
    while (auto chunk = queue.next()) {
      if (par.tensor.broadcast(static_cast<int64_t>(stop_requested())) != 0)
        throw Interrupted("judge: stopped by a signal; finished units are kept, rerun to resume");
      const Unit& u = units[static_cast<size_t>(chunk->index)];
      const ActiveJudge& j = plan.judges[u.judge];
      if (loaded_judge != u.judge) {
        loaded.reset();
        loaded = load_judge(j.recipe, j.binding, device, par.tensor);
        loaded_judge = u.judge;
      }
      std::vector<Judgment> rows;
      std::vector<HeldoutJudgment> heldout;
      judge_unit(u, j, *loaded, &rows, &heldout);
      if (!par.leader()) continue;
      json attrs = common_attrs(job, answers);
      attrs["kind"] = "chunk";
      attrs["unit"] = u.key;
      attrs["judges"] = json::array({judge_json(j)});
      const fs::path p = unit_path(dir, u.key);
      const fs::path part = p.string() + ".part";
      {
        JudgmentsWriter w(part, attrs);
        w.append(rows, heldout);
        w.close();
      }
      commit_file(part, p);
    }
  }
  comm.barrier();
  if (comm.is_root()) {
    std::vector<Judgment> rows;
    std::vector<HeldoutJudgment> heldout;
    for (const auto& u : units) {
      JudgmentsFile f = read_judgments(unit_path(dir, u.key));
      rows.insert(rows.end(), f.rows.begin(), f.rows.end());
      heldout.insert(heldout.end(), f.heldout.begin(), f.heldout.end());
    }
    const std::vector<Judgment> derived = all_of_rows(plan, rows);
    rows.insert(rows.end(), derived.begin(), derived.end());
    json judges = json::array();
    for (const auto& j : plan.judges) {
      json jj = judge_json(j);
      jj["heldout"] = heldout_accuracy(j, heldout);
      judges.push_back(jj);
    }
    if (heldout_only) {
      json acc = json::object();
      for (const auto& j : judges)
        acc[j["task"].get<std::string>() + "/" + j["name"].get<std::string>()] = j["heldout"];
      fs::create_directories(dir);
      write_file_atomically(dir / "heldout.json", acc.dump(2) + "\n");
      spdlog::info("judge: held-out accuracies in {}", (dir / "heldout.json").string());
    } else {
      write_merged(job, plan, answers, plan_fingerprint, judges, rows, heldout, units.size(), out);
      log_means(rows);
      summary.verdicts = static_cast<int64_t>(rows.size());
      spdlog::info("judge: wrote {} ({} rows, {} held-out verdicts) in {:.1f} s", out.string(), rows.size(),
                   heldout.size(), std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
  }
  comm.barrier();
  return summary;
}

}  // namespace sf::judge
