// config.json parsing: every real config in ../shared/models parses (or, for a family we do not
// implement, is refused by model_type), and keys that would change the computation are refused.
#include <gtest/gtest.h>

#include "core/error.hpp"
#include "model/config.hpp"
#include "testutil/testutil.hpp"

namespace {

using nlohmann::json;
using sf::model::ModelConfig;

json base_config() {
  return json::parse(R"({"model_type":"llama","vocab_size":100,"hidden_size":32,"intermediate_size":64,
    "num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"rms_norm_eps":1e-5})");
}

void expect_config_error(const json& j, const std::string& what) {
  try {
    ModelConfig::from_json(j, "cfg.json");
    ADD_FAILURE() << "expected ConfigError containing '" << what << "' for " << j.dump();
  } catch (const sf::ConfigError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("cfg.json"), std::string::npos) << msg;
    EXPECT_NE(msg.find(what), std::string::npos) << msg;
  }
}

TEST(ModelConfig, EveryRealConfigParsesOrIsRefusedByModelType) {
  int parsed = 0;
  for (const auto& entry : std::filesystem::directory_iterator(sf::test::shared_dir() / "models")) {
    const auto file = entry.path() / "config.json";
    if (!std::filesystem::exists(file)) continue;
    const std::string type = json::parse(sf::test::read_file(file)).value("model_type", "");
    if (type == "llama" || type == "mistral" || type == "qwen2") {
      EXPECT_NO_THROW(ModelConfig::from_file(file)) << file;
      ++parsed;
    } else {
      try {
        ModelConfig::from_file(file);
        ADD_FAILURE() << file << " should be refused";
      } catch (const sf::ConfigError& e) {
        EXPECT_NE(std::string(e.what()).find("model_type"), std::string::npos) << e.what();
      }
    }
  }
  EXPECT_GE(parsed, 5);
}

TEST(ModelConfig, RealConfigValues) {
  const auto models = sf::test::shared_dir() / "models";
  const auto smol = ModelConfig::from_file(models / "HuggingFaceTB--SmolLM2-135M-Instruct" / "config.json");
  EXPECT_EQ(smol.hidden_size, 576);
  EXPECT_EQ(smol.num_key_value_heads, 3);
  EXPECT_EQ(smol.head_dim, 64);
  EXPECT_TRUE(smol.tie_word_embeddings);
  EXPECT_DOUBLE_EQ(smol.rope_theta, 100000.0);
  EXPECT_EQ(smol.eos_token_ids, std::vector<int64_t>{2});
  const auto l70 = ModelConfig::from_file(models / "meta-llama--Llama-2-70b-chat-hf" / "config.json");
  EXPECT_EQ(l70.num_key_value_heads, 8);
  EXPECT_EQ(l70.num_hidden_layers, 80);
  EXPECT_FALSE(l70.tie_word_embeddings);
  EXPECT_DOUBLE_EQ(l70.rope_theta, 10000.0);
  const auto mis = ModelConfig::from_file(models / "mistralai--Mistral-7B-Instruct-v0.3" / "config.json");
  EXPECT_EQ(mis.vocab_size, 32768);
  EXPECT_DOUBLE_EQ(mis.rope_theta, 1e6);
  EXPECT_FALSE(mis.sliding_window.has_value());
  EXPECT_FALSE(mis.attention_bias);
}

TEST(ModelConfig, DefaultsAndQwen2Bias) {
  json j = base_config();
  auto c = ModelConfig::from_json(j, "cfg.json");
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_FALSE(c.attention_bias);
  j["model_type"] = "qwen2";
  EXPECT_TRUE(ModelConfig::from_json(j, "cfg.json").attention_bias);
  j["model_type"] = "mistral";
  j["sliding_window"] = 4096;
  EXPECT_EQ(ModelConfig::from_json(j, "cfg.json").sliding_window, 4096);
}

TEST(ModelConfig, RopeScalingLlama3BothSpellings) {
  json j = base_config();
  j["rope_theta"] = 500000.0;
  j["rope_scaling"] = {{"rope_type", "llama3"},
                       {"factor", 8.0},
                       {"low_freq_factor", 1.0},
                       {"high_freq_factor", 4.0},
                       {"original_max_position_embeddings", 8192}};
  auto a = ModelConfig::from_json(j, "cfg.json");
  ASSERT_TRUE(a.rope_scaling.has_value());
  EXPECT_EQ(a.rope_scaling->original_max_position_embeddings, 8192);
  json k = base_config();
  k["rope_parameters"] = j["rope_scaling"];
  k["rope_parameters"]["rope_theta"] = 500000.0;
  auto b = ModelConfig::from_json(k, "cfg.json");
  EXPECT_DOUBLE_EQ(b.rope_theta, 500000.0);
  EXPECT_DOUBLE_EQ(b.rope_scaling->factor, 8.0);
}

