// Loading: random init, sharded checkpoints, and a missing, misshapen or unused tensor refused by
// name.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "core/error.hpp"
#include "io/safetensors.hpp"
#include "model/causal_lm.hpp"
#include "testutil/testutil.hpp"

namespace {

using sf::model::CausalLM;
using sf::model::ModelConfig;
using Named = std::vector<std::pair<std::string, torch::Tensor>>;

ModelConfig tiny_config(bool tied) {
  ModelConfig c;
  c.model_type = "llama";
  c.vocab_size = 50;
  c.hidden_size = 16;
  c.intermediate_size = 24;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 4;
  c.max_position_embeddings = 64;
  c.tie_word_embeddings = tied;
  return c;
}

torch::Tensor logits_of(const CausalLM& m) {
  torch::InferenceMode guard;
  const auto ids = torch::tensor({{3, 4, 5, 6}}, torch::kInt64);
  return m.forward(ids, torch::ones_like(ids)).logits;
}

// Writes config.json and the given tensors as a model folder.
void write_model(const std::filesystem::path& dir, const ModelConfig& c, const Named& tensors) {
  std::filesystem::create_directories(dir);
  sf::test::write_file(dir / "config.json", c.to_json().dump());
  sf::io::write_safetensors(dir / "model.safetensors", tensors);
}

void expect_format_error_naming(const std::filesystem::path& dir, const std::string& what) {
  try {
    CausalLM::load(dir);
    ADD_FAILURE() << "expected FormatError naming " << what;
  } catch (const sf::FormatError& e) {
    EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
  }
}

TEST(Load, RandomIsSeededAndNamesParametersLikeHuggingFace) {
  auto a = CausalLM::random(tiny_config(true), 7), b = CausalLM::random(tiny_config(true), 7);
  auto c = CausalLM::random(tiny_config(true), 8);
  EXPECT_TRUE(torch::equal(logits_of(a), logits_of(b)));
  EXPECT_FALSE(torch::equal(logits_of(a), logits_of(c)));
  auto names = a.named_parameters();
  EXPECT_EQ(names.front().first, "model.embed_tokens.weight");
  EXPECT_EQ(names.back().first, "model.norm.weight");  // tied: no lm_head.weight
  EXPECT_EQ(names.size(), 2u + 2u * 9u);
  EXPECT_TRUE(torch::equal(a.lm_head_weight(), names.front().second));
}

TEST(Load, ShardedCheckpointViaIndex) {
  sf::test::TempDir dir("load-sharded");
  const auto cfg = tiny_config(false);
  auto m = CausalLM::random(cfg, 3);
  auto params = m.named_parameters();
  const size_t half = params.size() / 2;
  nlohmann::json map;
  Named a(params.begin(), params.begin() + static_cast<std::ptrdiff_t>(half));
  Named b(params.begin() + static_cast<std::ptrdiff_t>(half), params.end());
  for (const auto& p : a) map[p.first] = "model-00001-of-00002.safetensors";
  for (const auto& p : b) map[p.first] = "model-00002-of-00002.safetensors";
  sf::io::write_safetensors(dir / "model-00001-of-00002.safetensors", a);
  sf::io::write_safetensors(dir / "model-00002-of-00002.safetensors", b);
  sf::test::write_file(dir / "model.safetensors.index.json",
                       nlohmann::json{{"metadata", {}}, {"weight_map", map}}.dump());
  sf::test::write_file(dir / "config.json", cfg.to_json().dump());
  EXPECT_TRUE(torch::equal(logits_of(CausalLM::load(dir.path())), logits_of(m)));

  map[params[0].first] = "../escape.safetensors";
  sf::test::write_file(dir / "model.safetensors.index.json", nlohmann::json{{"weight_map", map}}.dump());
  EXPECT_THROW(CausalLM::load(dir.path()), sf::FormatError);
}

TEST(Load, MissingMisshapenAndUnusedTensorsAreNamed) {
  sf::test::TempDir dir("load-bad");
  const auto cfg = tiny_config(false);
  auto params = CausalLM::random(cfg, 1).named_parameters();

  Named missing(params.begin(), params.end() - 1);  // no lm_head.weight
  write_model(dir / "missing", cfg, missing);
  expect_format_error_naming(dir / "missing", "'lm_head.weight' is missing");

  Named misshapen = params;
  misshapen[3].second = torch::zeros({5, 5});
  write_model(dir / "shape", cfg, misshapen);
  expect_format_error_naming(dir / "shape", "'" + params[3].first + "' has shape [5,5]");

  Named extra = params;
  extra.emplace_back("model.layers.0.mlp.extra.weight", torch::zeros({2}));
  write_model(dir / "extra", cfg, extra);
  expect_format_error_naming(dir / "extra", "'model.layers.0.mlp.extra.weight' is not used");

  Named ints = params;
  ints[0].second = torch::zeros(ints[0].second.sizes(), torch::kInt64);
  write_model(dir / "ints", cfg, ints);
  expect_format_error_naming(dir / "ints", "dtype I64");
}

TEST(Load, InvFreqBuffersIgnoredAndTiedLmHeadMustEqualEmbeddings) {
  sf::test::TempDir dir("load-compat");
  const auto cfg = tiny_config(true);
  auto m = CausalLM::random(cfg, 5);
  Named params = m.named_parameters();
  params.emplace_back("model.layers.0.self_attn.rotary_emb.inv_freq", torch::ones({2}));
  params.emplace_back("lm_head.weight", params[0].second.clone());
  write_model(dir / "ok", cfg, params);
  EXPECT_TRUE(torch::equal(logits_of(CausalLM::load(dir / "ok")), logits_of(m)));

  params.back().second = params.back().second + 1;
  write_model(dir / "differs", cfg, params);
  expect_format_error_naming(dir / "differs", "lm_head.weight");
}

// quantization_config in config.json: an export whose weights are plain floats loads; one whose
// weights really are quantized (bitsandbytes 4-bit: packed uint8 plus absmax; GPTQ: qweight and
// scales instead of weight) is refused naming the tensor.
TEST(Load, QuantizationConfigLoadsOnlyWithUnquantizedWeights) {
  sf::test::TempDir dir("load-quant");
  const auto cfg = tiny_config(true);
  nlohmann::json j = cfg.to_json();
  j["quantization_config"] = {{"quant_method", "bitsandbytes"}, {"load_in_4bit", true}};
  const auto m = CausalLM::random(cfg, 3);
  Named params = m.named_parameters();
  write_model(dir / "dequantized", cfg, params);
  sf::test::write_file(dir / "dequantized" / "config.json", j.dump());
  EXPECT_TRUE(torch::equal(logits_of(CausalLM::load(dir / "dequantized")), logits_of(m)));

  Named bnb = params;
  bnb[1].second = torch::zeros({bnb[1].second.numel() / 2, 1}, torch::kUInt8);
  bnb.emplace_back(bnb[1].first + ".absmax", torch::ones({4}));
  write_model(dir / "bnb", cfg, bnb);
  sf::test::write_file(dir / "bnb" / "config.json", j.dump());
  expect_format_error_naming(dir / "bnb", "'" + params[1].first + "' has dtype U8");

  Named gptq;
  for (auto& [name, t] : params) {
    if (name.find("q_proj") != std::string::npos) {
      gptq.emplace_back(name.substr(0, name.size() - 6) + "qweight", torch::zeros({2, 16}, torch::kInt32));
      gptq.emplace_back(name.substr(0, name.size() - 6) + "scales", torch::ones({1, 16}, torch::kFloat16));
    } else {
      gptq.emplace_back(name, t);
    }
  }
  write_model(dir / "gptq", cfg, gptq);
  j["quantization_config"] = {{"quant_method", "gptq"}, {"bits", 4}, {"group_size", 128}};
  sf::test::write_file(dir / "gptq" / "config.json", j.dump());
  expect_format_error_naming(dir / "gptq", "'model.layers.0.self_attn.q_proj.weight' is missing");
}

// The file behind the mapping of this process that holds address p; "" when p is in anonymous memory.
std::string mapped_file_of(const void* p) {
  std::ifstream maps("/proc/self/maps");
  const auto at = reinterpret_cast<uintptr_t>(p);
  for (std::string line; std::getline(maps, line);) {
    std::istringstream in(line);
    std::string range, perms, offset, dev, inode, path;
    in >> range >> perms >> offset >> dev >> inode >> path;
    const size_t dash = range.find('-');
    const uintptr_t begin = std::stoull(range.substr(0, dash), nullptr, 16);
    const uintptr_t end = std::stoull(range.substr(dash + 1), nullptr, 16);
    if (at >= begin && at < end) return path.empty() || path[0] != '/' ? "" : path;
  }
  return "";
}

// A float32 file loaded as float32 on one rank is used in place (no second copy of the weights);
// converted weights are the process's own memory (the huge-page arena, model/weight_arena.hpp).
TEST(Load, SameDtypeWeightsStayViewsOfTheMappedFileConvertedOnesDoNot) {
  sf::test::TempDir dir("load-mapped");
  ModelConfig c = tiny_config(false);
  c.vocab_size = 10000;  // 2.5 MB of embeddings: more than one 2 MiB page, so the arena is used
  c.hidden_size = 64;
  c.head_dim = 16;
  c.intermediate_size = 128;
  CausalLM::random(c, 4).save(dir.path());
  const std::string file = std::filesystem::canonical(dir.path() / "model.safetensors").string();
  const CausalLM same = CausalLM::load(dir.path());
  for (const auto& [name, t] : same.named_parameters()) EXPECT_EQ(mapped_file_of(t.data_ptr()), file) << name;
  sf::model::LoadOptions bf16;
  bf16.dtype = torch::kBFloat16;
  // On a CPU, bf16 converts the matrices; the norm vectors stay float32, so views of the file too.
  const CausalLM converted = CausalLM::load(dir.path(), bf16);
  for (const auto& [name, t] : converted.named_parameters()) {
    EXPECT_EQ(t.scalar_type(), t.dim() == 1 ? torch::kFloat32 : torch::kBFloat16) << name;
    EXPECT_EQ(mapped_file_of(t.data_ptr()), t.dim() == 1 ? file : "") << name;
  }
}

TEST(Load, MissingFolderIsIoError) {
  sf::test::TempDir dir("load-none");
  sf::test::write_file(dir / "config.json", tiny_config(true).to_json().dump());
  EXPECT_THROW(CausalLM::load(dir.path()), sf::IoError);
}

}  // namespace
