#include "judge/plan.hpp"

#include <algorithm>
#include <set>

#include "core/error.hpp"
#include "core/files.hpp"
#include "core/hash.hpp"
#include "heads/base_model.hpp"
#include "judge/judge.hpp"
#include "train/records.hpp"

namespace sf::judge {
namespace {

const std::set<std::string> kBuiltins = {"question", "answer", "reference"};

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

// A task's recipes after the job's own judges for it replaced those of the same metric.
struct TaskRecipes {
  std::vector<Recipe> recipes;
  std::vector<AllOf> all_of;
};

TaskRecipes recipes_for(const eval::Task& task, const std::map<std::string, Binding>& bindings) {
  TaskRecipes out;
  out.all_of = task.judging().all_of;
  std::vector<Recipe> from_job;
  for (const auto& [name, b] : bindings) {
    if (b.recipe && std::find(b.tasks.begin(), b.tasks.end(), task.name()) != b.tasks.end())
      from_job.push_back(*b.recipe);
  }
  for (const auto& r : task.judging().judges) {
    const bool replaced =
        std::any_of(from_job.begin(), from_job.end(), [&](const Recipe& j) { return j.metric == r.metric; });
    if (replaced) continue;
    for (const auto& j : from_job) {
      if (j.name == r.name)
        throw ConfigError(j.where + ": judge '" + j.name + "' is also declared by " + r.where +
                          " with another metric; give the job's judge another name");
    }
    out.recipes.push_back(r);
  }
  for (const auto& j : from_job) out.recipes.push_back(j);
  for (const auto& a : out.all_of) {
    for (const auto& name : a.judges) {
      const bool known =
          std::any_of(out.recipes.begin(), out.recipes.end(), [&](const Recipe& r) { return r.name == name; });
      if (!known)
        throw ConfigError(a.where + ".all_of: judge '" + name + "' was replaced by the job's judge of its metric; " +
                          "declare the metric of several judges in the job's task file instead");
    }
  }
  return out;
}

// Every field of the prompt is a built-in or present in every row.
void check_fields(const Recipe& r, const std::string& task, const std::vector<eval::Example>& rows,
                  const std::string& rows_name) {
  for (const auto& f : prompt_fields(r.prompt, r.where + ".prompt")) {
    if (f == "reference" && r.reference_field.empty())
      throw ConfigError(r.where + ".prompt: {reference} needs `reference: <task field>`");
    std::vector<std::string> need;
    if (!kBuiltins.count(f)) need.push_back(f);
    if (f == "reference") need.push_back(r.reference_field);
    for (const auto& field : need) {
      for (const auto& ex : rows) {
        if (ex.fields.count(field)) continue;
        std::vector<std::string> have;
        for (const auto& [k, v] : ex.fields) have.push_back(k);
        throw ConfigError(r.where + ".prompt: field '" + field + "' is not in the rows of task '" + task + "' (" +
                          rows_name + " row " + std::to_string(ex.id) + " has: " + join(have) +
                          "; built in: question, answer, reference)");
      }
    }
  }
}

std::vector<std::map<std::string, std::string>> read_heldout(const ActiveJudge& j) {
  const std::filesystem::path file = *j.binding.heldout;
  const std::string where = j.binding.where + ".heldout: " + file.string();
  std::vector<std::map<std::string, std::string>> rows = eval::read_jsonl(file);
  if (rows.empty()) throw ConfigError(where + ": no labelled row");
  const Recipe& r = j.recipe;
  std::set<std::string> golds;
  if (r.kind == Kind::kGenerate) {
    if (!r.positive_at_least)
      throw ConfigError(where + ": a generate judge's accuracy needs positive_at_least (labels positive, negative)");
    golds = {"positive", "negative"};
  } else {
    golds = std::set<std::string>(r.labels.begin(), r.labels.end());
  }
  const auto fields = prompt_fields(r.prompt, r.where + ".prompt");
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& row = rows[i];
    const std::string at = file.string() + ": line " + std::to_string(i + 1);
    auto label = row.find("label");
    if (label == row.end()) throw ConfigError(at + ": no \"label\"");
    if (!golds.count(label->second))
      throw ConfigError(at + ": label " + nlohmann::json(label->second).dump() + " is not one of the judge's labels");
    for (const auto& f : fields) {
      if (!row.count(f))
        throw ConfigError(at + ": field '" + f + "' of judge '" + r.name + "' (" + r.where + ".prompt) is missing");
    }
  }
  return rows;
}

}  // namespace

