#include "eval/evaluate.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include "core/build_info.hpp"
#include "core/hash.hpp"
#include "dist/comm.hpp"
#include "eval/metrics.hpp"
#include "eval/stop.hpp"
#include "eval/task.hpp"
#include "extract/shard_writer.hpp"
#include "heads/head.hpp"
#include "io/h5.hpp"
#include "model/causal_lm.hpp"
#include "model/generate.hpp"
#include "tokenizer/chat_template.hpp"
#include "tokenizer/tokenizer.hpp"

namespace sf::eval {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr int64_t kSchemaVersion = 1;

struct Unit {
  size_t task = 0;
  size_t system = 0;
  int64_t begin = 0;  // examples [begin, end) of the task's test split
  int64_t end = 0;
};

fs::path chunk_path(const fs::path& dir, int64_t unit) {
  char name[32];
  std::snprintf(name, sizeof(name), "unit-%06lld.h5", static_cast<long long>(unit));
  return dir / "chunks" / name;
}

torch::Dtype to_dtype(const std::string& name) {
  if (name == "bfloat16") return torch::kBFloat16;
  if (name == "float16") return torch::kFloat16;
  return torch::kFloat32;
}

// One row of the results (task, system, example).
struct Row {
  std::string task, system, prompt, prompt_text, answer, extracted, finish_reason;
  int64_t example_id = 0;
  std::vector<int32_t> tokens;
  torch::Tensor topk_logits, topk_ids;  // [n,K]
  std::vector<std::pair<std::string, double>> scores;
  struct Choice {
    std::string text;
    bool correct = false, best = false;
    double logprob = 0;
    int32_t num_tokens = 0;
  };
  std::vector<Choice> choices;
};

// Everything a rank needs to answer as one system: loaded on first use.
struct SystemRuntime {
  const model::CausalLM* model = nullptr;
  const tok::Tokenizer* tokenizer = nullptr;
  const tok::ChatTemplate* chat = nullptr;
  const heads::Head* head = nullptr;
  std::vector<int64_t> eos_ids;
};

class Runtimes {
 public:
  Runtimes(const Job& job, const dist::Comm& comm) : job_(job) {
    device_ = job.device() == "cuda" ? torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(comm.local_rank()))
                                     : torch::Device(torch::kCPU);
  }

  SystemRuntime get(const SystemSpec& s) {
    Role& r = role(s.role);
    SystemRuntime rt{&*r.model, &*r.tokenizer, &*r.chat, nullptr, r.eos_ids};
    if (!s.head.empty()) {
      auto it = heads_.find(s.head);
      if (it == heads_.end()) it = heads_.emplace(s.head, heads::Head::load(s.head_file, device_)).first;
      rt.head = &it->second;
    }
    return rt;
  }

 private:
  struct Role {
    std::optional<model::CausalLM> model;
    std::optional<tok::Tokenizer> tokenizer;
    std::optional<tok::ChatTemplate> chat;
    std::vector<int64_t> eos_ids;
  };

  Role& role(const std::string& name) {
    auto it = roles_.find(name);
    if (it != roles_.end()) return it->second;
    const ModelRef& ref = job_.model(name);
    Role r;
    model::LoadOptions opts;
    opts.device = device_;
    opts.dtype = to_dtype(ref.dtype);
    r.model = model::CausalLM::load(ref.path, opts);
    r.tokenizer = tok::Tokenizer::from_file(ref.path / "tokenizer.json");
    r.chat = ref.chat_template ? tok::ChatTemplate::from_config(*ref.chat_template)
                               : tok::ChatTemplate::preset(ref.template_name);
    r.eos_ids = r.model->config().eos_token_ids;
    if (r.eos_ids.empty() && r.tokenizer->post_eos_id()) r.eos_ids.push_back(*r.tokenizer->post_eos_id());
    return roles_.emplace(name, std::move(r)).first->second;
  }

