// label_prob judges: each label's log-likelihood as the continuation of the judge's prompt.
#include <algorithm>

#include "core/error.hpp"
#include "judge/kinds.hpp"
#include "model/generate.hpp"

namespace sf::judge {
namespace {

// log p(label | prompt) for each prompt and each of its one-token labels: left-padded batches,
// logits of the last position. A vocabulary split over a tensor group is never gathered: the
// labels' logits are picked from the rank that holds them and the log-normaliser is the group's.
std::vector<std::vector<double>> next_token_logprobs(const model::CausalLM& model,
                                                     const std::vector<std::vector<int32_t>>& prompts,
                                                     const std::vector<std::vector<int32_t>>& label_ids,
                                                     int64_t batch_size) {
  const model::VocabParallel& vocab = model.vocab();
  std::vector<std::vector<double>> out(prompts.size());
  for (size_t start = 0; start < prompts.size(); start += static_cast<size_t>(batch_size)) {
    const size_t end = std::min(prompts.size(), start + static_cast<size_t>(batch_size));
    const auto B = static_cast<int64_t>(end - start);
    int64_t P = 0;
    for (size_t i = start; i < end; ++i) P = std::max<int64_t>(P, static_cast<int64_t>(prompts[i].size()));
    torch::Tensor ids = torch::zeros({B, P}, torch::kInt64);
    torch::Tensor mask = torch::zeros({B, P}, torch::kInt64);
    auto ia = ids.accessor<int64_t, 2>();
    auto ma = mask.accessor<int64_t, 2>();
    for (int64_t b = 0; b < B; ++b) {
      const auto& p = prompts[start + static_cast<size_t>(b)];
      const int64_t off = P - static_cast<int64_t>(p.size());
      for (size_t t = 0; t < p.size(); ++t) {
        ia[b][off + static_cast<int64_t>(t)] = p[t];
        ma[b][off + static_cast<int64_t>(t)] = 1;
      }
    }
    const model::ForwardOutput f = model.forward(ids, mask, nullptr, /*last_n=*/1);  // logits [B,1,V]
    const torch::Tensor z = f.logits.select(1, 0);                                   // [B,V] (V_local when split)
    const size_t L = label_ids[start].size();
    torch::Tensor labels = torch::empty({B, static_cast<int64_t>(L)}, torch::kInt64);
    for (int64_t b = 0; b < B; ++b)
      for (size_t l = 0; l < L; ++l) labels[b][static_cast<int64_t>(l)] = label_ids[start + static_cast<size_t>(b)][l];
    labels = labels.to(z.device());
    std::vector<torch::Tensor> picked;
    for (size_t l = 0; l < L; ++l) picked.push_back(vocab.pick(z, labels.select(1, static_cast<int64_t>(l))));  // [B]
    const torch::Tensor lp =
        (torch::stack(picked, 1) - vocab.logsumexp(z).unsqueeze(1)).to(torch::kFloat64).cpu();  // [B,L]
    for (int64_t b = 0; b < B; ++b) {
      auto& row = out[start + static_cast<size_t>(b)];
      for (size_t l = 0; l < L; ++l) row.push_back(lp[b][static_cast<int64_t>(l)].item<double>());
    }
  }
  return out;
}

}  // namespace

LabelProbJudge::LabelProbJudge(Recipe recipe, model::CausalLM model, tok::Tokenizer tokenizer, tok::ChatTemplate chat,
                               int64_t batch_size)
    : recipe_(std::move(recipe)),
      model_(std::move(model)),
      tokenizer_(std::move(tokenizer)),
      chat_(std::move(chat)),
      batch_size_(batch_size) {}

std::vector<std::vector<double>> LabelProbJudge::label_loglik(const std::vector<std::string>& inputs) const {
  torch::InferenceMode guard;
  const size_t L = recipe_.labels.size();
  std::vector<std::vector<double>> out(inputs.size(), std::vector<double>(L, 0.0));
  // Items whose every label is one token need one forward of the prompt; the others are scored as
  // prompt + label sequences.
  std::vector<size_t> single_items;
  std::vector<std::vector<int32_t>> single_prompts, multi_seqs;
  std::vector<std::vector<int32_t>> single_label_ids;  // per single item: one id per label
  std::vector<std::pair<size_t, size_t>> multi_index;  // (item, label) of each sequence
  std::vector<int64_t> multi_start;                    // first label position of each sequence
  for (size_t i = 0; i < inputs.size(); ++i) {
    const tok::RenderedPrompt p = chat_.prompt(inputs[i]);
    std::vector<int32_t> prompt_ids = tokenizer_.encode(p.text, p.add_special_tokens);
    if (prompt_ids.empty()) throw ShapeError(recipe_.where + ": input " + std::to_string(i) + " encodes to no token");
    std::vector<std::vector<int32_t>> label_ids;
    bool single = true;
    for (const auto& label : recipe_.labels) {
      label_ids.push_back(continuation_ids(tokenizer_, p.text, label));
      single = single && label_ids.back().size() == 1;
    }
    if (single) {
      single_items.push_back(i);
      std::vector<int32_t> ids;
      for (const auto& l : label_ids) ids.push_back(l[0]);
      single_label_ids.push_back(std::move(ids));
      single_prompts.push_back(std::move(prompt_ids));
      continue;
    }
    for (size_t l = 0; l < L; ++l) {
      std::vector<int32_t> seq = prompt_ids;
      seq.insert(seq.end(), label_ids[l].begin(), label_ids[l].end());
      multi_start.push_back(static_cast<int64_t>(prompt_ids.size()));
      multi_index.emplace_back(i, l);
      multi_seqs.push_back(std::move(seq));
    }
  }
  const std::vector<std::vector<double>> next =
      next_token_logprobs(model_, single_prompts, single_label_ids, batch_size_);
  for (size_t s = 0; s < single_items.size(); ++s) out[single_items[s]] = next[s];
  if (!multi_seqs.empty()) {
    model::ScoreOptions opts;
    opts.batch_size = batch_size_;
    const model::ScoreOutput scored = model::score(model_, multi_seqs, opts);
    for (size_t k = 0; k < multi_seqs.size(); ++k) {
      const auto n = static_cast<int64_t>(multi_seqs[k].size());
      out[multi_index[k].first][multi_index[k].second] =
          scored.token_logprobs[k].slice(0, multi_start[k], n).to(torch::kFloat64).sum().item<double>();
    }
  }
  return out;
}

std::vector<Verdict> LabelProbJudge::judge(const std::vector<std::string>& inputs) const {
  std::vector<Verdict> out;
  for (auto& raw : label_loglik(inputs)) out.push_back(label_verdict(recipe_, std::move(raw)));
  return out;
}

}  // namespace sf::judge
