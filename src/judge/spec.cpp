#include "judge/spec.hpp"

#include <algorithm>
#include <regex>
#include <set>

#include "core/error.hpp"
#include "core/text.hpp"

namespace sf::judge {
namespace {

const std::set<std::string> kDtypes = {"float32", "bfloat16", "float16"};

Kind parse_kind(const ConfigNode& n) {
  const auto k = n.get<std::string>("kind");
  if (k == "label_prob") return Kind::kLabelProb;
  if (k == "generate") return Kind::kGenerate;
  if (k == "classifier") return Kind::kClassifier;
  throw ConfigError(n.where("kind") + ": expected label_prob, generate or classifier");
}

std::string node_where(const ConfigNode& n) {
  const std::string w = n.where("");
  return w.substr(0, w.size() - 1);  // "file: judges[0]" without the trailing "."
}

// The recipe keys of `n` (a task's judges[i], or a job's judges.<name> that declares a judge).
Recipe parse_recipe(const ConfigNode& n, const std::string& name) {
  Recipe r;
  r.name = name;
  r.where = node_where(n);
  r.kind = parse_kind(n);
  r.metric = n.get<std::string>("metric");
  if (r.metric.empty()) throw ConfigError(n.where("metric") + ": must not be empty");
  r.prompt = n.get<std::string>("prompt", r.kind == Kind::kClassifier ? "{answer}" : "");
  if (r.prompt.empty()) throw ConfigError(n.where("prompt") + ": required (the judge's input, with {answer})");
  prompt_fields(r.prompt, n.where("prompt"));  // well-formed braces
  r.reference_field = n.get<std::string>("reference", "");
  r.optional = n.get<bool>("optional", false);
  const std::string truncate = n.get<std::string>("truncate", "error");
  if (truncate == "answer") {
    r.truncate = InputTruncate::kAnswer;
    const std::vector<std::string> fields = prompt_fields(r.prompt, n.where("prompt"));
    if (std::find(fields.begin(), fields.end(), "answer") == fields.end())
      throw ConfigError(n.where("truncate") + ": answer needs {answer} in the prompt");
  } else if (truncate != "error") {
    throw ConfigError(n.where("truncate") + ": expected error or answer");
  }
  if (n.has("trim")) {
    const ConfigNode t = n.child("trim");
    r.trim.whitespace = t.get<bool>("whitespace", false);
    r.trim.drop_prefix = t.get<std::vector<std::string>>("drop_prefix", {});
    r.trim.cut_at = t.get<std::vector<std::string>>("cut_at", {});
    for (const auto& s : r.trim.cut_at)
      if (s.empty()) throw ConfigError(t.where("cut_at") + ": empty string");
    for (const auto& s : r.trim.drop_prefix)
      if (s.empty()) throw ConfigError(t.where("drop_prefix") + ": empty string");
  }
  if (r.kind == Kind::kGenerate) {
    r.regex = n.get<std::string>("regex");
    try {
      const std::regex re(r.regex, std::regex::ECMAScript);
      if (re.mark_count() > 1)
        throw ConfigError(n.where("regex") + ": at most one capture group (the number); use (?:...) for others");
    } catch (const std::regex_error& e) {
      throw ConfigError(n.where("regex") + ": not a valid regular expression: " + e.what());
    }
    r.max_new_tokens = n.get<int64_t>("max_new_tokens", r.max_new_tokens);
    if (r.max_new_tokens < 1) throw ConfigError(n.where("max_new_tokens") + ": must be >= 1");
    r.positive_at_least = n.get_optional<double>("positive_at_least");
  } else {
    r.labels = n.get<std::vector<std::string>>("labels");
    if (r.labels.size() < 2) throw ConfigError(n.where("labels") + ": at least two labels");
    std::set<std::string> seen;
    for (const auto& l : r.labels) {
      if (l.empty()) throw ConfigError(n.where("labels") + ": empty label");
      if (!seen.insert(l).second) throw ConfigError(n.where("labels") + ": '" + l + "' listed twice");
    }
    r.positive = n.get<std::string>("positive");
    if (!seen.count(r.positive))
      throw ConfigError(n.where("positive") + ": '" + r.positive + "' is not one of the labels");
  }
  return r;
}

}  // namespace

std::string kind_name(Kind kind) {
  switch (kind) {
    case Kind::kLabelProb:
      return "label_prob";
    case Kind::kGenerate:
      return "generate";
    case Kind::kClassifier:
      return "classifier";
  }
  return "?";
}

std::string AnswerTrim::apply(const std::string& answer) const {
  std::string a = whitespace ? trim(answer) : answer;
  for (const auto& p : drop_prefix) {
    if (a.rfind(p, 0) == 0) {
      a = a.substr(p.size());
      if (whitespace) a = trim(a);
      break;
    }
  }
  size_t cut = a.size();
  for (const auto& c : cut_at) cut = std::min(cut, a.find(c));
  return a.substr(0, cut);
}

nlohmann::json Recipe::to_json() const {
  nlohmann::json j = {
      {"name", name},
      {"kind", kind_name(kind)},
      {"metric", metric},
      {"prompt", prompt},
      {"reference", reference_field},
      {"trim", {{"whitespace", trim.whitespace}, {"drop_prefix", trim.drop_prefix}, {"cut_at", trim.cut_at}}},
      {"truncate", truncate == InputTruncate::kAnswer ? "answer" : "error"},
      {"optional", optional}};
  if (kind == Kind::kGenerate) {
    j["regex"] = regex;
    j["max_new_tokens"] = max_new_tokens;
    j["positive_at_least"] = positive_at_least ? nlohmann::json(*positive_at_least) : nlohmann::json();
  } else {
    j["labels"] = labels;
    j["positive"] = positive;
  }
  return j;
}

size_t Recipe::positive_index() const {
  return static_cast<size_t>(std::find(labels.begin(), labels.end(), positive) - labels.begin());
}

TaskJudging parse_task_judges(const std::vector<ConfigNode>& entries) {
  TaskJudging out;
  std::set<std::string> names, metrics;
  for (const auto& e : entries) {
    if (e.has("all_of")) {
      AllOf a;
      a.where = node_where(e);
      a.metric = e.get<std::string>("metric");
      a.judges = e.get<std::vector<std::string>>("all_of");
      if (a.judges.empty()) throw ConfigError(e.where("all_of") + ": list at least one judge");
      if (!metrics.insert(a.metric).second) throw ConfigError(e.where("metric") + ": '" + a.metric + "' twice");
      out.all_of.push_back(std::move(a));
      continue;
    }
    Recipe r = parse_recipe(e, e.get<std::string>("name"));
    if (!names.insert(r.name).second) throw ConfigError(e.where("name") + ": judge '" + r.name + "' declared twice");
    if (!metrics.insert(r.metric).second) throw ConfigError(e.where("metric") + ": '" + r.metric + "' twice");
    out.judges.push_back(std::move(r));
  }
  for (const auto& a : out.all_of) {
    for (const auto& j : a.judges) {
      if (!names.count(j)) throw ConfigError(a.where + ".all_of: '" + j + "' is not a judge of this task");
    }
  }
  return out;
}

nlohmann::json Binding::to_json() const {
  return {{"name", name},
          {"path", path.string()},
          {"dtype", dtype},
          {"template", template_text.empty() ? template_name : template_text},
          {"batch_size", batch_size},
          {"recipe", recipe ? recipe->to_json() : nlohmann::json()},
          {"tasks", tasks}};
}

std::map<std::string, Binding> parse_job_judges(const ConfigNode& judges) {
  std::map<std::string, Binding> out;
  for (const auto& name : judges.keys()) {
    const ConfigNode n = judges.child(name);
    Binding b;
    b.name = name;
    b.where = node_where(n);
    b.path = n.get<std::string>("path");
    b.dtype = n.get<std::string>("dtype", "float32");
    if (!kDtypes.count(b.dtype)) throw ConfigError(n.where("dtype") + ": expected float32, bfloat16 or float16");
    if (n.has("template")) {
      if (n.yaml()["template"].IsScalar()) {
        b.template_name = n.get<std::string>("template");
        b.chat_template = tok::ChatTemplate::preset(b.template_name);
      } else {
        const ConfigNode t = n.child("template");
        b.chat_template = tok::ChatTemplate::from_config(t);
        b.template_name = "custom";
        b.template_text = YAML::Dump(t.yaml());
      }
    }
    b.batch_size = n.get<int64_t>("batch_size", b.batch_size);
    if (b.batch_size < 1) throw ConfigError(n.where("batch_size") + ": must be >= 1");
    b.chunk_examples = n.get<int64_t>("chunk_examples", b.chunk_examples);
    if (b.chunk_examples < 1) throw ConfigError(n.where("chunk_examples") + ": must be >= 1");
    if (auto h = n.get_optional<std::string>("heldout")) b.heldout = *h;
    if (n.has("kind")) {
      b.recipe = parse_recipe(n, name);
      b.tasks = n.get<std::vector<std::string>>("tasks");
      if (b.tasks.empty()) throw ConfigError(n.where("tasks") + ": list the tasks this judge scores");
    } else if (n.has("tasks")) {
      throw ConfigError(n.where("tasks") + ": only for a judge the job declares itself (with kind:, metric:, ...)");
    }
    out.emplace(name, std::move(b));
  }
  judges.finish();
  return out;
}

std::vector<std::string> prompt_fields(const std::string& prompt, const std::string& where) {
  std::vector<std::string> out;
  for (size_t i = 0; i < prompt.size(); ++i) {
    const char c = prompt[i];
    if ((c == '{' || c == '}') && i + 1 < prompt.size() && prompt[i + 1] == c) {
      ++i;
    } else if (c == '{') {
      const size_t close = prompt.find('}', i);
      if (close == std::string::npos) throw ConfigError(where + ": unbalanced '{'");
      const std::string field = prompt.substr(i + 1, close - i - 1);
      if (field.empty() || field.find('{') != std::string::npos) throw ConfigError(where + ": malformed '{...}'");
      if (std::find(out.begin(), out.end(), field) == out.end()) out.push_back(field);
      i = close;
    } else if (c == '}') {
      throw ConfigError(where + ": unbalanced '}'");
    }
  }
  return out;
}

}  // namespace sf::judge