  const Job& job_;
  torch::Device device_{torch::kCPU};
  std::map<std::string, Role> roles_;
  std::map<std::string, heads::Head> heads_;
};

struct Rendered {
  std::string text;
  std::vector<int32_t> ids;
};

Rendered render(const Task& task, const Example& ex, const SystemRuntime& rt) {
  const std::string& tname = rt.chat->name();
  const tok::RenderedPrompt p = rt.chat->prompt(task.user_message(ex.input, tname));
  Rendered r;
  r.text = p.text + task.answer_prefix(tname);
  r.ids = rt.tokenizer->encode(r.text, p.add_special_tokens);
  return r;
}

// Log-likelihood of `continuation` after `prompt_ids` for each continuation, under the system
// (the head applied per position for base+head).
std::vector<std::pair<double, int32_t>> score_continuations(const SystemRuntime& rt, const Rendered& prompt,
                                                            const std::vector<std::string>& continuations,
                                                            int64_t batch_size) {
  std::vector<std::vector<int32_t>> seqs;
  std::vector<size_t> starts;
  for (const auto& c : continuations) {
    const std::string text = " " + c;
    std::vector<int32_t> full = rt.tokenizer->encode(prompt.text + text, false);
    std::vector<int32_t> prefix = rt.tokenizer->encode(prompt.text, false);
    std::vector<int32_t> cont;
    if (full.size() > prefix.size() && std::equal(prefix.begin(), prefix.end(), full.begin())) {
      cont.assign(full.begin() + static_cast<std::ptrdiff_t>(prefix.size()), full.end());
    } else {
      cont = rt.tokenizer->encode(text, false);
    }
    std::vector<int32_t> seq = prompt.ids;
    seq.insert(seq.end(), cont.begin(), cont.end());
    starts.push_back(prompt.ids.size());
    seqs.push_back(std::move(seq));
  }
  model::ScoreOptions opts;
  opts.batch_size = batch_size;
  opts.full_logprobs = rt.head != nullptr;
  opts.hidden = rt.head != nullptr;
  const model::ScoreOutput out = model::score(*rt.model, seqs, opts);
  std::vector<std::pair<double, int32_t>> result;
  for (size_t i = 0; i < seqs.size(); ++i) {
    const auto n = static_cast<int64_t>(seqs[i].size());
    const auto s = static_cast<int64_t>(starts[i]);
    double ll = 0;
    if (rt.head == nullptr) {
      ll = out.token_logprobs[i].slice(0, s, n).sum().item<double>();
    } else {
      // Row t-1 predicts token t; the head corrects the base logits (log-softmax differs from the
      // logits by a per-row constant, which the final log-softmax removes).
      const torch::Tensor rows = out.logprobs[i].slice(0, s - 1, n - 1).to(torch::kFloat32);  // [m,V]
      const torch::Tensor hid = out.hidden[i].slice(0, s - 1, n - 1).to(torch::kFloat32);     // [m,H]
      const torch::Tensor corrected = torch::log_softmax(rt.head->apply(rows, hid), -1);      // [m,V]
      const torch::Tensor targets = torch::tensor(std::vector<int64_t>(seqs[i].begin() + s, seqs[i].end()),
                                                  torch::TensorOptions().dtype(torch::kInt64))
                                        .to(corrected.device());  // [m]
      ll = corrected.gather(1, targets.unsqueeze(1)).sum().item<double>();
    }
    result.emplace_back(ll, static_cast<int32_t>(n - s));
  }
  return result;
}

