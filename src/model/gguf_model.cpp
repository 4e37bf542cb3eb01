#include "model/gguf_model.hpp"

#include <cmath>
#include <set>
#include <vector>

#include "core/error.hpp"

namespace sf::model {

namespace {

// `<arch>.` keys read below, and those that describe without changing the computation.
const std::set<std::string> kArchKeys = {
    "context_length",
    "embedding_length",
    "block_count",
    "feed_forward_length",
    "attention.head_count",
    "attention.head_count_kv",
    "attention.key_length",
    "attention.value_length",
    "attention.layer_norm_rms_epsilon",
    "rope.freq_base",
    "rope.dimension_count",
    "rope.scaling.type",
    "rope.scaling.factor",
    "vocab_size",
    "rope.scaling.original_context_length",  // only used by scaling types refused below
    "rope.scaling.finetuned",                // informational
    "tensor_data_layout",                    // how the source checkpoint was laid out (informational)
};

// GGUF block tensor -> Hugging Face module inside model.layers.N.
const std::map<std::string, std::string> kBlockTensors = {
    {"attn_norm", "input_layernorm"}, {"attn_q", "self_attn.q_proj"},      {"attn_k", "self_attn.k_proj"},
    {"attn_v", "self_attn.v_proj"},   {"attn_output", "self_attn.o_proj"}, {"ffn_norm", "post_attention_layernorm"},
    {"ffn_gate", "mlp.gate_proj"},    {"ffn_up", "mlp.up_proj"},           {"ffn_down", "mlp.down_proj"},
};

std::string q(const std::string& s) { return "'" + s + "'"; }

// The Hugging Face name of a GGUF tensor, or "" when it has none.
std::string hf_name(const std::string& g, int64_t layers) {
  if (g == "token_embd.weight") return "model.embed_tokens.weight";
  if (g == "output_norm.weight") return "model.norm.weight";
  if (g == "output.weight") return "lm_head.weight";
  if (g.rfind("blk.", 0) != 0) return "";
  const size_t dot = g.find('.', 4);
  if (dot == std::string::npos || dot == 4) return "";
  const std::string layer = g.substr(4, dot - 4);
  if (layer.find_first_not_of("0123456789") != std::string::npos || layer.size() > 9 ||
      (layer.size() > 1 && layer[0] == '0')) {
    return "";
  }
  if (std::stoll(layer) >= layers) return "";
  const std::string rest = g.substr(dot + 1);
  const size_t last = rest.rfind('.');
  if (last == std::string::npos) return "";
  const std::string suffix = rest.substr(last + 1);
  auto it = kBlockTensors.find(rest.substr(0, last));
  if (it == kBlockTensors.end() || (suffix != "weight" && suffix != "bias")) return "";
  return "model.layers." + layer + "." + it->second + "." + suffix;
}

// Undoes convert_hf_to_gguf.py's LlamaModel.permute: rows [heads, 2, D/2] were stored as
// [heads, D/2, 2] (interleaved rotary halves, GGML's rope layout).
torch::Tensor unpermute(const torch::Tensor& t, int64_t heads) {
  const auto shape = t.sizes().vec();
  const int64_t rest = t.numel() / shape[0];
  return t.reshape({heads, shape[0] / heads / 2, 2, rest}).transpose(1, 2).reshape(shape).contiguous();
}

// The per-dimension factors convert_hf_to_gguf.py writes for rope_type llama3 (all in float32 as it).
std::vector<double> llama3_factors(const RopeScaling& s, double theta, int64_t head_dim) {
  std::vector<double> out;
  const double low_wavelen = s.original_max_position_embeddings / s.low_freq_factor;
  const double high_wavelen = s.original_max_position_embeddings / s.high_freq_factor;
  for (int64_t i = 0; i < head_dim; i += 2) {
    const double freq = static_cast<float>(1.0 / std::pow(theta, static_cast<double>(i) / head_dim));
    const double wavelen = 2 * M_PI / freq;
    if (wavelen < high_wavelen) {
      out.push_back(1.0);
    } else if (wavelen > low_wavelen) {
      out.push_back(s.factor);
    } else {
      const double smooth =
          (s.original_max_position_embeddings / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
      out.push_back(1.0 / ((1 - smooth) / s.factor + smooth));
    }
  }
  return out;
}

// rope_scaling llama3 parameters that reproduce the stored factors. In x = 1/wavelength the
// smooth band is x in [low/L, high/L] (L = original_max_position_embeddings), where the
// interpolation weight smooth = (L x - low) / (high - low) is a line; below the band the factor is
// `factor`, above it 1. Only low/L and high/L enter the computation, so L is fixed at 8192 (the
// converter's default) and the band solved: a least-squares line through the dimensions inside it
// when there are two or more, else a band placed between its neighbours consistent with them.
// The result is checked against every stored factor.
RopeScaling recover_llama3(const std::vector<double>& f, double theta, int64_t head_dim, const std::string& where) {
  RopeScaling s;
  s.type = "llama3";
  s.original_max_position_embeddings = 8192;
  const double L = 8192;
  s.factor = *std::max_element(f.begin(), f.end());
  std::vector<double> xs, smooth;      // the band: 1 < f < factor
  double x_long = 0, x_short = 1e300;  // largest x scaled by `factor`, smallest x left unscaled
  for (size_t i = 0; i < f.size(); ++i) {
    const double freq = static_cast<float>(1.0 / std::pow(theta, static_cast<double>(2 * i) / head_dim));
    const double x = freq / (2 * M_PI);
    if (std::abs(f[i] - 1.0) < 1e-6) {
      x_short = std::min(x_short, x);
    } else if (std::abs(f[i] - s.factor) < 1e-6 * s.factor) {
      x_long = std::max(x_long, x);
    } else {
      xs.push_back(x);
      smooth.push_back((1 / f[i] - 1 / s.factor) / (1 - 1 / s.factor));
    }
  }
  double lo = 0, hi = 0;  // band edges low/L and high/L in x
  if (xs.size() >= 2) {
    double mx = 0, my = 0;
    for (size_t i = 0; i < xs.size(); ++i) {
      mx += xs[i] / static_cast<double>(xs.size());
      my += smooth[i] / static_cast<double>(xs.size());
    }
    double sxy = 0, sxx = 0;
    for (size_t i = 0; i < xs.size(); ++i) {
      sxy += (xs[i] - mx) * (smooth[i] - my);
      sxx += (xs[i] - mx) * (xs[i] - mx);
    }
    const double slope = sxx > 0 ? sxy / sxx : 0;  // = 1 / (hi - lo)
    if (slope > 0) {
      lo = mx - my / slope;
      hi = lo + 1 / slope;
    }
  } else if (xs.size() == 1) {
    // The line through (x0, s0) from (lo, 0) to (hi, 1), with lo above every scaled dimension and
    // hi below every unscaled one.
    const double x0 = xs[0], s0 = smooth[0];
    const double lo_min = std::max(x_long, x_short < 1e300 ? (x0 - s0 * x_short) / (1 - s0) : 0.0);
    lo = (lo_min + x0) / 2;
    hi = lo + (x0 - lo) / s0;
  } else {
    lo = x_short < 1e300 ? x_long + (x_short - x_long) / 3 : 2 * x_long;
    hi = x_short < 1e300 ? x_long + 2 * (x_short - x_long) / 3 : 4 * x_long;
  }
  s.low_freq_factor = lo * L;
  s.high_freq_factor = hi * L;
  if (!(s.low_freq_factor > 0) || !(s.high_freq_factor > s.low_freq_factor)) {
    throw ConfigError(where + ": the factors do not follow llama3 rope scaling");
  }
  const std::vector<double> back = llama3_factors(s, theta, head_dim);
  for (size_t i = 0; i < f.size(); ++i) {
    if (std::abs(back[i] - f[i]) > 1e-5 * f[i]) {
      throw ConfigError(where + ": factor " + std::to_string(i) + " (" + std::to_string(f[i]) +
                        ") does not follow llama3 rope scaling");
    }
  }
  return s;
}

ModelConfig read_config(const io::GgufFile& f) {
  const std::string file = f.path().string();
  auto fail = [&](const std::string& key, const std::string& msg) -> ConfigError {
    return ConfigError(file + ": metadata " + q(key) + ": " + msg);
  };
  const std::string arch = f.get_string("general.architecture");
  if (arch != "llama" && arch != "qwen2")
    throw fail("general.architecture", q(arch) + " is not supported (llama, qwen2)");
  const std::string a = arch + ".";
  for (const auto& [key, value] : f.metadata()) {
    if (key.rfind("general.", 0) == 0 || key.rfind("tokenizer.", 0) == 0 || key.rfind("quantize.", 0) == 0) continue;
    if (key == "split.count") {
      if (f.get_uint(key) > 1) throw fail(key, "split GGUF files are not supported; merge the parts first");
      continue;
    }
    if (key == "split.no" || key == "split.tensors.count") continue;
    if (key.rfind(a, 0) == 0 && kArchKeys.count(key.substr(a.size()))) continue;
    throw fail(key, "unknown or unsupported metadata key");
  }
  auto positive = [&](const std::string& key) {
    const uint64_t v = f.get_uint(a + key);
    if (v == 0 || v > static_cast<uint64_t>(INT32_MAX)) throw fail(a + key, std::to_string(v) + " is out of range");
    return static_cast<int64_t>(v);
  };
  auto optional_positive = [&](const std::string& key, int64_t fallback) {
    return f.find(a + key) ? positive(key) : fallback;
  };
  ModelConfig c;
  c.model_type = arch;
  c.max_position_embeddings = positive("context_length");
  c.hidden_size = positive("embedding_length");
  c.num_hidden_layers = positive("block_count");
  c.intermediate_size = positive("feed_forward_length");
  c.num_attention_heads = positive("attention.head_count");
  c.num_key_value_heads = optional_positive("attention.head_count_kv", c.num_attention_heads);
  if (c.num_attention_heads % c.num_key_value_heads != 0) {
    throw fail(a + "attention.head_count_kv", std::to_string(c.num_key_value_heads) +
                                                  " does not divide the head count " +
                                                  std::to_string(c.num_attention_heads));
  }
  if (f.find(a + "attention.key_length")) {
    c.head_dim = positive("attention.key_length");
  } else if (c.hidden_size % c.num_attention_heads == 0) {
    c.head_dim = c.hidden_size / c.num_attention_heads;
  } else {
    throw fail(a + "embedding_length", "not divisible by the head count and no attention.key_length given");
  }
  if (optional_positive("attention.value_length", c.head_dim) != c.head_dim) {
    throw fail(a + "attention.value_length", "differs from the key length");
  }
  if (c.head_dim % 2 != 0) throw fail(a + "attention.key_length", "the head size must be even for rotary embeddings");
  if (optional_positive("rope.dimension_count", c.head_dim) != c.head_dim) {
    throw fail(a + "rope.dimension_count", "partial rotary embeddings are not supported (must equal the head size)");
  }
  c.rms_norm_eps = f.get_float(a + "attention.layer_norm_rms_epsilon");
  if (!(c.rms_norm_eps > 0)) throw fail(a + "attention.layer_norm_rms_epsilon", "must be positive");
  c.rope_theta = f.find(a + "rope.freq_base") ? f.get_float(a + "rope.freq_base") : 10000.0;
  if (!(c.rope_theta > 0)) throw fail(a + "rope.freq_base", "must be positive");
  if (f.find(a + "rope.scaling.type")) {
    const std::string type = f.get_string(a + "rope.scaling.type");
    if (type != "none") throw fail(a + "rope.scaling.type", q(type) + " is not supported (none)");
  }
  if (f.find(a + "rope.scaling.factor")) {
    const double factor = f.get_float(a + "rope.scaling.factor");
    if (factor != 0.0 && factor != 1.0) throw fail(a + "rope.scaling.factor", "rope scaling is not supported");
  }
  const io::GgufTensorInfo* embd = f.find_tensor("token_embd.weight");
  if (f.find(a + "vocab_size")) {
    c.vocab_size = positive("vocab_size");
  } else if (f.find("tokenizer.ggml.tokens")) {
    c.vocab_size = static_cast<int64_t>(f.find("tokenizer.ggml.tokens")->items.size());
  } else if (embd && embd->dims.size() == 2) {
    c.vocab_size = embd->dims[1];
  } else {
    throw FormatError(file + ": no vocabulary size (" + a + "vocab_size, tokenizer.ggml.tokens or token_embd.weight)");
  }
  c.tie_word_embeddings = f.find_tensor("output.weight") == nullptr;
  c.attention_bias = arch == "qwen2" || f.find_tensor("blk.0.attn_q.bias") != nullptr;
  if (const io::GgufTensorInfo* rf = f.find_tensor("rope_freqs.weight")) {
    const std::string where = file + ": tensor 'rope_freqs.weight'";
    if (arch != "llama" || rf->dims.size() != 1 || rf->dims[0] != c.head_dim / 2) {
      throw ConfigError(where +
                        ": per-dimension rope factors are only supported as llama3 scaling of a llama model "
                        "([head_dim/2] values)");
    }
    const torch::Tensor t = f.tensor("rope_freqs.weight").to(torch::kFloat64).contiguous();
    const std::vector<double> factors(t.data_ptr<double>(), t.data_ptr<double>() + t.numel());
    for (double x : factors) {
      if (!(x >= 1.0) || !std::isfinite(x)) throw ConfigError(where + ": factors must be finite and at least 1");
    }
    if (*std::max_element(factors.begin(), factors.end()) > 1.0) {
      c.rope_scaling = recover_llama3(factors, c.rope_theta, c.head_dim, where);
    }
  }
  auto token = [&](const std::string& key) -> std::optional<int64_t> {
    if (!f.find(key)) return std::nullopt;
    const uint64_t id = f.get_uint(key);
    if (id >= static_cast<uint64_t>(c.vocab_size)) throw fail(key, "token id " + std::to_string(id) + " >= vocab size");
    return static_cast<int64_t>(id);
  };
  c.bos_token_id = token("tokenizer.ggml.bos_token_id");
  c.pad_token_id = token("tokenizer.ggml.padding_token_id");
  for (const char* key :
       {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"}) {
    const auto id = token(key);
    if (id && std::find(c.eos_token_ids.begin(), c.eos_token_ids.end(), *id) == c.eos_token_ids.end()) {
      c.eos_token_ids.push_back(*id);
    }
  }
  c.torch_dtype = "float32";  // weights are dequantized to float32
  return c;
}

}  // namespace

GgufModel GgufModel::open(const std::filesystem::path& file) {
  GgufModel m;
  m.file_ = std::make_shared<const io::GgufFile>(io::GgufFile::open(file));
  m.config_ = read_config(*m.file_);
  for (const auto& t : m.file_->tensors()) {
    if (t.name == "rope_freqs.weight") continue;  // read into the config above
    const std::string hf = hf_name(t.name, m.config_.num_hidden_layers);
    if (hf.empty()) {
      throw FormatError(file.string() + ": tensor " + q(t.name) + " has no Hugging Face counterpart in a " +
                        m.config_.model_type + " model");
    }
    m.gguf_names_[hf] = t.name;
  }
  return m;
}

torch::Tensor GgufModel::tensor(const std::string& hf) const {
  auto it = gguf_names_.find(hf);
  if (it == gguf_names_.end()) throw FormatError(file_->path().string() + ": required tensor " + q(hf) + " is missing");
  torch::Tensor t = file_->tensor(it->second).to(torch::kFloat32);
  if (config_.model_type == "llama") {
    const bool is_q = hf.find(".self_attn.q_proj.") != std::string::npos;
    const bool is_k = hf.find(".self_attn.k_proj.") != std::string::npos;
    if (is_q || is_k) {
      const int64_t heads = is_q ? config_.num_attention_heads : config_.num_key_value_heads;
      if (t.dim() < 1 || t.size(0) != heads * config_.head_dim) {
        throw FormatError(file_->path().string() + ": tensor " + q(it->second) + " has " +
                          std::to_string(t.dim() ? t.size(0) : 0) + " rows, expected " +
                          std::to_string(heads * config_.head_dim));
      }
      t = unpermute(t, heads);
    }
  }
  return t;
}

TensorReaders GgufModel::tensors() const {
  TensorReaders out;
  const auto self = std::make_shared<const GgufModel>(*this);  // shares the mapped file
  for (const auto& [hf, g] : gguf_names_) out[hf] = [self, name = hf] { return self->tensor(name); };
  return out;
}

}  // namespace sf::model
