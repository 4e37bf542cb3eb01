// Models from GGUF files (fixtures from scripts/golden_gguf.py: the tiny models of
// tests/fixtures/models converted as llama.cpp's converter does, references by transformers' own
// GGUF loader): logits at fp32 tolerance 1e-4, the config from metadata (llama3 rope scaling from
// rope_freqs), `convert` to a folder that loads to the same model, and refused metadata.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "core/error.hpp"
#include "heads/base_model.hpp"
#include "io/gguf.hpp"
#include "model/causal_lm.hpp"
#include "model/gguf_convert.hpp"
#include "model/gguf_model.hpp"
#include "model/model_files.hpp"
#include "testutil/gguf_writer.hpp"
#include "testutil/golden.hpp"
#include "testutil/testutil.hpp"

namespace {

using sf::model::CausalLM;
using sf::model::GgufModel;

const double kFp32Tol = sf::test::logit_tolerance(torch::kCPU, torch::kFloat32);

std::filesystem::path gguf(const std::string& name) { return sf::test::fixtures_dir() / "gguf" / (name + ".gguf"); }

using sf::test::masked_max_diff;

std::map<std::string, torch::Tensor> reference(const std::string& name) {
  return sf::test::read_reference(sf::test::fixtures_dir() / "gguf" / (name + ".reference.safetensors"));
}

class GgufGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(GgufGolden, LogitsMatchTransformers) {
  torch::InferenceMode guard;
  const CausalLM model = CausalLM::load(gguf(GetParam()));
  auto ref = reference(GetParam());
  const auto out = model.forward(ref["left_ids"], ref["left_mask"]);
  const double diff = masked_max_diff(out.logits, ref["left_logits"], ref["left_mask"]);
  EXPECT_LE(diff, kFp32Tol) << GetParam();
  RecordProperty("max_abs_logit_diff", std::to_string(diff));
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GgufGolden, ::testing::Values("llama_untied.Q8_0", "qwen2.Q8_0", "llama3.F16"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n) c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
                           return n;
                         });

TEST(GgufModel, ConfigFromMetadata) {
  const auto untied = sf::model::load_model_config(gguf("llama_untied.Q8_0"));
  EXPECT_EQ(untied.model_type, "llama");
  EXPECT_EQ(untied.vocab_size, 256);
  EXPECT_EQ(untied.hidden_size, 64);
  EXPECT_EQ(untied.num_attention_heads, 4);
  EXPECT_EQ(untied.num_key_value_heads, 1);
  EXPECT_EQ(untied.head_dim, 16);
  EXPECT_FALSE(untied.tie_word_embeddings);
  EXPECT_FALSE(untied.attention_bias);
  EXPECT_EQ(untied.eos_token_ids, std::vector<int64_t>{2});
  EXPECT_EQ(untied.bos_token_id, 1);
  const auto qwen = sf::model::load_model_config(gguf("qwen2.Q8_0"));
  EXPECT_EQ(qwen.model_type, "qwen2");
  EXPECT_TRUE(qwen.tie_word_embeddings);
  EXPECT_TRUE(qwen.attention_bias);
  EXPECT_DOUBLE_EQ(qwen.rope_theta, 1e6);
  const auto l3 = sf::model::load_model_config(gguf("llama3.F16"));
  ASSERT_TRUE(l3.rope_scaling.has_value());
  EXPECT_EQ(l3.rope_scaling->type, "llama3");
  EXPECT_DOUBLE_EQ(l3.rope_scaling->factor, 8.0);
}

TEST(GgufModel, LmHeadAloneAndFingerprints) {
  const CausalLM model = CausalLM::load(gguf("llama_untied.Q8_0"));
  EXPECT_TRUE(torch::equal(sf::heads::load_lm_head_weight(gguf("llama_untied.Q8_0")), model.lm_head_weight()));
  const CausalLM tied = CausalLM::load(gguf("qwen2.Q8_0"));
  EXPECT_TRUE(torch::equal(sf::heads::load_lm_head_weight(gguf("qwen2.Q8_0")), tied.lm_head_weight()));
  const std::string a = sf::heads::model_fingerprint(gguf("llama_untied.Q8_0"));
  EXPECT_EQ(a.size(), 64u);
  EXPECT_EQ(a, sf::heads::model_fingerprint(gguf("llama_untied.Q8_0")));
  EXPECT_NE(a, sf::heads::model_fingerprint(gguf("qwen2.Q8_0")));
  EXPECT_EQ(sf::heads::tokenizer_fingerprint(gguf("llama_untied.Q8_0")), "none");  // no tokenizer metadata
  EXPECT_FALSE(sf::model::has_tokenizer(gguf("llama_untied.Q8_0")));
}