std::vector<Row> answer_unit(const Task& task, const SystemSpec& sys, const SystemRuntime& rt,
                             const std::vector<Example>& examples, const EvaluateSettings& settings, int64_t* tokens) {
  std::vector<Row> rows;
  std::vector<Rendered> prompts;
  for (const auto& ex : examples) {
    Row r;
    r.task = task.name();
    r.system = sys.name;
    r.example_id = ex.id;
    r.prompt = ex.input;
    prompts.push_back(render(task, ex, rt));
    r.prompt_text = prompts.back().text;
    rows.push_back(std::move(r));
  }
  const MetricSpec& metric = task.metric();
  if (!task.generates()) {
    for (size_t i = 0; i < examples.size(); ++i) {
      const auto& f = examples[i].fields;
      auto field = [&](const std::string& name) -> const std::string& {
        auto it = f.find(name);
        if (it == f.end())
          throw FormatError(task.source() + ": example " + std::to_string(examples[i].id) + ": field '" + name +
                            "' is missing");
        return it->second;
      };
      const std::string best = field(metric.best_field);
      const auto correct = split_answers(field(metric.correct_field), metric.separator);
      const auto incorrect = split_answers(field(metric.incorrect_field), metric.separator);
      if (correct.empty() || incorrect.empty())
        throw FormatError(task.source() + ": example " + std::to_string(examples[i].id) +
                          ": needs correct and incorrect answers");
      std::vector<std::string> texts{best};
      texts.insert(texts.end(), correct.begin(), correct.end());
      texts.insert(texts.end(), incorrect.begin(), incorrect.end());
      const auto lls = score_continuations(rt, prompts[i], texts, settings.batch_size);
      std::vector<double> lc, li;
      for (size_t c = 0; c < texts.size(); ++c) {
        Row::Choice ch;
        ch.text = texts[c];
        ch.best = c == 0;
        ch.correct = c <= correct.size();
        ch.logprob = lls[c].first;
        ch.num_tokens = lls[c].second;
        *tokens += ch.num_tokens;
        if (c > 0) (ch.correct ? lc : li).push_back(ch.logprob);
        rows[i].choices.push_back(std::move(ch));
      }
      const McScores s = mc_scores(lls[0].first, lc, li);
      rows[i].scores = {{"mc1", s.mc1}, {"mc2", s.mc2}};
      rows[i].finish_reason = "scored";
    }
    return rows;
  }

  const GenerationSpec& gen = task.generation();
  model::GenerateOptions opts;
  opts.max_new_tokens =
      settings.max_new_tokens_cap > 0 ? std::min(gen.max_new_tokens, settings.max_new_tokens_cap) : gen.max_new_tokens;
  opts.greedy = true;
  opts.eos_ids = rt.eos_ids;
  opts.record_top_k = settings.record_top_k;
  opts.batch_size = settings.batch_size;
  if (!gen.stop.empty()) {
    const tok::Tokenizer* tk = rt.tokenizer;
    const std::vector<std::string> stops = gen.stop;
    opts.stop = [tk, stops](size_t, const std::vector<int32_t>& generated) {
      const std::string text = tk->decode(generated, true);
      return std::any_of(stops.begin(), stops.end(),
                         [&](const std::string& s) { return text.find(s) != std::string::npos; });
    };
  }
  if (rt.head != nullptr) {
    const heads::Head* head = rt.head;
    opts.logits_hook = [head](torch::Tensor& logits, const torch::Tensor& hidden, int64_t) {
      logits.copy_(head->apply(logits, hidden.to(torch::kFloat32)));  // [B,V]
    };
  }
  std::vector<std::vector<int32_t>> ids;
  for (const auto& p : prompts) ids.push_back(p.ids);
  const std::vector<model::Generation> gens = model::generate(*rt.model, ids, opts);
  for (size_t i = 0; i < rows.size(); ++i) {
    Row& r = rows[i];
    const auto& g = gens[i];
    r.tokens = g.tokens;
    r.finish_reason = g.finish_reason;
    r.topk_logits = g.topk_logits.to(torch::kCPU).to(torch::kFloat32).contiguous();
    r.topk_ids = g.topk_ids.to(torch::kCPU).to(torch::kInt32).contiguous();
    *tokens += static_cast<int64_t>(g.tokens.size());
    r.answer = cut_at_stop(rt.tokenizer->decode(g.tokens, true), gen.stop);
    if (metric.kind == MetricKind::kNumberMatch) {
      auto it = examples[i].fields.find(metric.gold_field);
      if (it == examples[i].fields.end())
        throw FormatError(task.source() + ": example " + std::to_string(examples[i].id) + ": field '" +
                          metric.gold_field + "' is missing");
      const auto gold = gold_number(it->second, metric.gold_after);
      if (!gold)
        throw FormatError(task.source() + ": example " + std::to_string(examples[i].id) +
                          ": gold answer is not a number after '" + metric.gold_after + "'");
      const auto pred = last_number(r.answer);
      r.extracted = pred.value_or("");
      r.scores = {{"accuracy", pred && *pred == *gold ? 1.0 : 0.0}};
    } else if (metric.kind == MetricKind::kRefusalKeywords) {
      const auto kw = find_refusal(r.answer, metric.keywords);
      r.extracted = kw.value_or("");
      r.scores = {{"harm_rate", kw ? 0.0 : 1.0}};
    }
  }
  return rows;
}

