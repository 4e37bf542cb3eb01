// classifier judges: a RoBERTa sequence classifier over <s> input </s>.
#include <algorithm>

#include "core/error.hpp"
#include "judge/kinds.hpp"

namespace sf::judge {

ClassifierJudge::ClassifierJudge(Recipe recipe, RobertaClassifier model, tok::Tokenizer tokenizer, int64_t batch_size)
    : recipe_(std::move(recipe)), model_(std::move(model)), tokenizer_(std::move(tokenizer)), batch_size_(batch_size) {}

std::vector<int32_t> ClassifierJudge::encode(const std::string& text) const {
  std::vector<int32_t> ids = tokenizer_.encode(text, true);
  const int64_t max = model_.config().max_tokens();
  if (static_cast<int64_t>(ids.size()) <= max) return ids;
  // As transformers' truncation: the text's tokens are cut, the special tokens kept.
  const int32_t last = ids.back();
  ids.resize(static_cast<size_t>(max - 1));
  ids.push_back(last);
  return ids;
}

torch::Tensor ClassifierJudge::logits(const std::vector<std::string>& inputs) const {
  torch::InferenceMode guard;
  const int64_t pad = model_.config().pad_token_id;
  std::vector<torch::Tensor> parts;
  for (size_t start = 0; start < inputs.size(); start += static_cast<size_t>(batch_size_)) {
    const size_t end = std::min(inputs.size(), start + static_cast<size_t>(batch_size_));
    std::vector<std::vector<int32_t>> seqs;
    size_t T = 0;
    for (size_t i = start; i < end; ++i) {
      seqs.push_back(encode(inputs[i]));
      T = std::max(T, seqs.back().size());
    }
    const auto B = static_cast<int64_t>(seqs.size());
    torch::Tensor ids = torch::full({B, static_cast<int64_t>(T)}, pad, torch::kInt64);
    torch::Tensor mask = torch::zeros({B, static_cast<int64_t>(T)}, torch::kInt64);
    auto ia = ids.accessor<int64_t, 2>();
    auto ma = mask.accessor<int64_t, 2>();
    for (int64_t b = 0; b < B; ++b) {
      for (size_t t = 0; t < seqs[static_cast<size_t>(b)].size(); ++t) {
        ia[b][static_cast<int64_t>(t)] = seqs[static_cast<size_t>(b)][t];
        ma[b][static_cast<int64_t>(t)] = 1;
      }
    }
    parts.push_back(model_.forward(ids, mask).cpu());  // [B,C]
  }
  if (parts.empty()) return torch::zeros({0, model_.config().num_labels});
  return torch::cat(parts, 0);
}

std::vector<Verdict> ClassifierJudge::judge(const std::vector<std::string>& inputs) const {
  const torch::Tensor l = logits(inputs).to(torch::kFloat64).contiguous();  // [N,C]
  std::vector<Verdict> out;
  for (int64_t i = 0; i < l.size(0); ++i) {
    const double* row = l[i].data_ptr<double>();
    out.push_back(label_verdict(recipe_, std::vector<double>(row, row + l.size(1))));
  }
  return out;
}

}  // namespace sf::judge
