#include "judge/judgments.hpp"

#include <cmath>
#include <map>
#include <set>

#include "core/error.hpp"
#include "core/files.hpp"

namespace sf::judge {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const char* const kVerdictStrings[] = {"task", "system", "judge", "metric", "label", "text", "input"};
const char* const kHeldoutStrings[] = {"task", "judge", "gold", "label"};

h5::Layout layout(const std::string& dtype) {
  h5::Layout l;
  l.dtype = dtype;
  l.chunk_rows = 256;
  return l;
}

std::vector<int64_t> ints(const h5::Group& g, const std::string& name) {
  const torch::Tensor t = g.dataset(name).read_all().to(torch::kInt64).contiguous();
  return {t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel()};
}

std::vector<double> doubles(const h5::Group& g, const std::string& name) {
  const torch::Tensor t = g.dataset(name).read_all().to(torch::kFloat64).contiguous();
  return {t.data_ptr<double>(), t.data_ptr<double>() + t.numel()};
}

json parse_attr(const json& attrs, const std::string& name, const fs::path& path) {
  if (!attrs.contains(name) || !attrs.at(name).is_string())
    throw FormatError(path.string() + ": attribute '" + name + "' is missing");
  return parse_json_text<FormatError>(attrs.at(name).get<std::string>(), path.string() + ": attribute '" + name + "'");
}

std::string fmt_accuracy(double a) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.3f", a);
  return buf;
}

}  // namespace

JudgmentsWriter::JudgmentsWriter(const fs::path& path, const json& attrs) : file_(h5::File::create(path)) {
  h5::write_attrs(file_, attrs);
  const h5::Group v = file_.create_group("verdicts");
  for (const char* n : kVerdictStrings) v.create_dataset(n, layout("string"));
  for (const char* n : {"example_id", "results_row", "label_offset", "num_labels"})
    v.create_dataset(n, layout("int64"));
  for (const char* n : {"score", "value"}) v.create_dataset(n, layout("float64"));
  const h5::Group l = file_.create_group("labels");
  l.create_dataset("name", layout("string"));
  l.create_dataset("raw", layout("float64"));
  l.create_dataset("prob", layout("float64"));
  const h5::Group h = file_.create_group("heldout");
  for (const char* n : kHeldoutStrings) h.create_dataset(n, layout("string"));
  h.create_dataset("item", layout("int64"));
  h.create_dataset("score", layout("float64"));
  h.create_dataset("correct", layout("uint8"));
}

void JudgmentsWriter::append(const std::vector<Judgment>& rows, const std::vector<HeldoutJudgment>& heldout) {
  std::map<std::string, std::vector<std::string>> str;
  std::vector<int64_t> example_id, results_row, label_offset, num_labels;
  std::vector<double> score, value, raw, prob;
  std::vector<std::string> names;
  for (const auto& r : rows) {
    if (r.raw.size() != r.label_names.size() || r.prob.size() != r.label_names.size())
      throw ShapeError(file_.path().string() + ": a verdict of judge " + r.judge + " has " +
                       std::to_string(r.raw.size()) + " values for " + std::to_string(r.label_names.size()) +
                       " labels");
    for (const auto& [name, field] : {std::pair<const char*, const std::string*>{"task", &r.task},
                                      {"system", &r.system},
                                      {"judge", &r.judge},
                                      {"metric", &r.metric},
                                      {"label", &r.label},
                                      {"text", &r.text},
                                      {"input", &r.input}})
      str[name].push_back(*field);
    example_id.push_back(r.example_id);
    results_row.push_back(r.results_row);
    label_offset.push_back(labels_);
    num_labels.push_back(static_cast<int64_t>(r.label_names.size()));
    score.push_back(r.score);
    value.push_back(r.value);
    names.insert(names.end(), r.label_names.begin(), r.label_names.end());
    raw.insert(raw.end(), r.raw.begin(), r.raw.end());
    prob.insert(prob.end(), r.prob.begin(), r.prob.end());
    labels_ += static_cast<int64_t>(r.label_names.size());
  }
  const h5::Group v = file_.group("verdicts");
  for (const auto& [name, values] : str) v.dataset(name).append_strings(values);
  v.dataset("example_id").append_values(example_id);
  v.dataset("results_row").append_values(results_row);
  v.dataset("label_offset").append_values(label_offset);
  v.dataset("num_labels").append_values(num_labels);
  v.dataset("score").append_values(score);
  v.dataset("value").append_values(value);
  const h5::Group l = file_.group("labels");
  l.dataset("name").append_strings(names);
  l.dataset("raw").append_values(raw);
  l.dataset("prob").append_values(prob);

  std::map<std::string, std::vector<std::string>> hs;
  std::vector<int64_t> item;
  std::vector<double> hscore;
  std::vector<uint8_t> correct;
  for (const auto& h : heldout) {
    hs["task"].push_back(h.task);
    hs["judge"].push_back(h.judge);
    hs["gold"].push_back(h.gold);
    hs["label"].push_back(h.label);
    item.push_back(h.item);
    hscore.push_back(h.score);
    correct.push_back(h.correct() ? 1 : 0);
  }
  const h5::Group hg = file_.group("heldout");
  for (const auto& [name, values] : hs) hg.dataset(name).append_strings(values);
  hg.dataset("item").append_values(item);
  hg.dataset("score").append_values(hscore);
  hg.dataset("correct").append_values(correct);
}