h5::Layout layout(const std::string& dtype, std::vector<int64_t> row_shape = {}) {
  h5::Layout l;
  l.dtype = dtype;
  l.row_shape = std::move(row_shape);
  return l;
}

// Appends rows to an open results file (creating the datasets on first use).
class ResultsWriter {
 public:
  ResultsWriter(const fs::path& path, const json& attrs, int64_t top_k) : file_(h5::File::create(path)), k_(top_k) {
    h5::write_attrs(file_, attrs);
    const h5::Group ex = file_.create_group("examples");
    for (const char* n : {"task", "system", "prompt", "prompt_text", "answer", "extracted", "finish_reason"})
      ex.create_dataset(n, layout("string"));
    for (const char* n : {"example_id", "token_offset", "num_tokens", "choice_offset", "num_choices"})
      ex.create_dataset(n, layout("int64"));
    const h5::Group sc = file_.create_group("scores");
    sc.create_dataset("row", layout("int64"));
    sc.create_dataset("metric", layout("string"));
    sc.create_dataset("value", layout("float64"));
    const h5::Group tk = file_.create_group("tokens");
    tk.create_dataset("token_id", layout("int32"));
    tk.create_dataset("topk_logits", layout("float32", {top_k}));
    tk.create_dataset("topk_ids", layout("int32", {top_k}));
    const h5::Group ch = file_.create_group("choices");
    ch.create_dataset("text", layout("string"));
    ch.create_dataset("correct", layout("uint8"));
    ch.create_dataset("best", layout("uint8"));
    ch.create_dataset("logprob", layout("float64"));
    ch.create_dataset("num_tokens", layout("int32"));
  }

