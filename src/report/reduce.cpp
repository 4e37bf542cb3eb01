#include "report/reduce.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "core/build_info.hpp"
#include "core/clock.hpp"
#include "core/files.hpp"
#include "eval/results.hpp"
#include "extract/logit_dataset.hpp"
#include "heads/analysis.hpp"
#include "heads/base_model.hpp"
#include "heads/head_set.hpp"
#include "heads/positions.hpp"
#include "heads/rng.hpp"
#include "io/h5.hpp"
#include "judge/judgments.hpp"
#include "model/model_files.hpp"
#include "report/json_schema.hpp"
#include "study/study.hpp"
#include "tokenizer/tokenizer.hpp"

namespace sf::report {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// scores[task][metric][system][example_id]
using ScoreTable = std::map<std::string, std::map<std::string, std::map<std::string, std::map<int64_t, double>>>>;

void write_atomically(const fs::path& path, const std::string& text) {
  const fs::path part = path.string() + ".part";
  {
    std::ofstream out(part, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out) throw IoError(part.string() + ": cannot write");
  }
  fs::rename(part, path);
}

// The loss curve `superficial train` left in a model folder (loss.csv: step,loss,... with a header),
// or nullopt when the model was not trained by this tool.
std::optional<TrainingCurve> training_curve(const std::string& model, const fs::path& model_dir) {
  const fs::path csv = model_dir / "loss.csv";
  if (!fs::exists(csv)) return std::nullopt;
  std::ifstream in(csv);
  std::string line;
  if (!in || !std::getline(in, line)) throw FormatError(csv.string() + ": empty or unreadable");
  std::vector<std::string> header;
  for (std::stringstream hs(line); std::getline(hs, line, ',');) header.push_back(line);
  const auto col = [&](const std::string& name) {
    const auto it = std::find(header.begin(), header.end(), name);
    if (it == header.end()) throw FormatError(csv.string() + ": header has no column '" + name + "'");
    return static_cast<size_t>(it - header.begin());
  };
  const size_t step_col = col("step"), loss_col = col("loss");
  TrainingCurve c{model, model_dir.string(), "", {}, {}};
  for (int64_t lineno = 2; std::getline(in, line); ++lineno) {
    std::vector<std::string> cells;
    for (std::stringstream ls(line); std::getline(ls, line, ',');) cells.push_back(line);
    try {
      c.step.push_back(std::stoll(cells.at(step_col)));
      c.loss.push_back(std::stod(cells.at(loss_col)));
    } catch (const std::exception&) {
      throw FormatError(csv.string() + ":" + std::to_string(lineno) + ": expected numbers in columns step and loss");
    }
  }
  const fs::path summary = model_dir / "train_summary.json";
  if (fs::exists(summary)) {
    const json j = read_json_file(summary);
    if (!j.contains("recipe") || !j["recipe"].is_string()) throw FormatError(summary.string() + ": no string 'recipe'");
    c.recipe = j["recipe"].get<std::string>();
  }
  return c;
}

KlCurve kl_curve(const extract::LogitDataset& ds, const heads::HeadSet& set, const torch::Tensor& w,
                 const std::vector<int64_t>& rows, const ReduceSettings& settings) {
  KlCurve k;
  k.top_k = ds.top_k();
  k.examples = static_cast<int64_t>(rows.size());
  std::vector<double> sum_b(static_cast<size_t>(settings.kl_positions), 0.0), sum_h(sum_b.size(), 0.0);
  std::vector<int64_t> count(sum_b.size(), 0);
  for (int64_t r : rows) {
    const extract::ExtractedExample ex = ds.example(r);
    const int64_t m = std::min<int64_t>(static_cast<int64_t>(ex.response_ids.size()), settings.kl_positions);
    if (m == 0) continue;
    const heads::Head& head = set.for_task(ex.task);
    const torch::Tensor hidden = ex.base_hidden.slice(0, 0, m).to(head.device(), torch::kFloat32);  // [m,H]
    const torch::Tensor base_logits = hidden.matmul(w.t());                                         // [m,V]
    const torch::Tensor logq_base = torch::log_softmax(base_logits, -1);                            // [m,V]
    const torch::Tensor logq_head = torch::log_softmax(head.apply(base_logits, hidden), -1);        // [m,V]
    const torch::Tensor logp =
        torch::log_softmax(ex.aligned_topk_logits.slice(0, 0, m).to(head.device(), torch::kFloat32), -1);  // [m,k]
    const torch::Tensor ids = ex.aligned_topk_ids.slice(0, 0, m).to(head.device(), torch::kInt64);         // [m,k]
    const torch::Tensor p = logp.exp();
    const torch::Tensor kl_b = (p * (logp - logq_base.gather(1, ids))).sum(-1).cpu();  // [m]
    const torch::Tensor kl_h = (p * (logp - logq_head.gather(1, ids))).sum(-1).cpu();  // [m]
    for (int64_t j = 0; j < m; ++j) {
      sum_b[static_cast<size_t>(j)] += kl_b[j].item<double>();
      sum_h[static_cast<size_t>(j)] += kl_h[j].item<double>();
      count[static_cast<size_t>(j)] += 1;
    }
  }
  for (size_t j = 0; j < count.size() && count[j] > 0; ++j) {
    k.count.push_back(count[j]);
    k.aligned_base.push_back(sum_b[j] / static_cast<double>(count[j]));
    k.aligned_head.push_back(sum_h[j] / static_cast<double>(count[j]));
  }
  return k;
}

HeadTokens head_tokens(const extract::LogitDataset& ds, const heads::HeadSet& set, const torch::Tensor& w,
                       const std::vector<int64_t>& rows, const tok::Tokenizer& tokenizer, int64_t n) {
  HeadTokens h;
  // Per-task heads: the tokens of the first task's head (each task's head moves its own tokens).
  const std::string task = set.is_per_task() ? set.tasks().front() : "";
  std::vector<int64_t> selected;
  for (int64_t r : rows)
    if (task.empty() || ds.example_task(r) == task) selected.push_back(r);
  const heads::PositionSet positions(ds, selected, w.size(0));
  const auto [promoted, demoted] = heads::top_shifts(heads::mean_correction(set.for_task(task), positions, w), n);
  auto convert = [&](const std::vector<heads::TokenShift>& v) {
    std::vector<TokenShift> out;
    for (const auto& t : v) out.push_back({t.id, tokenizer.id_to_token(static_cast<int32_t>(t.id)), t.mean_correction});
    return out;
  };
  h.promoted = convert(promoted);
  h.demoted = convert(demoted);
  return h;
}

// Scores of one (task, metric) per system and example id.
using ExampleScores = std::map<std::string, std::map<int64_t, double>>;

// The examples every listed system has a score for (a judge may give some answers none).
std::set<int64_t> common_examples(const ExampleScores& by_system, const std::vector<std::string>& systems) {
  std::set<int64_t> ids;
  bool first = true;
  for (const auto& name : systems) {
    std::set<int64_t> mine;
    auto it = by_system.find(name);
    if (it != by_system.end())
      for (const auto& [id, v] : it->second) mine.insert(id);
    if (first) {
      ids = std::move(mine);
      first = false;
      continue;
    }
    std::set<int64_t> both;
    std::set_intersection(ids.begin(), ids.end(), mine.begin(), mine.end(), std::inserter(both, both.end()));
    ids = std::move(both);
  }
  return ids;
}

std::vector<double> aligned_scores(const ExampleScores& by_system, const std::string& system,
                                   const std::set<int64_t>& ids, const std::string& what) {
  auto it = by_system.find(system);
  if (it == by_system.end()) throw FormatError(what + ": system " + system + " has no scores");
  std::vector<double> v;
  for (int64_t id : ids) {
    auto e = it->second.find(id);
    if (e == it->second.end())
      throw FormatError(what + ": system " + system + " has no score for example " + std::to_string(id));
    v.push_back(e->second);
  }
  return v;
}

}  // namespace