TEST(GgufModel, ConvertWritesAFolderThatLoadsToTheSameModel) {
  torch::InferenceMode guard;
  sf::test::TempDir dir("gguf-convert");
  const auto out = dir / "hf";
  sf::model::convert_gguf(gguf("llama_untied.Q8_0"), out, torch::kFloat32);
  const CausalLM from_gguf = CausalLM::load(gguf("llama_untied.Q8_0"));
  const CausalLM from_folder = CausalLM::load(out);
  auto ref = reference("llama_untied.Q8_0");
  const auto a = from_gguf.forward(ref["left_ids"], ref["left_mask"]);
  const auto b = from_folder.forward(ref["left_ids"], ref["left_mask"]);
  EXPECT_TRUE(torch::equal(a.logits, b.logits));
  EXPECT_EQ(sf::model::load_model_config(out).num_key_value_heads, 1);
  EXPECT_THROW(sf::model::convert_gguf(gguf("llama_untied.Q8_0"), out, torch::kFloat32), sf::IoError);
}

// The factors convert_hf_to_gguf.py writes for rope_type llama3 (its formula, in float32 frequencies).
std::vector<float> llama3_factors(double theta, int64_t dim, double factor, double low, double high, double old) {
  std::vector<float> out;
  for (int64_t i = 0; i < dim; i += 2) {
    const float freq = static_cast<float>(1.0 / std::pow(theta, static_cast<double>(i) / dim));
    const double wavelen = 2 * M_PI / freq;
    if (wavelen < old / high) {
      out.push_back(1.0f);
    } else if (wavelen > old / low) {
      out.push_back(static_cast<float>(factor));
    } else {
      const double smooth = (old / wavelen - low) / (high - low);
      out.push_back(static_cast<float>(1 / ((1 - smooth) / factor + smooth)));
    }
  }
  return out;
}

// A one-layer llama GGUF of the given shape with random F32 weights (no permutation needed to test
// the config) and optional rope factors.
sf::test::GgufBuilder tiny_llama(int64_t head_dim, int64_t heads, const std::vector<float>& rope_freqs, double theta) {
  sf::test::GgufBuilder b;
  const uint64_t hd = static_cast<uint64_t>(head_dim * heads), vocab = 8, inter = 32;
  b.str("general.architecture", "llama")
      .u32("llama.context_length", 128)
      .u32("llama.embedding_length", static_cast<uint32_t>(hd))
      .u32("llama.block_count", 1)
      .u32("llama.feed_forward_length", static_cast<uint32_t>(inter))
      .u32("llama.attention.head_count", static_cast<uint32_t>(heads))
      .f32("llama.attention.layer_norm_rms_epsilon", 1e-5f)
      .f32("llama.rope.freq_base", static_cast<float>(theta));
  auto random = [](uint64_t n) {
    std::vector<float> v(n);
    for (uint64_t i = 0; i < n; ++i) v[i] = static_cast<float>(std::sin(0.37 * static_cast<double>(i))) * 0.1f;
    return v;
  };
  if (!rope_freqs.empty()) b.f32_tensor("rope_freqs.weight", rope_freqs, rope_freqs.size());
  b.f32_tensor("token_embd.weight", random(vocab * hd), vocab, hd);
  b.f32_tensor("blk.0.attn_norm.weight", std::vector<float>(hd, 1.0f), hd);
  for (const char* n : {"attn_q", "attn_k", "attn_v", "attn_output"}) {
    b.f32_tensor(std::string("blk.0.") + n + ".weight", random(hd * hd), hd, hd);
  }
  b.f32_tensor("blk.0.ffn_norm.weight", std::vector<float>(hd, 1.0f), hd);
  b.f32_tensor("blk.0.ffn_gate.weight", random(inter * hd), inter, hd);
  b.f32_tensor("blk.0.ffn_up.weight", random(inter * hd), inter, hd);
  b.f32_tensor("blk.0.ffn_down.weight", random(hd * inter), hd, inter);
  b.f32_tensor("output_norm.weight", std::vector<float>(hd, 1.0f), hd);
  return b;
}