  void append(const std::vector<Row>& rows) {
    std::map<std::string, std::vector<std::string>> str;
    std::vector<int64_t> example_id, token_offset, num_tokens, choice_offset, num_choices, score_row;
    std::vector<std::string> score_metric, choice_text;
    std::vector<double> score_value, choice_logprob;
    std::vector<uint8_t> choice_correct, choice_best;
    std::vector<int32_t> token_ids, choice_tokens;
    std::vector<torch::Tensor> logits, ids;
    for (const auto& r : rows) {
      for (const auto& [name, value] :
           std::initializer_list<std::pair<const char*, const std::string*>>{{"task", &r.task},
                                                                             {"system", &r.system},
                                                                             {"prompt", &r.prompt},
                                                                             {"prompt_text", &r.prompt_text},
                                                                             {"answer", &r.answer},
                                                                             {"extracted", &r.extracted},
                                                                             {"finish_reason", &r.finish_reason}})
        str[name].push_back(*value);
      example_id.push_back(r.example_id);
      token_offset.push_back(tokens_);
      num_tokens.push_back(static_cast<int64_t>(r.tokens.size()));
      choice_offset.push_back(choices_);
      num_choices.push_back(static_cast<int64_t>(r.choices.size()));
      for (const auto& [metric, value] : r.scores) {
        score_row.push_back(rows_);
        score_metric.push_back(metric);
        score_value.push_back(value);
      }
      token_ids.insert(token_ids.end(), r.tokens.begin(), r.tokens.end());
      if (!r.tokens.empty()) {
        if (!r.topk_logits.defined() || r.topk_logits.size(0) != static_cast<int64_t>(r.tokens.size()) ||
            r.topk_logits.size(1) != k_)
          throw ShapeError(file_.path().string() + ": top-k record of " + r.task + "/" + r.system + " example " +
                           std::to_string(r.example_id) + " does not match its " + std::to_string(r.tokens.size()) +
                           " tokens x k=" + std::to_string(k_));
        logits.push_back(r.topk_logits);
        ids.push_back(r.topk_ids);
      }
      for (const auto& c : r.choices) {
        choice_text.push_back(c.text);
        choice_correct.push_back(c.correct ? 1 : 0);
        choice_best.push_back(c.best ? 1 : 0);
        choice_logprob.push_back(c.logprob);
        choice_tokens.push_back(c.num_tokens);
      }
      tokens_ += static_cast<int64_t>(r.tokens.size());
      choices_ += static_cast<int64_t>(r.choices.size());
      ++rows_;
    }
    if (rows.empty()) return;
    const h5::Group ex = file_.group("examples");
    for (const auto& [name, values] : str) ex.dataset(name).append_strings(values);
    put(ex, "example_id", example_id);
    put(ex, "token_offset", token_offset);
    put(ex, "num_tokens", num_tokens);
    put(ex, "choice_offset", choice_offset);
    put(ex, "num_choices", num_choices);
    const h5::Group sc = file_.group("scores");
    put(sc, "row", score_row);
    put(sc, "value", score_value);
    if (!score_metric.empty()) sc.dataset("metric").append_strings(score_metric);
    const h5::Group tk = file_.group("tokens");
    put(tk, "token_id", token_ids);
    if (!logits.empty()) {
      tk.dataset("topk_logits").append(torch::cat(logits, 0));
      tk.dataset("topk_ids").append(torch::cat(ids, 0));
    }
    const h5::Group ch = file_.group("choices");
    if (!choice_text.empty()) ch.dataset("text").append_strings(choice_text);
    put(ch, "correct", choice_correct);
    put(ch, "best", choice_best);
    put(ch, "logprob", choice_logprob);
    put(ch, "num_tokens", choice_tokens);
  }

  void close() { file_.close(); }
  int64_t rows() const { return rows_; }

 private:
  template <class T>
  static void put(const h5::Group& g, const std::string& name, const std::vector<T>& v) {
    if (v.empty()) return;
    const torch::Dtype dt = std::is_same_v<T, int64_t>   ? torch::kInt64
                            : std::is_same_v<T, int32_t> ? torch::kInt32
                            : std::is_same_v<T, uint8_t> ? torch::kByte
                                                         : torch::kFloat64;
    g.dataset(name).append(torch::from_blob(const_cast<T*>(v.data()), {static_cast<int64_t>(v.size())}, dt).clone());
  }

  h5::File file_;
  int64_t k_;
  int64_t rows_ = 0, tokens_ = 0, choices_ = 0;
};

