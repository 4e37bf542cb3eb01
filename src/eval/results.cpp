#include "eval/results.hpp"

#include <map>

#include "core/error.hpp"
#include "io/h5.hpp"

namespace sf::eval {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

h5::Layout layout(const std::string& dtype, std::vector<int64_t> row_shape = {}) {
  h5::Layout l;
  l.dtype = dtype;
  l.row_shape = std::move(row_shape);
  return l;
}

}  // namespace

struct ResultsWriter::State {
  State(const fs::path& path, const json& attrs, int64_t top_k) : file_(h5::File::create(path)), k_(top_k) {
    h5::write_attrs(file_, attrs);
    const h5::Group ex = file_.create_group("examples");
    for (const char* n : {"task", "system", "prompt", "prompt_text", "answer", "extracted", "finish_reason"})
      ex.create_dataset(n, layout("string"));
    for (const char* n :
         {"example_id", "token_offset", "num_tokens", "choice_offset", "num_choices", "prompt_offset", "prompt_length"})
      ex.create_dataset(n, layout("int64"));
    file_.create_group("prompts").create_dataset("ids", layout("int32"));
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
    std::vector<int64_t> example_id, token_offset, num_tokens, choice_offset, num_choices, score_row, prompt_offset,
        prompt_length;
    std::vector<std::string> score_metric, choice_text;
    std::vector<double> score_value, choice_logprob;
    std::vector<uint8_t> choice_correct, choice_best;
    std::vector<int32_t> token_ids, choice_tokens, prompt_ids;
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
      prompt_offset.push_back(prompt_tokens_);
      prompt_length.push_back(static_cast<int64_t>(r.prompt_ids.size()));
      prompt_ids.insert(prompt_ids.end(), r.prompt_ids.begin(), r.prompt_ids.end());
      prompt_tokens_ += static_cast<int64_t>(r.prompt_ids.size());
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
    ex.dataset("example_id").append_values(example_id);
    ex.dataset("token_offset").append_values(token_offset);
    ex.dataset("num_tokens").append_values(num_tokens);
    ex.dataset("choice_offset").append_values(choice_offset);
    ex.dataset("num_choices").append_values(num_choices);
    ex.dataset("prompt_offset").append_values(prompt_offset);
    ex.dataset("prompt_length").append_values(prompt_length);
    file_.group("prompts").dataset("ids").append_values(prompt_ids);
    const h5::Group sc = file_.group("scores");
    sc.dataset("row").append_values(score_row);
    sc.dataset("value").append_values(score_value);
    if (!score_metric.empty()) sc.dataset("metric").append_strings(score_metric);
    const h5::Group tk = file_.group("tokens");
    tk.dataset("token_id").append_values(token_ids);
    if (!logits.empty()) {
      tk.dataset("topk_logits").append(torch::cat(logits, 0));
      tk.dataset("topk_ids").append(torch::cat(ids, 0));
    }
    const h5::Group ch = file_.group("choices");
    if (!choice_text.empty()) ch.dataset("text").append_strings(choice_text);
    ch.dataset("correct").append_values(choice_correct);
    ch.dataset("best").append_values(choice_best);
    ch.dataset("logprob").append_values(choice_logprob);
    ch.dataset("num_tokens").append_values(choice_tokens);
  }

  h5::File file_;
  int64_t k_;
  int64_t rows_ = 0, tokens_ = 0, choices_ = 0, prompt_tokens_ = 0;
};

ResultsWriter::ResultsWriter(const fs::path& path, const json& attrs, int64_t top_k)
    : s_(std::make_unique<State>(path, attrs, top_k)) {}
ResultsWriter::~ResultsWriter() = default;
void ResultsWriter::append(const std::vector<Row>& rows) { s_->append(rows); }
void ResultsWriter::close() { s_->file_.close(); }
int64_t ResultsWriter::rows() const { return s_->rows_; }

std::vector<Row> read_rows(const fs::path& path) {
  const h5::File f = h5::File::open(path);
  if (f.attr_string("schema") != "results" || f.attr_int("schema_version") != kResultsSchemaVersion)
    throw FormatError(path.string() + ": schema " + f.attr_string("schema") + " v" +
                      std::to_string(f.attr_int("schema_version")) + ", this build reads results v" +
                      std::to_string(kResultsSchemaVersion) + "; re-run `superficial evaluate` with this build");
  const h5::Group ex = f.group("examples"), sc = f.group("scores"), tk = f.group("tokens"), ch = f.group("choices");
  const int64_t n = ex.dataset("task").rows();
  std::vector<Row> rows(static_cast<size_t>(n));
  auto strings = [&](const char* name) { return ex.dataset(name).read_all_strings(); };
  const auto task = strings("task"), system = strings("system"), prompt = strings("prompt"),
             prompt_text = strings("prompt_text"), answer = strings("answer"), extracted = strings("extracted"),
             finish = strings("finish_reason");
  const torch::Tensor eid = ex.dataset("example_id").read_all(), toff = ex.dataset("token_offset").read_all(),
                      ntok = ex.dataset("num_tokens").read_all(), coff = ex.dataset("choice_offset").read_all(),
                      nch = ex.dataset("num_choices").read_all(), poff = ex.dataset("prompt_offset").read_all(),
                      plen = ex.dataset("prompt_length").read_all(),
                      pids = f.group("prompts").dataset("ids").read_all();
  const torch::Tensor token_ids = tk.dataset("token_id").read_all(), logits = tk.dataset("topk_logits").read_all(),
                      ids = tk.dataset("topk_ids").read_all();
  const auto ctext = ch.dataset("text").read_all_strings();
  const torch::Tensor ccorrect = ch.dataset("correct").read_all(), cbest = ch.dataset("best").read_all(),
                      clp = ch.dataset("logprob").read_all(), cnt = ch.dataset("num_tokens").read_all();
  const auto a_eid = eid.accessor<int64_t, 1>(), a_toff = toff.accessor<int64_t, 1>(),
             a_ntok = ntok.accessor<int64_t, 1>(), a_coff = coff.accessor<int64_t, 1>(),
             a_nch = nch.accessor<int64_t, 1>(), a_poff = poff.accessor<int64_t, 1>(),
             a_plen = plen.accessor<int64_t, 1>();
  const auto a_pid = pids.accessor<int32_t, 1>();
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
    const int64_t p0 = a_poff[i], np = a_plen[i];
    if (p0 < 0 || np < 0 || p0 + np > pids.size(0))
      throw FormatError(path.string() + ": examples row " + std::to_string(i) + ": prompt range out of bounds");
    for (int64_t t = p0; t < p0 + np; ++t) r.prompt_ids.push_back(a_pid[t]);
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

}  // namespace sf::eval
