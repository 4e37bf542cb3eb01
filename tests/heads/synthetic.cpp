#include "heads/synthetic.hpp"

#include <cmath>

#include "extract/shard_writer.hpp"
#include "heads/base_model.hpp"
#include "model/causal_lm.hpp"

namespace sf::test {

void make_tiny_model(const std::filesystem::path& dir, int64_t vocab, int64_t hidden, bool tie, uint64_t seed) {
  model::ModelConfig c;
  c.model_type = "llama";
  c.vocab_size = vocab;
  c.hidden_size = hidden;
  c.intermediate_size = 2 * hidden;
  c.num_hidden_layers = 1;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 2;
  c.head_dim = hidden / 2;
  c.max_position_embeddings = 64;
  c.rms_norm_eps = 1e-6;
  c.tie_word_embeddings = tie;
  c.bos_token_id = 1;
  c.eos_token_ids = {2};
  model::CausalLM::random(c, seed).save(dir);
}

Study make_study(const std::filesystem::path& dir, const StudyOptions& o) {
  Study s;
  s.base_dir = dir / "base";
  s.aligned_dir = dir / "aligned";
  s.dataset = dir / "extract" / "base__aligned" / "logits.h5";
  make_tiny_model(s.base_dir, o.vocab, o.hidden, o.tie_embeddings, o.seed);
  make_tiny_model(s.aligned_dir, o.vocab, o.hidden, o.tie_embeddings, o.seed + 1000);
  s.lm_head = heads::load_lm_head_weight(s.base_dir).clone();
  torch::manual_seed(o.seed);
  s.delta = o.delta_scale *
            torch::matmul(torch::randn({o.vocab, o.delta_rank}), torch::randn({o.hidden, o.delta_rank}).t()) /
            std::sqrt(static_cast<double>(o.delta_rank));
  s.bias = o.bias_scale * torch::randn({o.vocab});
  std::filesystem::create_directories(s.dataset.parent_path());
  extract::ShardLayout layout;
  layout.top_k = o.top_k;
  layout.hidden_size = o.hidden;
  layout.gzip_level = 0;
  extract::ShardWriter writer(s.dataset, {{"source", "synthetic test study"}}, layout);
  std::vector<extract::ExtractedExample> batch;
  for (int64_t e = 0; e < o.examples; ++e) {
    const int64_t n = 3 + (e * 7) % 6;  // 3..8 positions, varying
    // Hidden states of the scale of a final RMSNorm output, rounded as the dataset stores them.
    const torch::Tensor h = (2.0 * torch::randn({n, o.hidden})).to(torch::kFloat16).to(torch::kFloat32);
    const torch::Tensor base = torch::matmul(h, s.lm_head.t());                          // [n,V]
    const torch::Tensor aligned = torch::matmul(h, (s.lm_head + s.delta).t()) + s.bias;  // [n,V]
    extract::ExtractedExample ex;
    ex.item = e;
    ex.example_id = e;
    ex.task = o.tasks == 1 ? "synthetic" : "synthetic" + std::to_string(e % o.tasks);
    ex.finish_reason = "eos";
    ex.prompt = "prompt " + std::to_string(e);
    ex.response = "response";
    ex.aligned_prompt_ids = {1, 5};
    ex.base_prompt_ids = {1, 5};
    std::tie(ex.aligned_topk_logits, ex.aligned_topk_ids) = aligned.topk(o.top_k, 1);
    std::tie(ex.base_topk_logits, ex.base_topk_ids) = base.topk(o.top_k, 1);
    const torch::Tensor tokens = ex.aligned_topk_ids.select(1, 0).to(torch::kInt);
    ex.response_ids.assign(tokens.data_ptr<int32_t>(), tokens.data_ptr<int32_t>() + n);
    ex.base_hidden = h;
    ex.is_eos = torch::zeros({n}, torch::kBool);
    batch.push_back(std::move(ex));
  }
  writer.append(batch);
  writer.finish();
  return s;
}

}  // namespace sf::test