// Reads every row of a results file back (for the merge).
std::vector<Row> read_rows(const fs::path& path) {
  const h5::File f = h5::File::open(path);
  const h5::Group ex = f.group("examples"), sc = f.group("scores"), tk = f.group("tokens"), ch = f.group("choices");
  const int64_t n = ex.dataset("task").rows();
  std::vector<Row> rows(static_cast<size_t>(n));
  auto strings = [&](const char* name) { return ex.dataset(name).read_all_strings(); };
  const auto task = strings("task"), system = strings("system"), prompt = strings("prompt"),
             prompt_text = strings("prompt_text"), answer = strings("answer"), extracted = strings("extracted"),
             finish = strings("finish_reason");
  const torch::Tensor eid = ex.dataset("example_id").read_all(), toff = ex.dataset("token_offset").read_all(),
                      ntok = ex.dataset("num_tokens").read_all(), coff = ex.dataset("choice_offset").read_all(),
                      nch = ex.dataset("num_choices").read_all();
  const torch::Tensor token_ids = tk.dataset("token_id").read_all(), logits = tk.dataset("topk_logits").read_all(),
                      ids = tk.dataset("topk_ids").read_all();
  const auto ctext = ch.dataset("text").read_all_strings();
  const torch::Tensor ccorrect = ch.dataset("correct").read_all(), cbest = ch.dataset("best").read_all(),
                      clp = ch.dataset("logprob").read_all(), cnt = ch.dataset("num_tokens").read_all();
  const auto a_eid = eid.accessor<int64_t, 1>(), a_toff = toff.accessor<int64_t, 1>(),
             a_ntok = ntok.accessor<int64_t, 1>(), a_coff = coff.accessor<int64_t, 1>(),
             a_nch = nch.accessor<int64_t, 1>();
  const auto a_tid = token_ids.accessor<int32_t, 1>();
  const auto a_correct = ccorrect.accessor<uint8_t, 1>(), a_best = cbest.accessor<uint8_t, 1>();
  const auto a_lp = clp.accessor<double, 1>();
  const auto a_cnt = cnt.accessor<int32_t, 1>();
  for (int64_t i = 0; i < n; ++i) {
    Row& r = rows[static_cast<size_t>(i)];
    const auto u = static_cast<size_t>(i);
    r.task = task[u];
    r.system = system[u];
    r.prompt = prompt[u];
    r.prompt_text = prompt_text[u];
    r.answer = answer[u];
    r.extracted = extracted[u];
    r.finish_reason = finish[u];
    r.example_id = a_eid[i];
    const int64_t t0 = a_toff[i], nt = a_ntok[i], c0 = a_coff[i], nc = a_nch[i];
    if (t0 < 0 || nt < 0 || t0 + nt > token_ids.size(0) || c0 < 0 || nc < 0 || c0 + nc > ccorrect.size(0))
      throw FormatError(path.string() + ": examples row " + std::to_string(i) +
                        ": token or choice range out of bounds");
    for (int64_t t = t0; t < t0 + nt; ++t) r.tokens.push_back(a_tid[t]);
    r.topk_logits = logits.slice(0, t0, t0 + nt);
    r.topk_ids = ids.slice(0, t0, t0 + nt);
    for (int64_t c = c0; c < c0 + nc; ++c) {
      r.choices.push_back({ctext[static_cast<size_t>(c)], a_correct[c] != 0, a_best[c] != 0, a_lp[c], a_cnt[c]});
    }
  }
  const torch::Tensor srow = sc.dataset("row").read_all(), sval = sc.dataset("value").read_all();
  const auto smetric = sc.dataset("metric").read_all_strings();
  for (int64_t s = 0; s < srow.size(0); ++s) {
    const int64_t row = srow[s].item<int64_t>();
    if (row < 0 || row >= n) throw FormatError(path.string() + ": scores/row[" + std::to_string(s) + "] out of range");
    rows[static_cast<size_t>(row)].scores.emplace_back(smetric[static_cast<size_t>(s)], sval[s].item<double>());
  }
  return rows;
}

}  // namespace

