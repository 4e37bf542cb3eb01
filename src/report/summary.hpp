#pragma once
// The study's summary (run_dir/summary.json, schema results-schema/summary-v1.json) and its
// renderings: summary.md (tables) and report.html (tables and inline SVG charts, no scripts).
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "report/estimate.hpp"

namespace sf::report {

constexpr int64_t kSummarySchemaVersion = 1;

struct SystemValue {
  std::string system;
  MeanEstimate estimate;
};

// The superficial portion of one base+head system on one metric.
struct PortionSummary {
  std::string system;  // base+<head>
  bool defined = false;
  double value = 0;
  Interval ci;
  double diff = 0;  // aligned − base
  Interval diff_ci;
  std::string reason;  // why n/a
};

struct MetricSummary {
  std::string task;
  std::string metric;
  bool scored = true;  // false: the metric has no judge yet ("unscored")
  int64_t examples = 0;
  std::vector<SystemValue> systems;
  std::vector<PortionSummary> portions;
};

// Per response position j (0-based), the mean over extracted examples of the top-k KL
// divergences KL(aligned ‖ base) and KL(aligned ‖ base+head).
struct KlCurve {
  std::string head_system;
  int64_t top_k = 0;
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
  std::string head_system;
  std::vector<TokenShift> promoted;
  std::vector<TokenShift> demoted;
};

// The loss curve of a model that `superficial train` made (its folder's loss.csv).
struct TrainingCurve {
  std::string role;       // job role: base, aligned
  std::string model_dir;  // the model folder
  std::string recipe;     // pretrain | sft | compromise, from train_summary.json ("" if absent)
  std::vector<int64_t> step;
  std::vector<double> loss;
};

struct Summary {
  nlohmann::json provenance = nlohmann::json::object();  // tool version, git SHA, run_dir, created
  EstimateSettings bootstrap;
  std::vector<std::string> systems;
  std::vector<MetricSummary> metrics;
  std::vector<KlCurve> kl;
  std::vector<HeadTokens> head_tokens;
  std::vector<TrainingCurve> training;  // models of the job trained by `superficial train`
  std::vector<std::string> notes;
};

nlohmann::json to_json(const Summary& s);
std::string to_markdown(const Summary& s);
std::string to_html(const Summary& s);

}  // namespace sf::report