void JudgmentsWriter::close() { file_.close(); }

JudgmentsFile read_judgments(const fs::path& path) {
  const h5::File f = h5::File::open(path);
  JudgmentsFile out;
  out.attrs = h5::read_attrs(f);
  if (!out.attrs.contains("schema") || out.attrs["schema"] != "judgments")
    throw FormatError(path.string() + ": not a judgments file (attribute schema)");
  if (!out.attrs.contains("schema_version") || out.attrs["schema_version"] != kJudgmentsVersion)
    throw FormatError(path.string() + ": judgments schema version " +
                      (out.attrs.contains("schema_version") ? out.attrs["schema_version"].dump() : "?") +
                      "; this build reads version " + std::to_string(kJudgmentsVersion) +
                      " (re-run `superficial judge` with this build, or read the file with its tool_version)");
  const h5::Group v = f.group("verdicts"), l = f.group("labels"), h = f.group("heldout");
  std::map<std::string, std::vector<std::string>> s;
  for (const char* n : kVerdictStrings) s[n] = v.dataset(n).read_all_strings();
  const auto example_id = ints(v, "example_id"), results_row = ints(v, "results_row"),
             label_offset = ints(v, "label_offset"), num_labels = ints(v, "num_labels");
  const auto score = doubles(v, "score"), value = doubles(v, "value");
  const auto names = l.dataset("name").read_all_strings();
  const auto raw = doubles(l, "raw"), prob = doubles(l, "prob");
  const size_t n = s["task"].size();
  for (const auto& [name, col] : s)
    if (col.size() != n) throw FormatError(path.string() + ": verdicts/" + name + " has another length");
  for (const auto* col : {&example_id, &results_row, &label_offset, &num_labels})
    if (col->size() != n) throw FormatError(path.string() + ": a verdicts/ dataset has another length");
  if (score.size() != n || value.size() != n) throw FormatError(path.string() + ": verdicts/score or value length");
  if (raw.size() != names.size() || prob.size() != names.size())
    throw FormatError(path.string() + ": labels/* datasets differ in length");
  for (size_t i = 0; i < n; ++i) {
    const int64_t o = label_offset[i], c = num_labels[i];
    if (o < 0 || c < 0 || o > static_cast<int64_t>(names.size()) || c > static_cast<int64_t>(names.size()) - o)
      throw FormatError(path.string() + ": verdicts row " + std::to_string(i) + ": labels [" + std::to_string(o) +
                        ", +" + std::to_string(c) + ") out of bounds");
    Judgment j;
    j.task = s["task"][i];
    j.system = s["system"][i];
    j.judge = s["judge"][i];
    j.metric = s["metric"][i];
    j.label = s["label"][i];
    j.text = s["text"][i];
    j.input = s["input"][i];
    j.example_id = example_id[i];
    j.results_row = results_row[i];
    j.score = score[i];
    j.value = value[i];
    for (int64_t k = o; k < o + c; ++k) {
      const auto u = static_cast<size_t>(k);
      j.label_names.push_back(names[u]);
      j.raw.push_back(raw[u]);
      j.prob.push_back(prob[u]);
    }
    out.rows.push_back(std::move(j));
  }
  std::map<std::string, std::vector<std::string>> hs;
  for (const char* name : kHeldoutStrings) hs[name] = h.dataset(name).read_all_strings();
  const auto item = ints(h, "item");
  const auto hscore = doubles(h, "score");
  const size_t m = hs["task"].size();
  for (const auto& [name, col] : hs)
    if (col.size() != m) throw FormatError(path.string() + ": heldout/" + name + " has another length");
  if (item.size() != m || hscore.size() != m) throw FormatError(path.string() + ": heldout/* differ in length");
  for (size_t i = 0; i < m; ++i)
    out.heldout.push_back({hs["task"][i], hs["judge"][i], hs["gold"][i], hs["label"][i], item[i], hscore[i]});
  return out;
}

