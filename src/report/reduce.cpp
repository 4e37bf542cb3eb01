#include "report/reduce.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "core/build_info.hpp"
#include "core/files.hpp"
#include "extract/logit_dataset.hpp"
#include "extract/shard_writer.hpp"
#include "heads/analysis.hpp"
#include "heads/base_model.hpp"
#include "heads/head.hpp"
#include "io/h5.hpp"
#include "report/json_schema.hpp"
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
std::optional<TrainingCurve> training_curve(const std::string& role, const fs::path& model_dir) {
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
  TrainingCurve c{role, model_dir.string(), "", {}, {}};
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

KlCurve kl_curve(const extract::LogitDataset& ds, const heads::Head& head, const torch::Tensor& w,
                 const std::string& system, const ReduceSettings& settings) {
  KlCurve k;
  k.head_system = system;
  k.top_k = ds.top_k();
  std::vector<double> sum_b(static_cast<size_t>(settings.kl_positions), 0.0), sum_h(sum_b.size(), 0.0);
  std::vector<int64_t> count(sum_b.size(), 0);
  const int64_t rows =
      settings.kl_max_examples > 0 ? std::min(settings.kl_max_examples, ds.num_examples()) : ds.num_examples();
  for (int64_t r = 0; r < rows; ++r) {
    const extract::ExtractedExample ex = ds.example(r);
    const int64_t m = std::min<int64_t>(static_cast<int64_t>(ex.response_ids.size()), settings.kl_positions);
    if (m == 0) continue;
    const torch::Tensor hidden = ex.base_hidden.slice(0, 0, m).to(torch::kFloat32);           // [m,H]
    const torch::Tensor base_logits = hidden.matmul(w.t());                                   // [m,V]
    const torch::Tensor logq_base = torch::log_softmax(base_logits, -1);                      // [m,V]
    const torch::Tensor logq_head = torch::log_softmax(head.apply(base_logits, hidden), -1);  // [m,V]
    const torch::Tensor logp =
        torch::log_softmax(ex.aligned_topk_logits.slice(0, 0, m).to(torch::kFloat32), -1);  // [m,k]
    const torch::Tensor ids = ex.aligned_topk_ids.slice(0, 0, m).to(torch::kInt64);         // [m,k]
    const torch::Tensor p = logp.exp();
    const torch::Tensor kl_b = (p * (logp - logq_base.gather(1, ids))).sum(-1);  // [m]
    const torch::Tensor kl_h = (p * (logp - logq_head.gather(1, ids))).sum(-1);  // [m]
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

HeadTokens head_tokens(const extract::LogitDataset& ds, const heads::Head& head, const tok::Tokenizer& tokenizer,
                       const std::string& system, int64_t n) {
  HeadTokens h;
  h.head_system = system;
  const auto [promoted, demoted] = heads::top_shifts(heads::mean_correction(head, ds), n);
  auto convert = [&](const std::vector<heads::TokenShift>& v) {
    std::vector<TokenShift> out;
    for (const auto& t : v) out.push_back({t.id, tokenizer.id_to_token(static_cast<int32_t>(t.id)), t.mean_correction});
    return out;
  };
  h.promoted = convert(promoted);
  h.demoted = convert(demoted);
  return h;
}

}  // namespace

ReduceSettings ReduceSettings::from_job(const Job& job) {
  const ConfigNode s = job.section("reduce");
  ReduceSettings r;
  r.bootstrap.resamples = s.get<int64_t>("resamples", 1000);
  r.bootstrap.confidence = s.get<double>("confidence", 0.95);
  r.bootstrap.seed = s.get<uint64_t>("seed", job.seed());
  r.kl_positions = s.get<int64_t>("kl_positions", 64);
  r.kl_max_examples = s.get<int64_t>("kl_max_examples", 0);
  r.top_tokens = s.get<int64_t>("top_tokens", 20);
  if (r.bootstrap.resamples < 10) throw ConfigError(s.where("resamples") + ": must be >= 10");
  if (!(r.bootstrap.confidence > 0 && r.bootstrap.confidence < 1))
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
  constexpr int64_t kReadsResultsVersion = 1;
  if (f.attr_string("schema") != "results" || f.attr_int("schema_version") != kReadsResultsVersion) {
    throw FormatError(results.string() + ": schema " + f.attr_string("schema") + " v" +
                      std::to_string(f.attr_int("schema_version")) + ", this build reduces results v" +
                      std::to_string(kReadsResultsVersion) +
                      "; re-run `superficial evaluate` with this build, or reduce with the superficial version "
                      "named in its tool_version attribute");
  }
  const auto problems = h5::validate_file(results);
  if (!problems.empty()) throw FormatError(results.string() + ": " + problems.front());
  const json systems = json::parse(f.attr_string("systems"));
  const json tasks = json::parse(f.attr_string("tasks"));

  Summary s;
  s.bootstrap = settings.bootstrap;
  s.provenance = {{"tool_version", build::kVersion},
                  {"git_sha", build::kGitSha},
                  {"run_dir", run_dir.string()},
                  {"created", extract::utc_now_iso8601()},
                  {"results_git_sha", f.attr_string("git_sha")},
                  {"results_created", f.attr_string("created")}};
  for (const auto& sys : systems) s.systems.push_back(sys.at("name").get<std::string>());

  const h5::Group ex = f.group("examples"), sc = f.group("scores");
  const auto row_task = ex.dataset("task").read_all_strings();
  const auto row_system = ex.dataset("system").read_all_strings();
  const torch::Tensor row_id = ex.dataset("example_id").read_all();
  const torch::Tensor score_row = sc.dataset("row").read_all(), score_value = sc.dataset("value").read_all();
  const auto score_metric = sc.dataset("metric").read_all_strings();
  ScoreTable table;
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

  for (const auto& t : tasks) {
    const std::string task = t.at("name").get<std::string>();
    for (const auto& metric_name : t.at("scores")) {
      const std::string metric = metric_name.get<std::string>();
      MetricSummary m;
      m.task = task;
      m.metric = metric;
      m.scored = t.at("metric_kind").get<std::string>() == "scored";
      m.examples = static_cast<int64_t>(task_examples[task].size());
      if (!m.scored) {
        s.notes.push_back(task + "/" + metric +
                          ": unscored (no judge is configured); the generations are in evaluate/results.h5");
        s.metrics.push_back(std::move(m));
        continue;
      }
      const auto& by_system = table[task][metric];
      std::map<std::string, std::vector<double>> values;
      for (const auto& name : s.systems) {
        auto it = by_system.find(name);
        if (it == by_system.end()) continue;
        std::vector<double> v;
        for (int64_t id : task_examples[task]) {
          auto e = it->second.find(id);
          if (e == it->second.end())
            throw FormatError(results.string() + ": " + task + "/" + metric + ": system " + name +
                              " has no score for example " + std::to_string(id));
          v.push_back(e->second);
        }
        values[name] = std::move(v);
      }
      if (m.examples == 0 || values.empty()) {
        s.notes.push_back(task + "/" + metric + ": no examples were evaluated");
        s.metrics.push_back(std::move(m));
        continue;
      }
      EstimateSettings b = settings.bootstrap;
      b.seed = derive_seed(settings.bootstrap.seed, task + "/" + metric);
      for (const auto& name : s.systems) {
        if (values.count(name)) m.systems.push_back({name, estimate_mean(values[name], b)});
      }
      if (values.count("base") && values.count("aligned")) {
        for (const auto& name : s.systems) {
          if (name.rfind("base+", 0) != 0 || !values.count(name)) continue;
          const PortionEstimate p = estimate_portion(values["base"], values["aligned"], values[name], b);
          m.portions.push_back({name, p.defined, p.value, p.ci, p.diff, p.diff_ci, p.reason});
        }
      }
      s.metrics.push_back(std::move(m));
    }
  }

  for (const char* role : {"base", "aligned"}) {
    if (!job.has_model(role)) continue;
    s.provenance[std::string("model_") + role] = job.model(role).path.string();
    if (auto c = training_curve(role, job.model(role).path)) s.training.push_back(std::move(*c));
  }

  // KL curves and token shifts, for every base+head system, from the extraction file.
  std::vector<std::pair<std::string, fs::path>> head_systems;
  for (const auto& sys : systems) {
    const std::string head = sys.at("head").get<std::string>();
    if (!head.empty())
      head_systems.emplace_back(sys.at("name").get<std::string>(), run_dir / "heads" / (head + ".safetensors"));
  }
  const fs::path logits = run_dir / "extract" / "logits.h5";
  if (head_systems.empty()) {
    s.notes.push_back("no base+head system was evaluated: no KL curves or token shifts");
  } else if (!fs::exists(logits)) {
    s.notes.push_back(logits.string() + " not found: no KL curves or token shifts");
  } else {
    const auto ds = extract::LogitDataset::open(logits);
    const fs::path base_dir = job.model("base").path;
    const torch::Tensor w = heads::load_lm_head_weight(base_dir);  // [V,H]
    const tok::Tokenizer tokenizer = tok::Tokenizer::from_file(base_dir / "tokenizer.json");
    torch::InferenceMode guard;
    for (const auto& [name, file] : head_systems) {
      const heads::Head head = heads::Head::load(file);
      s.kl.push_back(kl_curve(ds, head, w, name, settings));
      s.head_tokens.push_back(head_tokens(ds, head, tokenizer, name, settings.top_tokens));
    }
    s.notes.push_back("KL per position: aligned top-" + std::to_string(ds.top_k()) +
                      " support (renormalised) against the full-vocabulary softmax of base / base+head, recomputed "
                      "from the stored base hidden states and the base lm_head");
  }
  return s;
}

std::vector<std::string> check_summary_file(const fs::path& summary_json) {
  std::ifstream in(summary_json);
  if (!in) throw IoError(summary_json.string() + ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  const json doc = json::parse(ss.str(), nullptr, false);
  if (doc.is_discarded()) return {summary_json.string() + ": not valid JSON"};
  const fs::path schema_file = h5::schema_dir() / "summary-v1.json";
  std::ifstream sin(schema_file);
  if (!sin) throw IoError(schema_file.string() + ": cannot open schema");
  std::stringstream sss;
  sss << sin.rdbuf();
  return check_json(doc, json::parse(sss.str()));
}

void write_summary(const fs::path& run_dir, const Summary& summary) {
  const json doc = to_json(summary);
  const fs::path schema_file = h5::schema_dir() / "summary-v1.json";
  std::ifstream sin(schema_file);
  if (!sin) throw IoError(schema_file.string() + ": cannot open schema");
  std::stringstream ss;
  ss << sin.rdbuf();
  const auto problems = check_json(doc, json::parse(ss.str()));
  if (!problems.empty())
    throw FormatError("summary.json does not follow " + schema_file.string() + ": " + problems.front());
  write_atomically(run_dir / "summary.json", doc.dump(2) + "\n");
  write_atomically(run_dir / "summary.md", to_markdown(summary));
  write_atomically(run_dir / "report.html", to_html(summary));
}

}  // namespace sf::report