std::vector<int64_t> held_out_rows(const extract::LogitDataset& ds, const heads::HeadSet& head,
                                   const fs::path& head_file, int64_t max, uint64_t seed) {
  auto it = head.metadata().find("validation_examples");
  const json v = it == head.metadata().end() ? json() : json::parse(it->second, nullptr, false);
  if (!v.is_array())
    throw FormatError(head_file.string() + ": metadata 'validation_examples' is missing or not a list");
  std::vector<int64_t> validation;
  for (const auto& r : v) {
    if (!r.is_number_integer() || r.get<int64_t>() < 0 || r.get<int64_t>() >= ds.num_examples())
      throw FormatError(head_file.string() + ": metadata 'validation_examples' holds a row outside " +
                        ds.path().string());
    validation.push_back(r.get<int64_t>());
  }
  std::sort(validation.begin(), validation.end());
  if (max <= 0 || max >= static_cast<int64_t>(validation.size())) return validation;
  // A seeded sample taken round-robin across tasks, so that every task is represented.
  std::map<std::string, std::vector<int64_t>> by_task;
  for (int64_t r : validation) by_task[ds.example_task(r)].push_back(r);
  std::vector<std::vector<int64_t>> queues;
  for (auto& [task, rows] : by_task) {
    const std::vector<int64_t> perm = heads::permutation(static_cast<int64_t>(rows.size()), derive_seed(seed, task));
    std::vector<int64_t> q;
    for (int64_t i : perm) q.push_back(rows[static_cast<size_t>(i)]);
    queues.push_back(std::move(q));
  }
  std::vector<int64_t> out;
  for (size_t i = 0; static_cast<int64_t>(out.size()) < max; ++i) {
    for (const auto& q : queues)
      if (i < q.size() && static_cast<int64_t>(out.size()) < max) out.push_back(q[i]);
  }
  std::sort(out.begin(), out.end());
  return out;
}