TEST(ModelConfig, RefusesWhatWouldChangeTheComputation) {
  json j = base_config();
  j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
  expect_config_error(j, "linear");
  j = base_config();
  j["hidden_act"] = "gelu";
  expect_config_error(j, "hidden_act");
  j = base_config();
  j["mlp_bias"] = true;
  expect_config_error(j, "mlp_bias");
  j = base_config();
  j["model_type"] = "qwen2";
  j["use_sliding_window"] = true;
  expect_config_error(j, "use_sliding_window");
  j = base_config();
  j["quantization_config"] = "gptq";
  expect_config_error(j, "quantization_config: expected an object");
  j = base_config();
  j["is_encoder_decoder"] = true;
  expect_config_error(j, "is_encoder_decoder: true is not supported (only false)");
  j = base_config();
  j["use_mrope"] = false;  // not understood: refused even at a harmless-looking value
  expect_config_error(j, "use_mrope: unknown or unsupported config key");
  j = base_config();
  j["sliding_window"] = 16;  // not a llama key
  expect_config_error(j, "sliding_window");
  j = base_config();
  j.erase("hidden_size");
  expect_config_error(j, "hidden_size");
  j = base_config();
  j["num_key_value_heads"] = 3;
  expect_config_error(j, "num_key_value_heads");
  j = base_config();
  j["model_type"] = "gpt2";
  expect_config_error(j, "model_type");
  j = base_config();
  j["vocab_size"] = "100";
  expect_config_error(j, "vocab_size");
}

// Real configs as published (tests/fixtures/configs/README.md): every one loads, except those with
// a rope scaling the decoder does not implement, which are refused naming rope_scaling.
TEST(ModelConfig, RealConfigsFromTheHub) {
  int loaded = 0, refused = 0;
  for (const auto& e : std::filesystem::directory_iterator(sf::test::fixtures_dir() / "configs")) {
    if (e.path().extension() != ".json") continue;
    const std::string name = e.path().filename().string();
    if (name.rfind("refused--", 0) == 0) {
      try {
        ModelConfig::from_file(e.path());
        ADD_FAILURE() << name << " should be refused";
      } catch (const sf::ConfigError& err) {
        EXPECT_NE(std::string(err.what()).find(": rope_scaling"), std::string::npos) << err.what();
        ++refused;
      }
    } else {
      EXPECT_NO_THROW(ModelConfig::from_file(e.path())) << name;
      ++loaded;
    }
  }
  EXPECT_EQ(loaded, 11);
  EXPECT_EQ(refused, 2);
  const auto dir = sf::test::fixtures_dir() / "configs";
  const auto l31 = ModelConfig::from_file(dir / "meta-llama--Llama-3.1-8B-Instruct.json");
  EXPECT_EQ(l31.eos_token_ids, (std::vector<int64_t>{128001, 128008, 128009}));
  EXPECT_EQ(l31.rope_scaling->type, "llama3");
  EXPECT_EQ(ModelConfig::from_file(dir / "mistralai--Mistral-7B-v0.1.json").sliding_window, 4096);
  EXPECT_EQ(ModelConfig::from_file(dir / "meta-llama--Llama-3.2-1B-Instruct.json").head_dim, 64);
  EXPECT_TRUE(ModelConfig::from_file(dir / "Qwen--Qwen2.5-7B-Instruct.json").attention_bias);
  const auto gguf = ModelConfig::from_file(dir / "smollm2-135m-from-gguf-by-transformers-5.24.json");
  EXPECT_DOUBLE_EQ(gguf.rope_theta, 100000.0);
  EXPECT_EQ(gguf.pad_token_id, 2);
}

// Keys that describe without changing the computation load, at any value (ids, names, generate()
// defaults) or at their default (encoder-decoder switches); quantization_config loads because the
// loader itself takes only unquantized weights (test_load.cpp).
TEST(ModelConfig, AcceptsMetadataKeys) {
  json j = base_config();
  j["unk_token_id"] = 0;
  j["_model_name_or_path"] = "x";
  j["transformers.js_config"] = {{"kv_cache_dtype", {{"fp16", "float16"}}}};
  j["quantization_config"] = {{"quant_method", "bitsandbytes"}, {"load_in_4bit", true}};
  j["temperature"] = 0.7;
  j["max_length"] = 20;
  j["is_encoder_decoder"] = false;
  j["pruned_heads"] = json::object();
  EXPECT_NO_THROW(ModelConfig::from_json(j, "cfg.json"));
}

TEST(ModelConfig, ToJsonRoundTrips) {
  json j = base_config();
  j["model_type"] = "mistral";
  j["sliding_window"] = 8;
  j["eos_token_id"] = {2, 7};
  j["tie_word_embeddings"] = true;
  auto a = ModelConfig::from_json(j, "cfg.json");
  auto b = ModelConfig::from_json(a.to_json(), "round-trip");
  EXPECT_EQ(b.to_json(), a.to_json());
  EXPECT_EQ(b.eos_token_ids, (std::vector<int64_t>{2, 7}));
  EXPECT_EQ(b.sliding_window, 8);
  EXPECT_TRUE(b.tie_word_embeddings);
}

}  // namespace

// A config.json the JSON parser refuses for any reason (a syntax error, a number out of range as the
// safetensors fuzz target found in a header) is one ConfigError line naming the file.
namespace {
TEST(ModelConfig, UnparsableFilesAreOneConfigErrorLine) {
  const sf::test::TempDir dir("config");
  for (const std::string text : {R"({"hidden_size": 232E843})", R"({"hidden_size": )", "{\"a\": \"\xff\"}"}) {
    sf::test::write_file(dir / "config.json", text);
    try {
      sf::model::ModelConfig::from_file(dir / "config.json");
      ADD_FAILURE() << text << ": accepted";
    } catch (const sf::ConfigError& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find((dir / "config.json").string() + ": malformed JSON"), std::string::npos) << m;
      EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    }
  }
}
}  // namespace
