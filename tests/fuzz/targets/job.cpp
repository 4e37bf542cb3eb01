// Job files (format v2) with --set overrides: the text up to a line "--set" is the YAML document,
// each later line one override. Every section a stage reads is parsed and checked as `run` does
// before its first stage (models, study: heads, systems, comparisons; extract, evaluate, judges,
// reduce), without reading model files.
#include "core/job.hpp"

#include "eval/evaluate.hpp"
#include "extract/extract.hpp"
#include "fuzz/targets/targets.hpp"
#include "judge/spec.hpp"
#include "report/reduce.hpp"
#include "study/study.hpp"

namespace sf::fuzz {

void job(const uint8_t* data, size_t size) {
  const std::string input = text_of(data, size);
  std::string yaml = input;
  std::vector<std::string> overrides;
  const size_t marker = input.find("\n--set\n");
  if (marker != std::string::npos) {
    yaml = input.substr(0, marker + 1);
    size_t start = marker + 7;
    while (start <= input.size()) {
      const size_t end = std::min(input.find('\n', start), input.size());
      if (end > start) overrides.push_back(input.substr(start, end - start));
      start = end + 1;
    }
  }
  const Job j = Job::parse(yaml, "fuzz/job.yaml", overrides);
  (void)j.resolved_yaml();
  const study::Study s = study::Study::from_job(j);
  (void)eval::read_evaluate_settings(j, s);
  if (!s.pairs().empty()) (void)extract::ExtractOptions::from_job(j);
  (void)report::ReduceSettings::from_job(j);
  if (j.has_section("judges")) (void)judge::parse_job_judges(j.section("judges"));
}

}  // namespace sf::fuzz