ReduceSettings ReduceSettings::from_job(const Job& job) {
  const ConfigNode s = job.section("reduce");
  ReduceSettings r;
  r.estimate.resamples = s.get<int64_t>("resamples", 1000);
  r.estimate.confidence = s.get<double>("confidence", 0.95);
  r.estimate.seed = s.get<uint64_t>("seed", job.seed());
  r.kl_positions = s.get<int64_t>("kl_positions", 64);
  r.kl_max_examples = s.get<int64_t>("kl_max_examples", 0);
  r.top_tokens = s.get<int64_t>("top_tokens", 20);
  if (r.estimate.resamples < 10) throw ConfigError(s.where("resamples") + ": must be >= 10");
  if (!(r.estimate.confidence > 0 && r.estimate.confidence < 1))
    throw ConfigError(s.where("confidence") + ": must be in (0, 1)");
  if (r.kl_positions < 1) throw ConfigError(s.where("kl_positions") + ": must be >= 1");
  if (r.kl_max_examples < 0) throw ConfigError(s.where("kl_max_examples") + ": must be >= 0");
  if (r.top_tokens < 1) throw ConfigError(s.where("top_tokens") + ": must be >= 1");
  s.finish();
  return r;
}

Job job_from_results(const fs::path& results_h5) {
  const h5::File f = h5::File::open(results_h5);
  return Job::parse(f.attr_string("job_config"), results_h5.string() + ": job_config");
}