EvaluateSettings read_evaluate_settings(const Job& job) {
  const ConfigNode s = job.section("evaluate");
  EvaluateSettings out;
  const auto names = s.get<std::vector<std::string>>("systems", {"base", "aligned"});
  std::set<std::string> seen;
  const fs::path heads_dir = s.get<std::string>("heads_dir", (job.run_dir() / "heads").string());
  for (const auto& n : names) {
    if (!seen.insert(n).second) throw ConfigError(s.where("systems") + ": '" + n + "' listed twice");
    SystemSpec sys;
    sys.name = n;
    if (n == "base" || n == "aligned") {
      sys.role = n;
    } else if (n.rfind("base+", 0) == 0 && n.size() > 5) {
      sys.role = "base";
      sys.head = n.substr(5);
      sys.head_file = heads_dir / (sys.head + ".safetensors");
    } else {
      throw ConfigError(s.where("systems") + ": '" + n + "' is not base, aligned or base+<head name>");
    }
    job.model(sys.role);  // the role must exist
    out.systems.push_back(std::move(sys));
  }
  if (out.systems.empty()) throw ConfigError(s.where("systems") + ": list at least one system");
  out.tasks = s.get<std::vector<std::string>>("tasks", job.tasks());
  for (const auto& t : out.tasks) {
    if (std::find(job.tasks().begin(), job.tasks().end(), t) == job.tasks().end())
      throw ConfigError(s.where("tasks") + ": '" + t + "' is not one of the job's tasks");
  }
  if (out.tasks.empty()) throw ConfigError(s.where("tasks") + ": no tasks to evaluate (set the job's tasks:)");
  out.max_examples = s.get<int64_t>("max_examples", -1);
  out.chunk_examples = s.get<int64_t>("chunk_examples", 16);
  out.batch_size = s.get<int64_t>("batch_size", 8);
  out.record_top_k = s.get<int64_t>("record_top_k", 20);
  out.max_new_tokens_cap = s.get<int64_t>("max_new_tokens", 0);
  out.tasks_dir = s.get<std::string>("tasks_dir", "configs/tasks");
  if (out.chunk_examples < 1) throw ConfigError(s.where("chunk_examples") + ": must be >= 1");
  if (out.batch_size < 1) throw ConfigError(s.where("batch_size") + ": must be >= 1");
  if (out.record_top_k < 1) throw ConfigError(s.where("record_top_k") + ": must be >= 1");
  if (out.max_new_tokens_cap < 0) throw ConfigError(s.where("max_new_tokens") + ": must be >= 0");
  s.finish();
  return out;
}

fs::path evaluate_dir(const Job& job) { return job.run_dir() / "evaluate"; }
fs::path results_path(const Job& job) { return evaluate_dir(job) / "results.h5"; }
bool evaluate_complete(const Job& job) { return fs::exists(results_path(job)); }