nlohmann::json Plan::to_json() const {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& m : metrics)
    out.push_back({{"task", m.task},
                   {"metric", m.metric},
                   {"kind", m.kind},
                   {"judges", m.judges},
                   {"status", m.status},
                   {"note", m.note}});
  return out;
}

std::map<std::string, std::string> judge_fields(const Recipe& recipe, const std::map<std::string, std::string>& row,
                                                const std::string& question, const std::string& answer) {
  std::map<std::string, std::string> f = row;
  f["question"] = question;
  f["answer"] = recipe.trim.apply(answer);
  if (!recipe.reference_field.empty()) {
    auto it = row.find(recipe.reference_field);
    if (it == row.end())
      throw ConfigError(recipe.where + ".reference: field '" + recipe.reference_field + "' is missing in a row");
    f["reference"] = it->second;
  }
  return f;
}

std::string fill_prompt(const Recipe& recipe, const std::map<std::string, std::string>& fields) {
  return train::render_format(recipe.prompt, fields, recipe.where + ".prompt");
}

Plan make_plan(const std::vector<eval::Task>& tasks, const std::vector<std::vector<eval::Example>>& examples,
               const std::map<std::string, Binding>& bindings) {
  Plan plan;
  std::set<std::string> used;
  for (const auto& [name, b] : bindings) {
    if (!b.recipe) continue;
    used.insert(name);
    for (const auto& t : b.tasks) {
      if (std::none_of(tasks.begin(), tasks.end(), [&](const eval::Task& x) { return x.name() == t; }))
        throw ConfigError(b.where + ".tasks: '" + t + "' is not one of the evaluated tasks");
    }
  }
  for (size_t ti = 0; ti < tasks.size(); ++ti) {
    const eval::Task& task = tasks[ti];
    const TaskRecipes tr = recipes_for(task, bindings);
    std::map<std::string, std::string> status;  // judge name -> scored | unscored | omitted
    for (const auto& r : tr.recipes) {
      PlannedMetric m{task.name(), r.metric, "judge", {r.name}, "scored", ""};
      auto b = bindings.find(r.name);
      if (b == bindings.end()) {
        m.status = r.optional ? "omitted" : "unscored";
        m.note = task.name() + "/" + r.metric + ": " + m.status + ": judge '" + r.name + "' (" + kind_name(r.kind) +
                 ", " + r.where + ") is not bound to a model in the job (judges." + r.name + ": {path: ...})";
      } else {
        used.insert(r.name);
        if (!task.generates())
          throw ConfigError(r.where + ": task '" + task.name() + "' is multiple choice: it has no answers to judge");
        check_fields(r, task.name(), examples[ti], task.data(eval::Split::kTest).file);
        preflight(r, b->second);
        ActiveJudge j;
        j.task = task.name();
        j.recipe = r;
        j.binding = b->second;
        j.model_fingerprint = heads::model_fingerprint(j.binding.path);
        j.tokenizer_fingerprint = heads::tokenizer_fingerprint(j.binding.path);
        j.fingerprint = sha256_hex(nlohmann::json({{"recipe", r.to_json()},
                                                   {"binding", j.binding.to_json()},
                                                   {"model", j.model_fingerprint},
                                                   {"tokenizer", j.tokenizer_fingerprint}})
                                       .dump());
        if (j.binding.heldout) {
          j.heldout = read_heldout(j);
          j.heldout_sha256 = sha256_file(*j.binding.heldout);
        }
        plan.judges.push_back(std::move(j));
      }
      status[r.name] = m.status;
      plan.metrics.push_back(std::move(m));
    }
    for (const auto& a : tr.all_of) {
      PlannedMetric m{task.name(), a.metric, "all_of", a.judges, "scored", ""};
      for (const auto& name : a.judges) {
        const auto& r =
            *std::find_if(tr.recipes.begin(), tr.recipes.end(), [&](const Recipe& x) { return x.name == name; });
        if (r.kind == Kind::kGenerate && !r.positive_at_least)
          throw ConfigError(a.where + ".all_of: judge '" + name + "' gives numbers; set its positive_at_least");
        if (status[name] == "unscored" || (status[name] == "omitted" && m.status == "scored")) m.status = status[name];
      }
      if (m.status != "scored")
        m.note = task.name() + "/" + a.metric + ": " + m.status + ": needs the verdicts of " + join(a.judges) +
                 ", not all bound to a model in the job";
      plan.metrics.push_back(std::move(m));
    }
  }
  for (const auto& [name, b] : bindings) {
    if (!used.count(name))
      throw ConfigError(b.where + ": no evaluated task declares a judge '" + name +
                        "' (declare it in a task file, or give the job's entry kind:, metric:, tasks:, ...)");
  }
  return plan;
}

}  // namespace sf::judge
