#pragma once
// The study's summary (run_dir/summary.json, schema results-schema/summary-v2.json) and its
// renderings: summary.md (tables) and report.html (tables and inline SVG charts, no scripts).
// Every label is a name from the job file: systems, models, heads and comparisons.
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "report/estimate.hpp"

namespace sf::report {

constexpr int64_t kSummarySchemaVersion = 2;

struct SystemInfo {
  std::string name;
  std::string model;
  std::string description;  // what the system is (model, head and its pair, proxy models, prefix file)
};

// One (task, metric): every evaluated system's mean with its interval.
struct MetricRow {
  std::string task;
  std::string metric;
  bool scored = true;                    // false: no judge configured ("unscored")
  std::string judge;                     // the judge whose verdicts these are ("" for rule-based metrics)
  std::optional<double> judge_accuracy;  // that judge's held-out accuracy, when known
  int64_t examples = 0;
  std::map<std::string, MeanEstimate> systems;  // by system name
};

struct PortionCell {
  std::string system;
  PortionEstimate estimate;
};

struct ComparisonRow {
  std::string task;
  std::string metric;
  double diff = 0;  // aligned − base
  Interval diff_ci;
  std::vector<PortionCell> portions;  // in the comparison's system order
};

struct ComparisonSummary {
  std::string name;
  std::string base;
  std::string aligned;
  std::vector<std::string> systems;
  std::vector<ComparisonRow> rows;
};

// Per response position j (0-based), the mean over the head's VALIDATION examples (never its
// training examples) of KL(aligned ‖ base) and KL(aligned ‖ base + head).
struct KlCurve {
  std::string head;
  std::string pair_base;
  std::string pair_aligned;
  int64_t top_k = 0;
  int64_t examples = 0;  // validation examples used
  std::vector<int64_t> count;
  std::vector<double> aligned_base;
  std::vector<double> aligned_head;
};

struct TokenShift {
  int64_t id = 0;
  std::string token;
  double mean_delta = 0;  // mean logit change the head applies to this token
};

struct HeadTokens {
  std::string head;
  std::vector<TokenShift> promoted;
  std::vector<TokenShift> demoted;
};

// The loss curve of a model that `superficial train` made (its folder's loss.csv).
struct TrainingCurve {
  std::string model;      // the job's model name
  std::string model_dir;  // the model folder
  std::string recipe;     // pretrain | sft | compromise, from train_summary.json ("" if absent)
  std::vector<int64_t> step;
  std::vector<double> loss;
};

struct Summary {
  nlohmann::json provenance = nlohmann::json::object();  // tool version, git SHA, run_dir, created
  EstimateSettings estimate;
  std::vector<SystemInfo> systems;
  std::vector<MetricRow> metrics;
  std::vector<ComparisonSummary> comparisons;
  std::vector<KlCurve> kl;
  std::vector<HeadTokens> head_tokens;
  std::vector<TrainingCurve> training;  // models of the job trained by `superficial train`
  std::vector<std::string> notes;
};

nlohmann::json to_json(const Summary& s);
std::string to_markdown(const Summary& s);
std::string to_html(const Summary& s);

}  // namespace sf::report
