#include "model/config.hpp"

#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "core/error.hpp"
#include "core/files.hpp"

namespace sf::model {

namespace {

using json = nlohmann::json;

// Keys that never change the computation of the forward pass (bookkeeping, training-only or
// generation defaults). Anything not read below and not listed here is rejected.
const std::set<std::string> kHarmlessKeys = {
    "_name_or_path",
    "architectures",
    "transformers_version",
    "use_cache",
    "initializer_range",
    "attention_dropout",  // dropout: inference never applies it; training here is of heads only
    "pretraining_tp",     // slices the same matmuls; mathematically identical
    "is_llama_config",
    "transformers.js_config",
    "tokenizer_class",
    "chunk_size_feed_forward",
    "id2label",
    "label2id",
    "output_attentions",
    "output_hidden_states",
    "problem_type",
    "return_dict",
    "torchscript",
    "_attn_implementation_autoset",
    "max_window_layers",  // qwen2: only used with use_sliding_window
    // Ids of tokens the decoder never treats specially, names and bookkeeping.
    "unk_token_id",
    "sep_token_id",
    "cls_token_id",
    "mask_token_id",
    "decoder_start_token_id",
    "_model_name_or_path",  // written by transformers' GGUF loader
    "_commit_hash",
    "use_bfloat16",  // a storage hint; the dtype used is the one asked for
    "tf_legacy_loss",
    "finetuning_task",
    "prefix",
    "task_specific_params",
    // Defaults of transformers' generate(), written into config.json by older transformers. Our
    // generation settings come from the job and the task, never from config.json.
    "max_length",
    "min_length",
    "do_sample",
    "early_stopping",
    "num_beams",
    "num_beam_groups",
    "diversity_penalty",
    "temperature",
    "top_k",
    "top_p",
    "typical_p",
    "repetition_penalty",
    "length_penalty",
    "no_repeat_ngram_size",
    "encoder_no_repeat_ngram_size",
    "bad_words_ids",
    "num_return_sequences",
    "output_scores",
    "return_dict_in_generate",
    "forced_bos_token_id",
    "forced_eos_token_id",
    "remove_invalid_values",
    "exponential_decay_length_penalty",
    "suppress_tokens",
    "begin_suppress_tokens",
};

// Keys harmless only at their default value (an encoder-decoder or cross-attention setting would
// change the model; these architectures are decoder-only).
const std::map<std::string, nlohmann::json> kDefaultOnlyKeys = {
    {"is_encoder_decoder", false},
    {"add_cross_attention", false},
    {"tie_encoder_decoder", false},
    {"cross_attention_hidden_size", nullptr},
    {"pruned_heads", nlohmann::json::object()},
    {"is_decoder", false},
};

class Reader {
 public:
  Reader(const json& j, std::string source) : j_(j), source_(std::move(source)) {}

  std::string where(const std::string& key) const { return source_ + ": " + key; }

  bool present(const std::string& key) {
    used_.insert(key);
    return j_.contains(key) && !j_.at(key).is_null();
  }
  const json& at(const std::string& key) const { return j_.at(key); }

  int64_t positive_int(const std::string& key) {
    if (!present(key)) throw ConfigError(where(key) + ": required key is missing");
    return positive_int_value(key, j_.at(key));
  }
  std::optional<int64_t> optional_int(const std::string& key) {
    if (!present(key)) return std::nullopt;
    const json& v = j_.at(key);
    if (!v.is_number_integer()) throw ConfigError(where(key) + ": expected an integer, got " + v.dump());
    return v.get<int64_t>();
  }
  int64_t positive_int_value(const std::string& key, const json& v) const {
    if (!v.is_number_integer() || v.get<int64_t>() <= 0) {
      throw ConfigError(where(key) + ": expected a positive integer, got " + v.dump());
    }
    return v.get<int64_t>();
  }
  double number(const std::string& key, double fallback) {
    if (!present(key)) return fallback;
    const json& v = j_.at(key);
    if (!v.is_number()) throw ConfigError(where(key) + ": expected a number, got " + v.dump());
    return v.get<double>();
  }
  bool boolean(const std::string& key, bool fallback) {
    if (!present(key)) return fallback;
    const json& v = j_.at(key);
    if (!v.is_boolean()) throw ConfigError(where(key) + ": expected true or false, got " + v.dump());
    return v.get<bool>();
  }
  std::string string(const std::string& key, const std::string& fallback) {
    if (!present(key)) return fallback;
    const json& v = j_.at(key);
    if (!v.is_string()) throw ConfigError(where(key) + ": expected a string, got " + v.dump());
    return v.get<std::string>();
  }

