#include "judge/roberta.hpp"

#include <cmath>
#include <limits>
#include <map>
#include <set>

#include "core/error.hpp"
#include "core/files.hpp"
#include "io/safetensors.hpp"

namespace sf::judge {

struct RobertaClassifier::Weights {
  struct Layer {
    torch::Tensor q_w, q_b, k_w, k_b, v_w, v_b;  // [H,H] [H]
    torch::Tensor ao_w, ao_b, ln1_w, ln1_b;      // attention output dense + LayerNorm
    torch::Tensor i_w, i_b, o_w, o_b;            // [I,H] [I] [H,I] [H]
    torch::Tensor ln2_w, ln2_b;
  };
  RobertaConfig config;
  torch::Device device = torch::kCPU;
  torch::Dtype dtype = torch::kFloat32;
  torch::Tensor word, position, token_type, emb_ln_w, emb_ln_b;
  std::vector<Layer> layers;
  torch::Tensor dense_w, dense_b, out_w, out_b;  // classifier head
};

namespace {

using json = nlohmann::json;

// Keys that do not change inference (dropout, initialisation, bookkeeping).
const std::set<std::string> kHarmless = {"_name_or_path",
                                         "tie_word_embeddings",  // a classifier has no output embedding
                                         "architectures",
                                         "attention_probs_dropout_prob",
                                         "hidden_dropout_prob",
                                         "classifier_dropout",
                                         "bos_token_id",
                                         "eos_token_id",
                                         "initializer_range",
                                         "torch_dtype",
                                         "dtype",
                                         "transformers_version",
                                         "use_cache",
                                         "label2id",
                                         "gradient_checkpointing",
                                         "output_past",
                                         "tokenizer_class",
                                         "finetuning_task",
                                         "return_dict",
                                         "output_attentions",
                                         "output_hidden_states",
                                         "torchscript",
                                         "chunk_size_feed_forward"};

int64_t positive_int(const json& j, const std::string& key, const std::string& src) {
  if (!j.contains(key)) throw ConfigError(src + ": " + key + ": required key is missing");
  const json& v = j.at(key);
  if (!v.is_number_integer() || v.get<int64_t>() <= 0)
    throw ConfigError(src + ": " + key + ": expected a positive integer, got " + v.dump());
  return v.get<int64_t>();
}

// A key that must be absent or have one of the `allowed` values.
void only(const json& j, const std::string& key, const std::vector<json>& allowed, const std::string& src) {
  if (!j.contains(key)) return;
  for (const auto& a : allowed)
    if (j.at(key) == a) return;
  throw ConfigError(src + ": " + key + ": " + j.at(key).dump() + " is not supported");
}

std::string shape_str(torch::IntArrayRef s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? "," : "") + std::to_string(s[i]);
  return out + "]";
}

torch::Tensor layer_norm(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b, double eps) {
  return torch::layer_norm(x.to(torch::kFloat32), {x.size(-1)}, w.to(torch::kFloat32), b.to(torch::kFloat32), eps)
      .to(x.scalar_type());
}

}  // namespace