std::vector<std::string> check_judgments(const fs::path& path) {
  std::vector<std::string> problems;
  JudgmentsFile f;
  try {
    f = read_judgments(path);
  } catch (const Error& e) {
    return {e.what()};
  }
  json judges, metrics;
  try {
    judges = parse_attr(f.attrs, "judges", path);
    if (f.attrs.value("kind", "") == "merged") metrics = parse_attr(f.attrs, "metrics", path);
  } catch (const Error& e) {
    return {e.what()};
  }
  std::map<std::string, json> by_id;
  for (const auto& j : judges) {
    if (!j.is_object() || !j.contains("task") || !j.contains("name") || !j.contains("labels"))
      return {path.string() + ": attribute judges: every entry needs task, name and labels"};
    by_id[j["task"].get<std::string>() + "/" + j["name"].get<std::string>()] = j;
  }
  std::set<std::string> all_of_metrics;
  for (const auto& m : metrics)
    if (m.value("kind", "") == "all_of") all_of_metrics.insert(m.value("task", "") + "/" + m.value("metric", ""));
  for (size_t i = 0; i < f.rows.size(); ++i) {
    const Judgment& r = f.rows[i];
    const std::string at = path.string() + ": verdicts row " + std::to_string(i) + ": ";
    const std::string id = r.task + "/" + r.judge;
    if (!by_id.count(id)) {
      if (!all_of_metrics.count(r.task + "/" + r.metric))
        problems.push_back(at + "judge '" + r.judge + "' of task '" + r.task + "' is not in the judges attribute");
      continue;
    }
    const json labels = by_id[id]["labels"];
    if (!r.label_names.empty() && json(r.label_names) != labels)
      problems.push_back(at + "labels differ from the judge's declared labels " + labels.dump());
    double sum = 0;
    for (double p : r.prob) {
      if (!(p >= 0 && p <= 1)) problems.push_back(at + "a probability outside [0, 1]");
      sum += p;
    }
    if (!r.prob.empty() && std::fabs(sum - 1) > 1e-6) problems.push_back(at + "probabilities do not sum to 1");
  }
  for (size_t i = 0; i < f.heldout.size(); ++i) {
    if (!by_id.count(f.heldout[i].task + "/" + f.heldout[i].judge))
      problems.push_back(path.string() + ": heldout row " + std::to_string(i) + ": judge '" + f.heldout[i].judge +
                         "' is not in the judges attribute");
  }
  return problems;
}

JudgedScores read_judged_scores(const fs::path& run_dir) {
  JudgedScores out;
  const fs::path path = run_dir / "judge" / "judgments.h5";
  if (!fs::exists(path)) return out;
  out.present = true;
  const JudgmentsFile f = read_judgments(path);
  const json judges = parse_attr(f.attrs, "judges", path), metrics = parse_attr(f.attrs, "metrics", path);
  std::map<std::string, std::optional<double>> accuracy;
  std::map<std::string, std::string> described;
  for (const auto& j : judges) {
    const std::string id = j.at("task").get<std::string>() + "/" + j.at("name").get<std::string>();
    std::string d = j.at("name").get<std::string>() + " (" + j.at("kind").get<std::string>() + ", " +
                    j.at("path").get<std::string>() + "; ";
    if (j.contains("heldout") && j.at("heldout").is_object()) {
      const json& h = j.at("heldout");
      accuracy[id] = h.at("accuracy").get<double>();
      d += "held-out accuracy " + fmt_accuracy(h.at("accuracy").get<double>()) + " on " +
           std::to_string(h.at("items").get<int64_t>()) + " items)";
    } else {
      accuracy[id] = std::nullopt;
      d += "accuracy not measured: no held-out items)";
    }
    described[id] = d;
  }
  std::map<std::string, int64_t> no_match;
  for (const auto& r : f.rows) {
    const std::string id = r.task + "/" + r.judge;
    if (!std::isfinite(r.value)) {
      ++no_match[r.task + "/" + r.metric];
      continue;
    }
    auto acc = accuracy.find(id);
    out.scores.push_back({r.task, r.system, r.metric, r.example_id, r.value, r.judge,
                          acc == accuracy.end() ? std::nullopt : acc->second});
  }
  for (const auto& m : metrics) {
    JudgedMetric jm;
    jm.task = m.at("task").get<std::string>();
    jm.metric = m.at("metric").get<std::string>();
    jm.status = m.at("status").get<std::string>();
    jm.judges = m.at("judges").get<std::vector<std::string>>();
    jm.no_match = no_match[jm.task + "/" + jm.metric];
    if (jm.status == "scored") {
      jm.note = jm.task + "/" + jm.metric + ": judged by ";
      for (size_t i = 0; i < jm.judges.size(); ++i)
        jm.note += (i ? " and " : "") + described[jm.task + "/" + jm.judges[i]];
      if (jm.no_match > 0) jm.note += "; " + std::to_string(jm.no_match) + " verdicts without a number left out";
    } else {
      jm.note = m.at("note").get<std::string>();
    }
    out.metrics.push_back(std::move(jm));
  }
  return out;
}

}  // namespace sf::judge