  void finish() const {
    for (auto it = j_.begin(); it != j_.end(); ++it) {
      if (used_.count(it.key()) || kHarmlessKeys.count(it.key())) continue;
      auto d = kDefaultOnlyKeys.find(it.key());
      if (d == kDefaultOnlyKeys.end()) throw ConfigError(where(it.key()) + ": unknown or unsupported config key");
      if (it.value() != d->second) {
        throw ConfigError(where(it.key()) + ": " + it.value().dump() + " is not supported (only " + d->second.dump() +
                          ")");
      }
    }
  }

 private:
  const json& j_;
  std::string source_;
  std::set<std::string> used_;
};

// rope_scaling (transformers 4) or rope_parameters (transformers 5, which also carries rope_theta).
std::optional<RopeScaling> parse_rope(const json& r, const std::string& where, double* theta) {
  if (!r.is_object()) throw ConfigError(where + ": expected an object or null, got " + r.dump());
  std::string type;
  if (r.contains("rope_type")) {
    if (!r["rope_type"].is_string()) throw ConfigError(where + ".rope_type: expected a string");
    type = r["rope_type"].get<std::string>();
  } else if (r.contains("type")) {
    if (!r["type"].is_string()) throw ConfigError(where + ".type: expected a string");
    type = r["type"].get<std::string>();
  } else {
    throw ConfigError(where + ": rope_type is missing");
  }
  std::set<std::string> allowed = {"rope_type", "type", "rope_theta"};
  if (r.contains("rope_theta")) {
    if (!r["rope_theta"].is_number()) throw ConfigError(where + ".rope_theta: expected a number");
    *theta = r["rope_theta"].get<double>();
  }
  std::optional<RopeScaling> out;
  if (type == "llama3") {
    RopeScaling s;
    s.type = type;
    auto num = [&](const char* k) {
      allowed.insert(k);
      if (!r.contains(k) || !r[k].is_number()) throw ConfigError(where + "." + k + ": required number is missing");
      return r[k].get<double>();
    };
    s.factor = num("factor");
    s.low_freq_factor = num("low_freq_factor");
    s.high_freq_factor = num("high_freq_factor");
    allowed.insert("original_max_position_embeddings");
    if (!r.contains("original_max_position_embeddings") || !r["original_max_position_embeddings"].is_number_integer()) {
      throw ConfigError(where + ".original_max_position_embeddings: required integer is missing");
    }
    s.original_max_position_embeddings = r["original_max_position_embeddings"].get<int64_t>();
    if (s.factor <= 0 || s.low_freq_factor <= 0 || s.high_freq_factor <= s.low_freq_factor ||
        s.original_max_position_embeddings <= 0) {
      throw ConfigError(where + ": llama3 factors must be positive with high_freq_factor > low_freq_factor");
    }
    out = s;
  } else if (type != "default") {
    throw ConfigError(where + ".rope_type: '" + type + "' is not supported (only llama3 and default)");
  }
  for (auto it = r.begin(); it != r.end(); ++it) {
    if (!allowed.count(it.key())) throw ConfigError(where + "." + it.key() + ": unknown or unsupported key");
  }
  return out;
}

}  // namespace

ModelConfig ModelConfig::from_json(const json& j, const std::string& source) {
  if (!j.is_object()) throw ConfigError(source + ": config must be a JSON object");
  Reader r(j, source);
  ModelConfig c;
  c.model_type = r.string("model_type", "");
  if (c.model_type != "llama" && c.model_type != "mistral" && c.model_type != "qwen2") {
    throw ConfigError(r.where("model_type") + ": '" + c.model_type + "' is not supported (llama, mistral, qwen2)");
  }
  const bool llama = c.model_type == "llama", mistral = c.model_type == "mistral", qwen2 = c.model_type == "qwen2";
  c.vocab_size = r.positive_int("vocab_size");
  c.hidden_size = r.positive_int("hidden_size");
  c.intermediate_size = r.positive_int("intermediate_size");
  c.num_hidden_layers = r.positive_int("num_hidden_layers");
  c.num_attention_heads = r.positive_int("num_attention_heads");
  c.num_key_value_heads =
      r.present("num_key_value_heads") ? r.positive_int("num_key_value_heads") : c.num_attention_heads;
  if (c.num_attention_heads % c.num_key_value_heads != 0) {
    throw ConfigError(r.where("num_key_value_heads") + ": " + std::to_string(c.num_key_value_heads) +
                      " does not divide num_attention_heads " + std::to_string(c.num_attention_heads));
  }
  if (r.present("head_dim")) {
    c.head_dim = r.positive_int("head_dim");
  } else {
    if (c.hidden_size % c.num_attention_heads != 0) {
      throw ConfigError(r.where("hidden_size") + ": not divisible by num_attention_heads and no head_dim given");
    }
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  if (c.head_dim % 2 != 0) throw ConfigError(r.where("head_dim") + ": must be even for rotary embeddings");
  const int64_t default_max_pos = llama ? 2048 : mistral ? 131072 : 32768;
  c.max_position_embeddings =
      r.present("max_position_embeddings") ? r.positive_int("max_position_embeddings") : default_max_pos;
  c.rms_norm_eps = r.number("rms_norm_eps", 1e-6);
  if (c.rms_norm_eps <= 0) throw ConfigError(r.where("rms_norm_eps") + ": must be positive");
  c.rope_theta = r.number("rope_theta", 10000.0);
  if (r.present("rope_scaling"))
    c.rope_scaling = parse_rope(r.at("rope_scaling"), r.where("rope_scaling"), &c.rope_theta);
  if (r.present("rope_parameters")) {
    if (c.rope_scaling) throw ConfigError(r.where("rope_parameters") + ": given together with rope_scaling");
    c.rope_scaling = parse_rope(r.at("rope_parameters"), r.where("rope_parameters"), &c.rope_theta);
  }
  if (c.rope_theta <= 0) throw ConfigError(r.where("rope_theta") + ": must be positive");
  if (r.boolean("rope_interleaved", false)) throw ConfigError(r.where("rope_interleaved") + ": true is not supported");
  c.tie_word_embeddings = r.boolean("tie_word_embeddings", false);
  const std::string act = r.string("hidden_act", "silu");
  if (act != "silu") throw ConfigError(r.where("hidden_act") + ": '" + act + "' is not supported (only silu)");

  if (llama) {
    c.attention_bias = r.boolean("attention_bias", false);
    if (r.boolean("mlp_bias", false)) throw ConfigError(r.where("mlp_bias") + ": true is not supported");
  } else if (qwen2) {
    c.attention_bias = true;  // Qwen2 always has q/k/v biases
  }
  if (mistral) {
    if (r.present("sliding_window")) c.sliding_window = r.positive_int("sliding_window");
  } else if (qwen2) {
    r.present("sliding_window");  // only used with use_sliding_window
    if (r.boolean("use_sliding_window", false)) {
      throw ConfigError(r.where("use_sliding_window") + ": true is not supported for qwen2");
    }
  }
  if (r.present("layer_types")) {
    const json& lt = r.at("layer_types");
    const std::string want = c.sliding_window ? "sliding_attention" : "full_attention";
    if (!lt.is_array() || static_cast<int64_t>(lt.size()) != c.num_hidden_layers) {
      throw ConfigError(r.where("layer_types") + ": expected one entry per layer");
    }
    for (const auto& t : lt) {
      if (t != want) throw ConfigError(r.where("layer_types") + ": only all '" + want + "' is supported here");
    }
  }
  c.bos_token_id = r.optional_int("bos_token_id");
  if (r.present("eos_token_id")) {
    const json& e = r.at("eos_token_id");
    if (e.is_number_integer()) {
      c.eos_token_ids.push_back(e.get<int64_t>());
    } else if (e.is_array()) {
      for (const auto& x : e) {
        if (!x.is_number_integer()) throw ConfigError(r.where("eos_token_id") + ": expected integers");
        c.eos_token_ids.push_back(x.get<int64_t>());
      }
    } else {
      throw ConfigError(r.where("eos_token_id") + ": expected an integer or a list of integers");
    }
  }
  c.pad_token_id = r.optional_int("pad_token_id");
  c.torch_dtype = r.string("torch_dtype", r.string("dtype", "float32"));
  // quantization_config: accepted, because the weights are used exactly as stored and the loader
  // takes only F32/F16/BF16 tensors under their plain names. A checkpoint whose weights really are
  // quantized (GPTQ/AWQ qweight and scales, bitsandbytes int8/uint8 with absmax, FP8 with
  // weight_scale) still fails there, naming the tensor; an export whose weights were dequantized
  // (the config left behind) loads and computes with those weights.
  if (r.present("quantization_config") && !r.at("quantization_config").is_object()) {
    throw ConfigError(r.where("quantization_config") + ": expected an object");
  }
  r.finish();
  return c;
}

ModelConfig ModelConfig::from_file(const std::filesystem::path& config_json) {
  std::ifstream in(config_json, std::ios::binary);
  if (!in) throw IoError(config_json.string() + ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  const json j = parse_json_text<ConfigError>(ss.str(), config_json.string());
  return from_json(j, config_json.string());
}

json ModelConfig::to_json() const {
  json j;
  j["architectures"] = {model_type == "llama"     ? "LlamaForCausalLM"
                        : model_type == "mistral" ? "MistralForCausalLM"
                                                  : "Qwen2ForCausalLM"};
  j["model_type"] = model_type;
  j["vocab_size"] = vocab_size;
  j["hidden_size"] = hidden_size;
  j["intermediate_size"] = intermediate_size;
  j["num_hidden_layers"] = num_hidden_layers;
  j["num_attention_heads"] = num_attention_heads;
  j["num_key_value_heads"] = num_key_value_heads;
  j["head_dim"] = head_dim;
  j["max_position_embeddings"] = max_position_embeddings;
  j["rms_norm_eps"] = rms_norm_eps;
  j["rope_theta"] = rope_theta;
  if (rope_scaling) {
    j["rope_scaling"] = {{"rope_type", rope_scaling->type},
                         {"factor", rope_scaling->factor},
                         {"low_freq_factor", rope_scaling->low_freq_factor},
                         {"high_freq_factor", rope_scaling->high_freq_factor},
                         {"original_max_position_embeddings", rope_scaling->original_max_position_embeddings}};
  } else {
    j["rope_scaling"] = nullptr;
  }
  j["hidden_act"] = "silu";
  j["tie_word_embeddings"] = tie_word_embeddings;
  if (model_type == "llama") {
    j["attention_bias"] = attention_bias;
    j["mlp_bias"] = false;
  }
  if (model_type == "mistral") j["sliding_window"] = sliding_window ? json(*sliding_window) : json(nullptr);
  if (model_type == "qwen2") j["use_sliding_window"] = false;
  j["bos_token_id"] = bos_token_id ? json(*bos_token_id) : json(nullptr);
  if (eos_token_ids.empty()) {
    j["eos_token_id"] = nullptr;
  } else if (eos_token_ids.size() == 1) {
    j["eos_token_id"] = eos_token_ids[0];
  } else {
    j["eos_token_id"] = eos_token_ids;
  }
  j["pad_token_id"] = pad_token_id ? json(*pad_token_id) : json(nullptr);
  j["torch_dtype"] = torch_dtype;
  j["use_cache"] = true;
  return j;
}

}  // namespace sf::model