RobertaConfig RobertaConfig::from_file(const std::filesystem::path& config_json) {
  const json j = read_json_file(config_json);
  const std::string src = config_json.string();
  if (!j.is_object()) throw FormatError(src + ": expected a JSON object");
  if (!j.contains("model_type") || j.at("model_type") != "roberta")
    throw ConfigError(src + ": model_type: " + (j.contains("model_type") ? j.at("model_type").dump() : "missing") +
                      " (a classifier judge is a roberta model)");
  if (j.contains("architectures")) {
    const json& a = j.at("architectures");
    if (!a.is_array() || std::find(a.begin(), a.end(), json("RobertaForSequenceClassification")) == a.end())
      throw ConfigError(src + ": architectures: " + a.dump() + " (expected RobertaForSequenceClassification)");
  }
  RobertaConfig c;
  c.vocab_size = positive_int(j, "vocab_size", src);
  c.hidden_size = positive_int(j, "hidden_size", src);
  c.num_hidden_layers = positive_int(j, "num_hidden_layers", src);
  c.num_attention_heads = positive_int(j, "num_attention_heads", src);
  c.intermediate_size = positive_int(j, "intermediate_size", src);
  c.max_position_embeddings = positive_int(j, "max_position_embeddings", src);
  c.type_vocab_size = positive_int(j, "type_vocab_size", src);
  if (c.hidden_size % c.num_attention_heads != 0)
    throw ConfigError(src + ": num_attention_heads: must divide hidden_size");
  if (j.contains("layer_norm_eps")) {
    if (!j.at("layer_norm_eps").is_number()) throw ConfigError(src + ": layer_norm_eps: expected a number");
    c.layer_norm_eps = j.at("layer_norm_eps").get<double>();
  }
  if (!j.contains("pad_token_id") || !j.at("pad_token_id").is_number_integer() ||
      j.at("pad_token_id").get<int64_t>() < 0 || j.at("pad_token_id").get<int64_t>() >= c.vocab_size)
    throw ConfigError(src + ": pad_token_id: required, an id in the vocabulary (positions count from it)");
  c.pad_token_id = j.at("pad_token_id").get<int64_t>();
  if (c.max_tokens() < 3) throw ConfigError(src + ": max_position_embeddings: too small for pad_token_id");
  only(j, "hidden_act", {"gelu"}, src);
  only(j, "position_embedding_type", {"absolute"}, src);
  only(j, "is_decoder", {false}, src);
  only(j, "add_cross_attention", {false}, src);
  only(j, "problem_type", {nullptr, "single_label_classification"}, src);
  if (j.contains("id2label")) {
    const json& m = j.at("id2label");
    if (!m.is_object()) throw ConfigError(src + ": id2label: expected an object");
    std::map<int64_t, std::string> by_id;
    for (auto it = m.begin(); it != m.end(); ++it) {
      int64_t id = -1;
      try {
        size_t used = 0;
        id = std::stoll(it.key(), &used);
        if (used != it.key().size()) id = -1;
      } catch (const std::exception&) {
        id = -1;
      }
      if (id < 0 || !it.value().is_string()) throw ConfigError(src + ": id2label." + it.key() + ": malformed");
      by_id[id] = it.value().get<std::string>();
    }
    for (int64_t i = 0; i < static_cast<int64_t>(by_id.size()); ++i) {
      if (!by_id.count(i)) throw ConfigError(src + ": id2label: ids must be 0.." + std::to_string(by_id.size() - 1));
      c.labels.push_back(by_id[i]);
    }
    c.num_labels = static_cast<int64_t>(c.labels.size());
  }
  if (j.contains("num_labels")) {
    const int64_t n = positive_int(j, "num_labels", src);
    if (j.contains("id2label") && n != c.num_labels)
      throw ConfigError(src + ": num_labels " + std::to_string(n) + " disagrees with id2label");
    c.num_labels = n;
  }
  if (c.labels.empty())
    for (int64_t i = 0; i < c.num_labels; ++i) c.labels.push_back("LABEL_" + std::to_string(i));
  static const std::set<std::string> kRead = {"model_type",
                                              "vocab_size",
                                              "hidden_size",
                                              "num_hidden_layers",
                                              "num_attention_heads",
                                              "intermediate_size",
                                              "max_position_embeddings",
                                              "type_vocab_size",
                                              "layer_norm_eps",
                                              "pad_token_id",
                                              "hidden_act",
                                              "position_embedding_type",
                                              "is_decoder",
                                              "add_cross_attention",
                                              "problem_type",
                                              "id2label",
                                              "num_labels"};
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (!kRead.count(it.key()) && !kHarmless.count(it.key()))
      throw ConfigError(src + ": " + it.key() + ": unknown or unsupported config key");
  }
  return c;
}

RobertaClassifier RobertaClassifier::load(const std::filesystem::path& dir, torch::Device device, torch::Dtype dtype) {
  torch::NoGradGuard no_grad;
  auto w = std::make_shared<Weights>();
  w->config = RobertaConfig::from_file(dir / "config.json");
  w->device = device;
  w->dtype = dtype;
  const RobertaConfig& c = w->config;
  const auto file = dir / "model.safetensors";
  if (!std::filesystem::exists(file))
    throw IoError(file.string() + ": not found (a classifier judge is read from model.safetensors)");
  const io::SafetensorsFile st = io::SafetensorsFile::open(file);
  const int64_t H = c.hidden_size, I = c.intermediate_size;
  std::set<std::string> used;
  auto take = [&](const std::string& name, std::vector<int64_t> shape) {
    if (!st.contains(name)) throw FormatError(file.string() + ": required tensor '" + name + "' is missing");
    const io::TensorInfo& info = st.info(name);
    if (info.dtype != "F32" && info.dtype != "F16" && info.dtype != "BF16")
      throw FormatError(file.string() + ": tensor '" + name + "' has dtype " + info.dtype +
                        " (expected F32, F16 or BF16)");
    if (info.shape != shape)
      throw FormatError(file.string() + ": tensor '" + name + "' has shape " + shape_str(info.shape) + ", expected " +
                        shape_str(shape));
    used.insert(name);
    return st.tensor(name).to(device, dtype);
  };
  const std::string e = "roberta.embeddings.";
  w->word = take(e + "word_embeddings.weight", {c.vocab_size, H});
  w->position = take(e + "position_embeddings.weight", {c.max_position_embeddings, H});
  w->token_type = take(e + "token_type_embeddings.weight", {c.type_vocab_size, H});
  w->emb_ln_w = take(e + "LayerNorm.weight", {H});
  w->emb_ln_b = take(e + "LayerNorm.bias", {H});
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = "roberta.encoder.layer." + std::to_string(i) + ".";
    Weights::Layer l;
    l.q_w = take(p + "attention.self.query.weight", {H, H});
    l.q_b = take(p + "attention.self.query.bias", {H});
    l.k_w = take(p + "attention.self.key.weight", {H, H});
    l.k_b = take(p + "attention.self.key.bias", {H});
    l.v_w = take(p + "attention.self.value.weight", {H, H});
    l.v_b = take(p + "attention.self.value.bias", {H});
    l.ao_w = take(p + "attention.output.dense.weight", {H, H});
    l.ao_b = take(p + "attention.output.dense.bias", {H});
    l.ln1_w = take(p + "attention.output.LayerNorm.weight", {H});
    l.ln1_b = take(p + "attention.output.LayerNorm.bias", {H});
    l.i_w = take(p + "intermediate.dense.weight", {I, H});
    l.i_b = take(p + "intermediate.dense.bias", {I});
    l.o_w = take(p + "output.dense.weight", {H, I});
    l.o_b = take(p + "output.dense.bias", {H});
    l.ln2_w = take(p + "output.LayerNorm.weight", {H});
    l.ln2_b = take(p + "output.LayerNorm.bias", {H});
    w->layers.push_back(std::move(l));
  }
  w->dense_w = take("classifier.dense.weight", {H, H});
  w->dense_b = take("classifier.dense.bias", {H});
  w->out_w = take("classifier.out_proj.weight", {c.num_labels, H});
  w->out_b = take("classifier.out_proj.bias", {c.num_labels});
  for (const auto& t : st.tensors()) {
    // transformers < 4.31 saved the position_ids buffer; it is recomputed from the ids.
    if (t.name == "roberta.embeddings.position_ids") continue;
    if (!used.count(t.name))
      throw FormatError(file.string() + ": tensor '" + t.name + "' is not used by RobertaForSequenceClassification");
  }
  RobertaClassifier m;
  m.w_ = std::move(w);
  return m;
}

