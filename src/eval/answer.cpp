#include "eval/answer.hpp"

#include <algorithm>

#include "core/error.hpp"
#include "core/text.hpp"
#include "eval/metrics.hpp"
#include "eval/task_scoring.hpp"
#include "model/finite.hpp"

namespace sf::eval {
namespace {

// Names the unit's row for non-finite guard messages.
std::string where(const Task& task, const SystemRuntime& sys, const Example& ex) {
  return "evaluate: system " + sys.def().name + " (model " + sys.main().name + "), task " + task.name() + ", example " +
         std::to_string(ex.id);
}

const std::string& field(const Task& task, const Example& ex, const std::string& name) {
  auto it = ex.fields.find(name);
  if (it == ex.fields.end())
    throw FormatError(task.source() + ": example " + std::to_string(ex.id) + ": field '" + name + "' is missing");
  return it->second;
}

// The ids of " " + answer after a prompt as one continuous text, so the first answer token
// merges with the prompt's end exactly as the tokenizer would merge it.
std::vector<int32_t> continuation_ids(const tok::Tokenizer& tk, const std::string& prompt_text,
                                      const std::string& answer) {
  const std::string text = " " + answer;
  const std::vector<int32_t> full = tk.encode(prompt_text + text, false);
  const std::vector<int32_t> prefix = tk.encode(prompt_text, false);
  if (full.size() > prefix.size() && std::equal(prefix.begin(), prefix.end(), full.begin()))
    return {full.begin() + static_cast<std::ptrdiff_t>(prefix.size()), full.end()};
  return tk.encode(text, false);
}

// A multiple-choice example's answers: the best one, then the correct ones, then the incorrect ones.
struct Choices {
  std::vector<std::string> texts;
  size_t correct = 0;  // texts[1..correct] are the correct answers
};

Choices choices_of(const Task& task, const Example& ex) {
  const MetricSpec& metric = task.metric();
  const auto correct = split_trimmed(field(task, ex, metric.correct_field), metric.separator);
  const auto incorrect = split_trimmed(field(task, ex, metric.incorrect_field), metric.separator);
  if (correct.empty() || incorrect.empty())
    throw FormatError(task.source() + ": example " + std::to_string(ex.id) + ": needs correct and incorrect answers");
  Choices c{{field(task, ex, metric.best_field)}, correct.size()};
  c.texts.insert(c.texts.end(), correct.begin(), correct.end());
  c.texts.insert(c.texts.end(), incorrect.begin(), incorrect.end());
  return c;
}

// Context positions a multiple-choice prompt leaves for its longest answer (one more than the
// answer alone takes: its first token may split differently after the prompt).
int64_t choices_room(const Task& task, const Example& ex, const tok::Tokenizer& tk) {
  int64_t room = 0;
  for (const auto& t : choices_of(task, ex).texts)
    room = std::max<int64_t>(room, static_cast<int64_t>(tk.encode(" " + t, false).size()) + 1);
  return room;
}

void score_choices(const Task& task, const SystemRuntime& sys, const std::vector<Example>& examples,
                   const std::vector<Prompt>& prompts, const model::MemberPrompts& members,
                   const AnswerSettings& settings, std::vector<Row>& rows, int64_t* tokens) {
  const model::Ensemble ensemble = sys.ensemble(task.name());
  for (size_t i = 0; i < examples.size(); ++i) {
    const Example& ex = examples[i];
    const Choices choices = choices_of(task, ex);
    const std::vector<std::string>& texts = choices.texts;
    model::MemberPrompts p(members.size());
    std::vector<std::vector<int32_t>> continuations;
    for (const auto& t : texts) {
      continuations.push_back(continuation_ids(sys.main().tokenizer, prompts[i].text, t));
      for (size_t m = 0; m < members.size(); ++m) p[m].push_back(members[m][i]);
    }
    const std::vector<double> lls = model::continuation_logprobs(ensemble, p, continuations, settings.batch_size);
    model::require_finite(torch::tensor(lls, torch::kFloat64),
                          {where(task, sys, ex), "answer log-likelihoods (position = answer index)", 0, {}});
    std::vector<double> lc, li;
    for (size_t c = 0; c < texts.size(); ++c) {
      Row::Choice ch;
      ch.text = texts[c];
      ch.best = c == 0;
      ch.correct = c <= choices.correct;
      ch.logprob = lls[c];
      ch.num_tokens = static_cast<int32_t>(continuations[c].size());
      *tokens += ch.num_tokens;
      if (c > 0) (ch.correct ? lc : li).push_back(ch.logprob);
      rows[i].choices.push_back(std::move(ch));
    }
    const McScores s = mc_scores(lls[0], lc, li);
    rows[i].scores = {{"mc1", s.mc1}, {"mc2", s.mc2}};
    rows[i].finish_reason = "scored";
  }
}

}  // namespace

std::vector<Row> answer_unit(const Task& task, const SystemRuntime& sys, const std::vector<Example>& examples,
                             const AnswerSettings& settings, int64_t* tokens) {
  const GenerationSpec& gen = task.generation();
  const int64_t max_new_tokens =
      settings.max_new_tokens_cap > 0 ? std::min(gen.max_new_tokens, settings.max_new_tokens_cap) : gen.max_new_tokens;
  // Room kept after each prompt in the models' contexts: the new tokens, or the longest answer.
  std::vector<int64_t> reserve;
  for (const auto& ex : examples)
    reserve.push_back(task.generates() ? max_new_tokens : choices_room(task, ex, sys.main().tokenizer));
  const std::vector<Prompt> prompts = sys.main_prompts(task, examples, reserve);
  const model::MemberPrompts members = sys.member_prompts(task, examples, prompts, reserve);
  std::vector<Row> rows(examples.size());
  for (size_t i = 0; i < examples.size(); ++i) {
    rows[i].task = task.name();
    rows[i].system = sys.def().name;
    rows[i].example_id = examples[i].id;
    rows[i].prompt = examples[i].input;
    rows[i].prompt_text = prompts[i].text;
    rows[i].prompt_ids = prompts[i].ids;
  }
  if (!task.generates()) {
    score_choices(task, sys, examples, prompts, members, settings, rows, tokens);
    return rows;
  }
  const std::vector<std::string> stops = sys.stop_strings(task);
  model::GenerateOptions opts;
  opts.max_new_tokens = max_new_tokens;
  opts.greedy = true;
  opts.eos_ids = sys.main().eos_ids;
  opts.record_top_k = settings.record_top_k;
  opts.batch_size = settings.batch_size;
  if (!stops.empty()) {
    const tok::Tokenizer* tk = &sys.main().tokenizer;
    opts.stop = [tk, stops](size_t, const std::vector<int32_t>& generated) {
      const std::string text = tk->decode(generated, true);
      return std::any_of(stops.begin(), stops.end(),
                         [&](const std::string& s) { return text.find(s) != std::string::npos; });
    };
  }
  const std::vector<model::Generation> gens = model::generate(sys.ensemble(task.name()), members, opts);
  for (size_t i = 0; i < rows.size(); ++i) {
    Row& r = rows[i];
    const auto& g = gens[i];
    model::require_finite(g.topk_logits, {where(task, sys, examples[i]), "generation step logits", 0, g.topk_ids});
    r.tokens = g.tokens;
    r.finish_reason = g.finish_reason;
    r.topk_logits = g.topk_logits.to(torch::kFloat32).contiguous();
    r.topk_ids = g.topk_ids.to(torch::kInt32).contiguous();
    *tokens += static_cast<int64_t>(g.tokens.size());
    r.answer = cut_at_stop(sys.main().tokenizer.decode(g.tokens, true), stops);
    const AnswerScore s = score_answer(task, examples[i], r.answer);
    r.scores = s.scores;
    r.extracted = s.extracted;
  }
  return rows;
}

}  // namespace sf::eval