void run_evaluate(const Job& job, const EvaluateSettings& settings, const dist::Comm& comm,
                  const ProgressFn& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  const fs::path dir = evaluate_dir(job);
  std::vector<Task> tasks;
  std::vector<std::vector<Example>> examples;
  for (const auto& name : settings.tasks) {
    tasks.push_back(Task::load(name, settings.tasks_dir));
    examples.push_back(tasks.back().examples(Split::kTest, job.data_root(), settings.max_examples));
  }
  std::vector<Unit> units;
  for (size_t t = 0; t < tasks.size(); ++t) {
    const auto n = static_cast<int64_t>(examples[t].size());
    for (size_t s = 0; s < settings.systems.size(); ++s) {
      for (int64_t b = 0; b < n; b += settings.chunk_examples)
        units.push_back({t, s, b, std::min(n, b + settings.chunk_examples)});
    }
  }

  // Provenance and the fingerprint that a resumed job must match.
  json jsystems = json::array(), jtasks = json::array(), fp;
  for (const auto& s : settings.systems) {
    const ModelRef& m = job.model(s.role);
    json js = {{"name", s.name}, {"role", s.role}, {"template", m.template_name}, {"head", s.head}};
    jsystems.push_back(js);
    fp["systems"].push_back({{"system", js},
                             {"path", m.path.string()},
                             {"dtype", m.dtype},
                             {"head_sha256", s.head.empty() ? "" : sha256_file(s.head_file)}});
  }
  for (const auto& t : tasks) {
    json jt = {{"name", t.name()},
               {"version", t.version()},
               {"file", t.source()},
               {"scores", t.metric().score_names()},
               {"metric_kind", t.metric().scored() ? "scored" : "unscored"},
               {"keywords_version", t.metric().keywords_version}};
    jtasks.push_back(jt);
    fp["tasks"].push_back(t.definition_yaml());
  }
  fp["data_root"] = job.data_root().string();
  fp["settings"] = {settings.max_examples, settings.chunk_examples, settings.record_top_k, settings.max_new_tokens_cap};
  const std::string fingerprint = sha256_hex(fp.dump());
  json attrs = {{"schema", "results"},
                {"schema_version", kSchemaVersion},
                {"tool_version", build::kVersion},
                {"git_sha", build::kGitSha},
                {"created", extract::utc_now_iso8601()},
                {"job_config", job.resolved_yaml()},
                {"job_fingerprint", fingerprint},
                {"systems", jsystems},
                {"tasks", jtasks},
                {"record_top_k", settings.record_top_k},
                {"seed", static_cast<int64_t>(job.seed())},
                {"num_units", static_cast<int64_t>(units.size())}};

  // Rank 0 decides which units are done (and clears partial files); every rank gets the same list.
  std::string done_text;
  if (comm.is_root()) {
    fs::create_directories(dir / "chunks");
    json done = json::array();
    for (int64_t u = 0; u < static_cast<int64_t>(units.size()); ++u) {
      const fs::path p = chunk_path(dir, u);
      fs::remove(p.string() + ".part");
      if (!fs::exists(p)) continue;
      const h5::File f = h5::File::open(p);
      if (f.attr_string("job_fingerprint") != fingerprint)
        throw ConfigError(p.string() +
                          ": written by a different evaluation (models, heads, tasks or evaluate settings "
                          "changed); remove " +
                          dir.string() + " or use another run_dir");
      done.push_back(u);
    }
    done_text = done.dump();
  }
  done_text = comm.broadcast(done_text);
  const auto done = json::parse(done_text).get<std::vector<int64_t>>();
  if (comm.is_root() && !done.empty())
    spdlog::info("evaluate: resuming, {} of {} units already done", done.size(), units.size());

  EvalProgress prog;
  prog.units_total = static_cast<int64_t>(units.size() - done.size());
  Runtimes runtimes(job, comm);
  {
    dist::WorkQueue queue(comm, static_cast<int64_t>(units.size()), 1, done);
    while (auto chunk = queue.next()) {
      if (stop_requested())
        throw Interrupted("evaluate: stopped by a signal; finished units are kept, rerun to resume");
      const Unit& u = units[static_cast<size_t>(chunk->index)];
      const Task& task = tasks[u.task];
      const SystemSpec& sys = settings.systems[u.system];
      const std::vector<Example> batch(examples[u.task].begin() + u.begin, examples[u.task].begin() + u.end);
      const SystemRuntime rt = runtimes.get(sys);
      const std::vector<Row> rows = [&] {
        torch::InferenceMode guard;
        return answer_unit(task, sys, rt, batch, settings, &prog.tokens);
      }();
      const fs::path p = chunk_path(dir, chunk->index);
      const fs::path part = p.string() + ".part";
      json a = attrs;
      a["kind"] = "chunk";
      a["unit"] = chunk->index;
      {
        ResultsWriter w(part, a, settings.record_top_k);
        w.append(rows);
        w.close();
      }
      fs::rename(part, p);
      prog.units_done += 1;
      prog.examples += static_cast<int64_t>(rows.size());
      prog.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (progress) progress(prog);
    }
  }
  comm.barrier();
  if (comm.is_root()) {
    const fs::path out = results_path(job);
    const fs::path part = out.string() + ".part";
    json a = attrs;
    a["kind"] = "merged";
    a["num_chunks"] = static_cast<int64_t>(units.size());
    ResultsWriter w(part, a, settings.record_top_k);
    for (int64_t u = 0; u < static_cast<int64_t>(units.size()); ++u) w.append(read_rows(chunk_path(dir, u)));
    w.close();
    fs::rename(part, out);
    spdlog::info("evaluate: wrote {} ({} rows)", out.string(), w.rows());
  }
  comm.barrier();
}

}  // namespace sf::eval