TEST(GgufModel, Llama3RopeScalingRecoveredFromFactors) {
  sf::test::TempDir dir("gguf-rope");
  struct Case {
    double theta;
    int64_t head_dim;
    double factor, low, high, old;
  };
  // Llama-3.1-8B, Llama-3.2-1B, and shapes with one (with and without unscaled dimensions) and with
  // no dimension in the smooth band.
  for (const Case& c : {Case{500000, 128, 8, 1, 4, 8192}, Case{500000, 64, 32, 1, 4, 8192},
                        Case{500000, 16, 8, 1, 4, 16}, Case{10000, 8, 4, 1, 1.5, 64}, Case{10000, 8, 4, 1, 1.2, 40}}) {
    const auto want = llama3_factors(c.theta, c.head_dim, c.factor, c.low, c.high, c.old);
    const auto file = dir / "m.gguf";
    sf::test::write_file(file, tiny_llama(c.head_dim, 1, want, c.theta).build());
    const auto cfg = sf::model::load_model_config(file);
    ASSERT_TRUE(cfg.rope_scaling.has_value()) << c.head_dim;
    const auto& s = *cfg.rope_scaling;
    const auto got = llama3_factors(c.theta, c.head_dim, s.factor, s.low_freq_factor, s.high_freq_factor,
                                    static_cast<double>(s.original_max_position_embeddings));
    for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-5 * want[i]) << c.head_dim << " " << i;
  }
  // All factors 1: no scaling. Factors that no llama3 scaling gives: refused.
  const auto file = dir / "m.gguf";
  sf::test::write_file(file, tiny_llama(16, 1, std::vector<float>(8, 1.0f), 10000).build());
  EXPECT_FALSE(sf::model::load_model_config(file).rope_scaling.has_value());
  sf::test::write_file(file, tiny_llama(16, 1, {1, 4, 1, 4, 1, 4, 1, 4}, 10000).build());
  EXPECT_THROW(sf::model::load_model_config(file), sf::ConfigError);
}

void expect_error(const std::filesystem::path& file, const std::string& what) {
  try {
    CausalLM::load(file);
    ADD_FAILURE() << "expected an error containing '" << what << "'";
  } catch (const sf::Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(file.string()), std::string::npos) << msg;
    EXPECT_NE(msg.find(what), std::string::npos) << msg;
  }
}

TEST(GgufModel, RefusedMetadataAndTensors) {
  sf::test::TempDir dir("gguf-refused");
  const auto file = dir / "m.gguf";
  sf::test::write_file(file, tiny_llama(16, 2, {}, 10000).build());
  EXPECT_NO_THROW(CausalLM::load(file));
  auto b = tiny_llama(16, 2, {}, 10000);
  b.str("llama.rope.scaling.type", "yarn");
  sf::test::write_file(file, b.build());
  expect_error(file, "metadata 'llama.rope.scaling.type': 'yarn' is not supported");
  b = tiny_llama(16, 2, {}, 10000);
  b.u32("llama.expert_count", 8);
  sf::test::write_file(file, b.build());
  expect_error(file, "metadata 'llama.expert_count': unknown or unsupported metadata key");
  b = tiny_llama(16, 2, {}, 10000);
  b.u32("split.count", 2);
  sf::test::write_file(file, b.build());
  expect_error(file, "split GGUF files are not supported");
  b = tiny_llama(16, 2, {}, 10000);
  b.u32("llama.rope.dimension_count", 8);
  sf::test::write_file(file, b.build());
  expect_error(file, "partial rotary embeddings are not supported");
  b = tiny_llama(16, 2, {}, 10000);
  b.f32_tensor("blk.0.attn_q_norm.weight", std::vector<float>(16, 1.0f), 16);
  sf::test::write_file(file, b.build());
  expect_error(file, "tensor 'blk.0.attn_q_norm.weight' has no Hugging Face counterpart");
  b = tiny_llama(16, 2, {}, 10000);
  b.f32_tensor("blk.1.attn_norm.weight", std::vector<float>(32, 1.0f), 32);
  sf::test::write_file(file, b.build());
  expect_error(file, "tensor 'blk.1.attn_norm.weight' has no Hugging Face counterpart");
  sf::test::GgufBuilder phi;
  phi.str("general.architecture", "phi3");
  sf::test::write_file(file, phi.build());
  expect_error(file, "metadata 'general.architecture': 'phi3' is not supported (llama, qwen2)");
  // A missing weight is named by its Hugging Face name.
  sf::test::GgufBuilder partial;
  partial.str("general.architecture", "llama")
      .u32("llama.context_length", 8)
      .u32("llama.embedding_length", 16)
      .u32("llama.block_count", 1)
      .u32("llama.feed_forward_length", 32)
      .u32("llama.attention.head_count", 1)
      .f32("llama.attention.layer_norm_rms_epsilon", 1e-5f)
      .u32("llama.vocab_size", 4);
  sf::test::write_file(file, partial.build());
  expect_error(file, "required tensor 'model.embed_tokens.weight' is missing");
}

}  // namespace