torch::Tensor RobertaClassifier::forward(const torch::Tensor& ids, const torch::Tensor& attention_mask) const {
  const Weights& w = *w_;
  const RobertaConfig& c = w.config;
  if (ids.dim() != 2 || attention_mask.sizes() != ids.sizes())
    throw ShapeError("roberta: ids and attention_mask must both be [B,T], got " + shape_str(ids.sizes()) + " and " +
                     shape_str(attention_mask.sizes()));
  const int64_t B = ids.size(0), T = ids.size(1), H = c.hidden_size, NH = c.num_attention_heads, D = H / NH;
  if (T > c.max_tokens())
    throw ShapeError("roberta: " + std::to_string(T) + " tokens, the positions cover " +
                     std::to_string(c.max_tokens()));
  const torch::Tensor input = ids.to(w.device, torch::kInt64);
  if (input.numel() > 0 && (input.min().item<int64_t>() < 0 || input.max().item<int64_t>() >= c.vocab_size))
    throw ShapeError("roberta: a token id is outside the vocabulary [0, " + std::to_string(c.vocab_size) + ")");
  const torch::Tensor real = input.ne(c.pad_token_id).to(torch::kInt64);   // [B,T]
  const torch::Tensor positions = real.cumsum(1) * real + c.pad_token_id;  // [B,T]
  torch::Tensor x = torch::embedding(w.word, input) + torch::embedding(w.position, positions) +
                    w.token_type[0].view({1, 1, H});  // [B,T,H]
  x = layer_norm(x, w.emb_ln_w, w.emb_ln_b, c.layer_norm_eps);
  const torch::Tensor blocked = attention_mask.to(w.device).eq(0).view({B, 1, 1, T});  // keys that are padding
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  for (const auto& l : w.layers) {
    auto heads = [&](const torch::Tensor& wt, const torch::Tensor& b) {
      return torch::linear(x, wt, b).view({B, T, NH, D}).transpose(1, 2);  // [B,NH,T,D]
    };
    const torch::Tensor q = heads(l.q_w, l.q_b), k = heads(l.k_w, l.k_b), v = heads(l.v_w, l.v_b);
    torch::Tensor scores = torch::matmul(q, k.transpose(-1, -2)).mul_(scale).to(torch::kFloat32);  // [B,NH,T,T]
    scores = scores.masked_fill_(blocked, std::numeric_limits<float>::lowest());
    const torch::Tensor probs = torch::softmax(scores, -1).to(w.dtype);
    const torch::Tensor ctx = torch::matmul(probs, v).transpose(1, 2).reshape({B, T, H});  // [B,T,H]
    x = layer_norm(x + torch::linear(ctx, l.ao_w, l.ao_b), l.ln1_w, l.ln1_b, c.layer_norm_eps);
    const torch::Tensor inner = torch::gelu(torch::linear(x, l.i_w, l.i_b));  // [B,T,I]
    x = layer_norm(x + torch::linear(inner, l.o_w, l.o_b), l.ln2_w, l.ln2_b, c.layer_norm_eps);
  }
  const torch::Tensor cls = x.select(1, 0);                                            // [B,H]
  const torch::Tensor pooled = torch::tanh(torch::linear(cls, w.dense_w, w.dense_b));  // [B,H]
  return torch::linear(pooled, w.out_w, w.out_b).to(torch::kFloat32);                  // [B,C]
}

const RobertaConfig& RobertaClassifier::config() const { return w_->config; }
torch::Device RobertaClassifier::device() const { return w_->device; }

}  // namespace sf::judge
