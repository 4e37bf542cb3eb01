#pragma once
// judge/judgments.h5 (results-schema/judgments-v1): every verdict of every judge on every answer,
// the metrics of several verdicts (all_of), and each judge's verdicts on its held-out labelled
// items. Written per work unit (judge/units/<key>.h5, kind=chunk) and merged (kind=merged).
#include <cstdint>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "io/h5.hpp"

namespace sf::judge {

constexpr int64_t kJudgmentsVersion = 1;

// One row of verdicts/*: a judge's verdict on a system's answer, or an all_of metric.
struct Judgment {
  std::string task, system, judge, metric, label, text, input;
  int64_t example_id = 0;
  int64_t results_row = -1;                                 // row of evaluate/results.h5 examples/*
  double score = std::numeric_limits<double>::quiet_NaN();  // P(positive) | the extracted number
  double value = std::numeric_limits<double>::quiet_NaN();  // the metric's per-example score; NaN: none
  std::vector<std::string> label_names;                     // declared labels (label judges)
  std::vector<double> raw, prob;                            // per label
};

// One row of heldout/*: a judge's verdict on a labelled item.
struct HeldoutJudgment {
  std::string task, judge, gold, label;
  int64_t item = 0;  // line of the held-out file, from 0
  double score = std::numeric_limits<double>::quiet_NaN();
  bool correct() const { return gold == label; }
};

class JudgmentsWriter {
 public:
  JudgmentsWriter(const std::filesystem::path& path, const nlohmann::json& attrs);
  void append(const std::vector<Judgment>& rows, const std::vector<HeldoutJudgment>& heldout);
  void close();

 private:
  h5::File file_;
  int64_t labels_ = 0;
};

struct JudgmentsFile {
  nlohmann::json attrs;
  std::vector<Judgment> rows;
  std::vector<HeldoutJudgment> heldout;
};

// Reads a judgments file (chunk or merged). FormatError naming the file when its schema version is
// not this build's, or an offset or length is out of bounds.
JudgmentsFile read_judgments(const std::filesystem::path& path);

// What `superficial validate` adds to the schema check: offsets inside their datasets, judges named
// by rows declared in the `judges` attribute, labels and probabilities consistent. One line each.
std::vector<std::string> check_judgments(const std::filesystem::path& path);

// ---- For reduce ---------------------------------------------------------------------------------

// One per-example score given by a judge (or by an all_of of judges).
struct JudgedScore {
  std::string task, system, metric;
  int64_t example_id = 0;
  double value = 0;
  std::string judge;                     // the judge's name, or "a&b" for an all_of
  std::optional<double> judge_accuracy;  // the judge's held-out accuracy (none: not measured, or an all_of)
};

// Every judged metric of the run, scored or not, with a one-line description of who scored it.
struct JudgedMetric {
  std::string task, metric;
  std::string status;  // scored | unscored (declared, not bound: show "unscored") | omitted (optional: no row)
  std::vector<std::string> judges;
  std::string note;  // e.g. "toxicity by judge toxicity (label_prob, runs/demo/judges/toxicity; held-out accuracy 0.912
                     // on 134 items)"
  int64_t no_match = 0;  // answers a generate judge gave no number for (excluded from the scores)
};

struct JudgedScores {
  bool present = false;  // false: run_dir/judge/judgments.h5 does not exist (the judge stage has not run)
  std::vector<JudgedScore> scores;
  std::vector<JudgedMetric> metrics;
};

// Reads run_dir/judge/judgments.h5 for reduce: the scores with a value (verdicts without one, e.g.
// no regex match, are counted in JudgedMetric::no_match), and every judged metric.
JudgedScores read_judged_scores(const std::filesystem::path& run_dir);

}  // namespace sf::judge