Summary reduce_run(const fs::path& run_dir, const Job& job, const ReduceSettings& settings) {
  const fs::path results = run_dir / "evaluate" / "results.h5";
  const h5::File f = h5::File::open(results);
  if (f.attr_string("schema") != "results" || f.attr_int("schema_version") != eval::kResultsSchemaVersion) {
    throw FormatError(results.string() + ": schema " + f.attr_string("schema") + " v" +
                      std::to_string(f.attr_int("schema_version")) + ", this build reduces results v" +
                      std::to_string(eval::kResultsSchemaVersion) +
                      "; re-run `superficial evaluate` with this build, or reduce with the superficial version "
                      "named in its tool_version attribute");
  }
  const auto problems = h5::validate_file(results);
  if (!problems.empty()) throw FormatError(results.string() + ": " + problems.front());
  const json systems = json::parse(f.attr_string("systems"));
  const json tasks = json::parse(f.attr_string("tasks"));
  const json comparisons = json::parse(f.attr_string("comparisons"));

  Summary s;
  s.estimate = settings.estimate;
  s.provenance = {{"tool_version", build::kVersion},
                  {"git_sha", build::kGitSha},
                  {"run_dir", run_dir.string()},
                  {"created", utc_now_iso8601()},
                  {"results_git_sha", f.attr_string("git_sha")},
                  {"results_created", f.attr_string("created")}};
  std::set<std::string> evaluated;
  for (const auto& sys : systems) {
    s.systems.push_back({sys.at("name").get<std::string>(), sys.at("model").get<std::string>(),
                         sys.at("description").get<std::string>()});
    evaluated.insert(s.systems.back().name);
  }

  const h5::Group ex = f.group("examples"), sc = f.group("scores");
  const auto row_task = ex.dataset("task").read_all_strings();
  const auto row_system = ex.dataset("system").read_all_strings();
  const torch::Tensor row_id = ex.dataset("example_id").read_all();
  const torch::Tensor score_row = sc.dataset("row").read_all(), score_value = sc.dataset("value").read_all();
  const auto score_metric = sc.dataset("metric").read_all_strings();
  std::map<std::string, std::map<std::string, ExampleScores>> table;  // [task][metric][system][example]
  std::map<std::string, std::set<int64_t>> task_examples;
  for (size_t i = 0; i < row_task.size(); ++i)
    task_examples[row_task[i]].insert(row_id[static_cast<int64_t>(i)].item<int64_t>());
  for (int64_t k = 0; k < score_row.size(0); ++k) {
    const auto r = static_cast<size_t>(score_row[k].item<int64_t>());
    if (r >= row_task.size())
      throw FormatError(results.string() + ": scores/row[" + std::to_string(k) + "] out of range");
    table[row_task[r]][score_metric[static_cast<size_t>(k)]][row_system[r]]
         [row_id[static_cast<int64_t>(r)].item<int64_t>()] = score_value[k].item<double>();
  }

  // The judges' verdicts (judge/judgments.h5) are per-example scores like the others.
  const judge::JudgedScores judged = judge::read_judged_scores(run_dir);
  std::map<std::string, std::optional<double>> accuracy;  // per "task/metric"
  for (const judge::JudgedScore& j : judged.scores) {
    table[j.task][j.metric][j.system][j.example_id] = j.value;
    accuracy[j.task + "/" + j.metric] = j.judge_accuracy;
  }
  std::vector<std::string> names;
  for (const auto& sys : s.systems) names.push_back(sys.name);
  std::map<std::string, std::set<int64_t>> metric_examples;  // per "task/metric": scored by every system
  auto add_metric = [&](const std::string& task, MetricRow m) {
    const std::string key = task + "/" + m.metric;
    const std::string what = results.string() + ": " + key;
    if (m.scored) {
      metric_examples[key] = common_examples(table[task][m.metric], names);
      m.examples = static_cast<int64_t>(metric_examples[key].size());
      const auto missing = static_cast<int64_t>(task_examples[task].size()) - m.examples;
      if (missing > 0)
        s.notes.push_back(key + ": " + std::to_string(missing) +
                          " examples without a score for some system are left out of every number of this metric");
      if (m.examples == 0) {
        s.notes.push_back(key + ": no example has a score for every system");
        m.scored = false;
      } else {
        EstimateSettings e = settings.estimate;
        e.seed = derive_seed(settings.estimate.seed, key);
        for (const auto& name : names)
          m.systems[name] = estimate_mean(aligned_scores(table[task][m.metric], name, metric_examples[key], what), e);
      }
    }
    s.metrics.push_back(std::move(m));
  };
  for (const auto& t : tasks) {
    const std::string task = t.at("name").get<std::string>();
    for (const auto& metric_name : t.at("scores")) {
      MetricRow m;
      m.task = task;
      m.metric = metric_name.get<std::string>();
      add_metric(task, std::move(m));
    }
    for (const judge::JudgedMetric& jm : judged.metrics) {
      if (jm.task != task || jm.status == "omitted") continue;
      MetricRow m;
      m.task = task;
      m.metric = jm.metric;
      m.scored = jm.status == "scored";
      for (const auto& j : jm.judges) m.judge += (m.judge.empty() ? "" : "&") + j;
      m.judge_accuracy = accuracy[task + "/" + jm.metric];
      if (!m.scored) m.examples = static_cast<int64_t>(task_examples[task].size());
      s.notes.push_back(jm.note);
      add_metric(task, std::move(m));
    }
    if (t.at("scores").empty() && !judged.present)
      s.notes.push_back(task + ": judged only, and the judge stage has not run (superficial judge JOB.yaml)");
  }

  for (const auto& c : comparisons) {
    ComparisonSummary cs;
    cs.name = c.at("name").get<std::string>();
    cs.base = c.at("base").get<std::string>();
    cs.aligned = c.at("aligned").get<std::string>();
    cs.systems = c.at("systems").get<std::vector<std::string>>();
    std::vector<std::string> missing;
    for (const auto& name : std::vector<std::string>{cs.base, cs.aligned})
      if (!evaluated.count(name)) missing.push_back(name);
    for (const auto& name : cs.systems)
      if (!evaluated.count(name)) missing.push_back(name);
    if (!missing.empty()) {
      s.notes.push_back("comparison " + cs.name + ": skipped, system " + missing.front() + " was not evaluated");
      continue;
    }
    for (const MetricRow& m : s.metrics) {
      if (!m.scored || m.examples == 0) continue;
      const std::string what = results.string() + ": " + m.task + "/" + m.metric;
      const auto& by_system = table[m.task][m.metric];
      const std::set<int64_t>& ids = metric_examples[m.task + "/" + m.metric];
      const std::vector<double> b = aligned_scores(by_system, cs.base, ids, what);
      const std::vector<double> a = aligned_scores(by_system, cs.aligned, ids, what);
      ComparisonRow row;
      row.task = m.task;
      row.metric = m.metric;
      for (const auto& name : cs.systems) {
        EstimateSettings e = settings.estimate;
        e.seed = derive_seed(settings.estimate.seed, cs.name + "/" + m.task + "/" + m.metric + "/" + name);
        const PortionEstimate p = estimate_portion(b, a, aligned_scores(by_system, name, ids, what), e);
        row.diff = p.diff;
        row.diff_ci = p.diff_ci;
        row.portions.push_back({name, p});
      }
      if (cs.systems.empty()) {
        EstimateSettings e = settings.estimate;
        e.seed = derive_seed(settings.estimate.seed, cs.name + "/" + m.task + "/" + m.metric);
        const PortionEstimate p = estimate_portion(b, a, a, e);
        row.diff = p.diff;
        row.diff_ci = p.diff_ci;
      }
      cs.rows.push_back(std::move(row));
    }
    s.comparisons.push_back(std::move(cs));
  }

  std::set<std::string> models;
  for (const auto& sys : s.systems) models.insert(sys.model);
  for (const auto& name : models) {
    if (!job.has_model(name)) continue;
    if (auto c = training_curve(name, job.model(name).path)) s.training.push_back(std::move(*c));
  }

  // KL curves and token shifts for every head trained in this run, on its validation examples.
  const study::Study study = study::Study::from_job(job);
  torch::InferenceMode guard;
  for (const study::HeadDef& h : study.heads()) {
    if (!h.trained_here()) {
      s.notes.push_back("head " + h.spec.name + " comes from " + h.file.string() +
                        ": no KL curve (its extraction is in another run)");
      continue;
    }
    const fs::path head_file = run_dir / "heads" / (h.spec.name + ".safetensors");
    const fs::path logits = run_dir / "extract" / h.from->id() / "logits.h5";
    if (!fs::exists(head_file) || !fs::exists(logits)) {
      s.notes.push_back("head " + h.spec.name + ": " + (fs::exists(head_file) ? logits : head_file).string() +
                        " not found: no KL curve or token shifts");
      continue;
    }
    const auto ds = extract::LogitDataset::open(logits);
    const heads::HeadSet set = heads::HeadSet::load(head_file);
    const fs::path base_dir = job.model(h.from->base).path;
    const torch::Tensor w = heads::load_lm_head_weight(base_dir);  // [V,H]
    const std::vector<int64_t> rows =
        held_out_rows(ds, set, head_file, settings.kl_max_examples, derive_seed(settings.estimate.seed, h.spec.name));
    KlCurve k = kl_curve(ds, set, w, rows, settings);
    k.head = h.spec.name;
    k.pair_base = h.from->base;
    k.pair_aligned = h.from->aligned;
    s.kl.push_back(std::move(k));
    const tok::Tokenizer tokenizer = model::load_tokenizer(base_dir);
    HeadTokens tokens = head_tokens(ds, set, w, rows, tokenizer, settings.top_tokens);
    tokens.head = h.spec.name;
    s.head_tokens.push_back(std::move(tokens));
  }
  if (!s.kl.empty())
    s.notes.push_back(
        "KL per position: on each head's held-out validation examples only; aligned top-k support "
        "(renormalised) against the full-vocabulary softmax of base / base+head, recomputed from the "
        "stored base hidden states and the base lm_head");
  return s;
}

std::vector<std::string> check_summary_file(const fs::path& summary_json) {
  std::ifstream in(summary_json);
  if (!in) throw IoError(summary_json.string() + ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  const json doc = json::parse(ss.str(), nullptr, false);
  if (doc.is_discarded()) return {summary_json.string() + ": not valid JSON"};
  return check_json(doc, read_json_file(h5::schema_dir() / "summary-v2.json"));
}

void write_summary(const fs::path& run_dir, const Summary& summary) {
  const json doc = to_json(summary);
  const fs::path schema_file = h5::schema_dir() / "summary-v2.json";
  const auto problems = check_json(doc, read_json_file(schema_file));
  if (!problems.empty())
    throw FormatError("summary.json does not follow " + schema_file.string() + ": " + problems.front());
  write_atomically(run_dir / "summary.json", doc.dump(2) + "\n");
  write_atomically(run_dir / "summary.md", to_markdown(summary));
  write_atomically(run_dir / "report.html", to_html(summary));
}

}  // namespace sf::report
