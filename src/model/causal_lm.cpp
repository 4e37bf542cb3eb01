#include "model/causal_lm.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <set>

#include "core/atomic_file.hpp"
#include "core/error.hpp"
#include "core/heap.hpp"
#include "io/gguf.hpp"
#include "io/safetensors.hpp"
#include "kernels/amx_gemm.hpp"
#include "kernels/attention.hpp"
#include "kernels/rms_norm.hpp"
#include "kernels/rope.hpp"
#include "kernels/small_gemm.hpp"
#include "kernels/widened_gemm.hpp"
#include "model/gguf_model.hpp"
#include "model/shard.hpp"
#include "model/weight_arena.hpp"

namespace sf::model {

struct CausalLM::Weights {
  struct Layer {
    torch::Tensor q, k, v, o;              // [H*D,Hd] [KV*D,Hd] [KV*D,Hd] [Hd,H*D]
    torch::Tensor q_bias, k_bias, v_bias;  // qwen2 / attention_bias only
    torch::Tensor gate, up, down;          // [I,Hd] [I,Hd] [Hd,I]
    torch::Tensor input_norm, post_norm;   // [Hd]
    // The matrices in the tile unit's layout, for the products (bf16 weights on a CPU with AMX-BF16;
    // kernels/amx_gemm.hpp); undefined tiles otherwise. Made once at load: weights that train
    // require gradients, and project() reads the matrices themselves then.
    kernels::AmxWeight q_tiles, k_tiles, v_tiles, o_tiles, gate_tiles, up_tiles, down_tiles;
  };
  // Shapes are those of one rank's slices (model/shard.hpp): H, KV, I and V below are this
  // rank's heads, KV heads, MLP rows and vocabulary ids; the whole model when not split.
  ModelConfig config;
  torch::Device device = torch::kCPU;
  torch::Dtype dtype = torch::kFloat32;  // of the weight matrices (LoadOptions::dtype)
  // Of the activations, the KV cache, norm weights and biases: `dtype`, except bf16 on a CPU, where
  // float32 (only the matrix products read bf16 operands; see LoadOptions).
  torch::Dtype act_dtype() const { return device.is_cpu() && dtype == torch::kBFloat16 ? torch::kFloat32 : dtype; }
  dist::Comm group;  // the tensor group
  ModelShard shard;
  VocabParallel vocab;
  torch::Tensor embed;  // [V,Hd]
  std::vector<Layer> layers;
  torch::Tensor norm;     // [Hd]
  torch::Tensor lm_head;  // [V,Hd]; the same tensor as embed when tied
  kernels::AmxWeight lm_head_tiles;
  torch::Tensor inv_freq;  // [D/2] float32 on device
};

namespace {

using Weights = CausalLM::Weights;

enum class Init { kNormal, kOnes, kZeros };

struct Slot {
  std::string name;
  std::vector<int64_t> shape;  // of the whole tensor, as stored
  torch::Tensor* tensor;
  Init init;
  int64_t dim = -1;        // the dimension split over the tensor group; -1: replicated
  dist::Range range = {};  // this rank's part of `dim`
};

// Every parameter by its Hugging Face name, in a stable order. lm_head only when untied.
std::vector<Slot> slots(Weights& w) {
  const ModelConfig& c = w.config;
  const ModelShard& sh = w.shard;
  const int64_t hd = c.hidden_size, D = c.head_dim, q_out = c.num_attention_heads * D,
                kv_out = c.num_key_value_heads * D, inter = c.intermediate_size;
  const bool split = sh.size > 1;
  const int64_t rows = 0, cols = 1, none = -1;
  const auto dim = [&](int64_t d) { return split ? d : none; };
  const dist::Range q_part{sh.heads.begin * D, sh.heads.end * D}, kv_part{sh.kv_heads.begin * D, sh.kv_heads.end * D};
  std::vector<Slot> s;
  s.push_back({"model.embed_tokens.weight", {c.vocab_size, hd}, &w.embed, Init::kNormal, dim(rows), sh.vocab});
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    auto& l = w.layers[static_cast<size_t>(i)];
    const std::string p = "model.layers." + std::to_string(i) + ".";
    s.push_back({p + "self_attn.q_proj.weight", {q_out, hd}, &l.q, Init::kNormal, dim(rows), q_part});
    if (c.attention_bias)
      s.push_back({p + "self_attn.q_proj.bias", {q_out}, &l.q_bias, Init::kZeros, dim(rows), q_part});
    s.push_back({p + "self_attn.k_proj.weight", {kv_out, hd}, &l.k, Init::kNormal, dim(rows), kv_part});
    if (c.attention_bias)
      s.push_back({p + "self_attn.k_proj.bias", {kv_out}, &l.k_bias, Init::kZeros, dim(rows), kv_part});
    s.push_back({p + "self_attn.v_proj.weight", {kv_out, hd}, &l.v, Init::kNormal, dim(rows), kv_part});
    if (c.attention_bias)
      s.push_back({p + "self_attn.v_proj.bias", {kv_out}, &l.v_bias, Init::kZeros, dim(rows), kv_part});
    s.push_back({p + "self_attn.o_proj.weight", {hd, q_out}, &l.o, Init::kNormal, dim(cols), q_part});
    s.push_back({p + "mlp.gate_proj.weight", {inter, hd}, &l.gate, Init::kNormal, dim(rows), sh.intermediate});
    s.push_back({p + "mlp.up_proj.weight", {inter, hd}, &l.up, Init::kNormal, dim(rows), sh.intermediate});
    s.push_back({p + "mlp.down_proj.weight", {hd, inter}, &l.down, Init::kNormal, dim(cols), sh.intermediate});
    s.push_back({p + "input_layernorm.weight", {hd}, &l.input_norm, Init::kOnes});
    s.push_back({p + "post_attention_layernorm.weight", {hd}, &l.post_norm, Init::kOnes});
  }
  s.push_back({"model.norm.weight", {hd}, &w.norm, Init::kOnes});
  if (!c.tie_word_embeddings) {
    s.push_back({"lm_head.weight", {c.vocab_size, hd}, &w.lm_head, Init::kNormal, dim(rows), sh.vocab});
  }
  return s;
}

std::string shape_str(torch::IntArrayRef s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? "," : "") + std::to_string(s[i]);
  return out + "]";
}

// The dtype a slot's tensor is kept in: matrices in the weights' dtype, vectors (norms, biases) in the
// activations' dtype.
torch::Dtype slot_dtype(const Weights& w, const Slot& s) { return s.shape.size() == 1 ? w.act_dtype() : w.dtype; }

// As transformers' default and llama3 rotary inits, in float32.
torch::Tensor rope_inv_freq(const ModelConfig& c) {
  const int64_t dim = c.head_dim;
  torch::Tensor inv = torch::reciprocal(
      torch::pow(c.rope_theta, torch::arange(0, dim, 2, torch::kInt64).to(torch::kFloat32) / static_cast<double>(dim)));
  if (c.rope_scaling && c.rope_scaling->type == "llama3") {
    const RopeScaling& s = *c.rope_scaling;
    const double old_len = static_cast<double>(s.original_max_position_embeddings);
    const double low_wavelen = old_len / s.low_freq_factor;
    const double high_wavelen = old_len / s.high_freq_factor;
    torch::Tensor wavelen = 2 * M_PI / inv;
    torch::Tensor scaled = torch::where(wavelen > low_wavelen, inv / s.factor, inv);
    torch::Tensor smooth = (old_len / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
    torch::Tensor smoothed = (1 - smooth) * scaled / s.factor + smooth * scaled;
    torch::Tensor medium =
        torch::logical_not(wavelen < high_wavelen).logical_and(torch::logical_not(wavelen > low_wavelen));
    inv = torch::where(medium, smoothed, scaled);
  }
  return inv;
}

// weight ⊙ x / sqrt(mean(x²) + eps) in float32, as transformers' LlamaRMSNorm; one fused kernel where
// kernels/rms_norm.hpp applies.
torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  if (kernels::rms_norm_applies(x, weight)) return kernels::rms_norm(x, weight, eps);
  torch::Tensor xf = x.to(torch::kFloat32);
  xf = xf * torch::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return weight * xf.to(x.scalar_type());
}

// The residual sum x += delta, then rms_norm(x): in place in one kernel where kernels/rms_norm.hpp
// applies, otherwise as two ops with a new x (autograd keeps the old one).
torch::Tensor add_rms_norm(torch::Tensor& x, const torch::Tensor& delta, const torch::Tensor& weight, double eps) {
  if (kernels::rms_norm_applies(x, weight, delta)) return kernels::add_rms_norm(x, delta, weight, eps);
  x = x + delta;
  return rms_norm(x, weight, eps);
}

torch::Tensor rotate_half(const torch::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return torch::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

// Appends new keys/values [B,KV,T,D] to a layer's cache buffer (first made with room for the
// reserved length, then grown by doubling) and returns the valid part [B,KV,past+T,D].
torch::Tensor cache_append(torch::Tensor& buffer, const torch::Tensor& x, int64_t past, int64_t reserved) {
  const int64_t total = past + x.size(2);
  if (!buffer.defined() || buffer.size(2) < total) {
    const int64_t cap = std::max({total, buffer.defined() ? 2 * buffer.size(2) : reserved});
    torch::Tensor grown = torch::empty({x.size(0), x.size(1), cap, x.size(3)}, x.options());
    if (past > 0) grown.narrow(2, 0, past).copy_(buffer.narrow(2, 0, past));
    buffer = grown;
  }
  buffer.narrow(2, past, x.size(2)).copy_(x);
  return buffer.narrow(2, 0, total);
}

// Weights with no tensors yet: config, placement and this rank's shard.
std::shared_ptr<Weights> empty_weights(const ModelConfig& config, const LoadOptions& opts, const std::string& where) {
  auto w = std::make_shared<Weights>();
  w->config = config;
  w->device = opts.device;
  w->dtype = opts.dtype;
  w->group = opts.tensor_group;
  w->shard = ModelShard::make(config, w->group.size(), w->group.rank(), where);
  w->vocab = VocabParallel(config.vocab_size, w->group);
  w->layers.resize(static_cast<size_t>(config.num_hidden_layers));
  return w;
}

// One product of a layer: weight [N,K], bias [N] (or undefined), and the weight's AMX tiles where
// it has them.
struct Product {
  torch::Tensor weight, bias;
  const kernels::AmxWeight* tiles = nullptr;
};

// Fewest rows that go to the AMX kernel: below, small_gemm runs bf16 products. Decoding one row,
// SmolLM2-135M made 113-115 tokens/s with small_gemm and 99-101 with AMX (`bench speed --dtype
// bfloat16`, alternated twice): the tiles' per-call cost (padding x to 16 rows, the tile
// configuration) outweighs their gain, which `bench gemm-small` puts at 1.0-1.2x for 1-4 rows.
constexpr int64_t kAmxMinRows = 5;

// Whether the AMX kernel runs these products of x (see `project` below): float32 x on a CPU without
// autograd, at least kAmxMinRows rows, every weight packed.
bool amx_runs(const torch::Tensor& x, const std::vector<Product>& products) {
  return !products.empty() && x.device().is_cpu() && x.scalar_type() == torch::kFloat32 && !x.requires_grad() &&
         x.numel() / std::max<int64_t>(1, x.size(-1)) >= kAmxMinRows &&
         std::all_of(products.begin(), products.end(),
                     [](const Product& p) { return p.tiles && p.tiles->tiles.defined() && !p.weight.requires_grad(); });
}

// x · wᵀ (+ bias) for each product of the same input x [..., Hd].
// - bf16 weights, float32 x (bf16 on a CPU): every product is that of bf16 operands (x rounded),
//   summed in float32 and rounded to bf16, whichever kernel runs it; the bias is added in float32.
//   With AMX-BF16, from kAmxMinRows rows: kernels/amx_gemm.hpp on the packed weights. Fewer rows, or
//   no AMX: small_gemm (below) as far as it applies; then, on a CPU without bf16 arithmetic,
//   kernels/widened_gemm.hpp (float32 BLAS on widened operands), else oneDNN's bf16 matmul behind
//   torch::linear (and wherever autograd runs).
// - Without autograd, a few rows on a CPU with AVX-512 or AVX2 (decoding): kernels/small_gemm.hpp,
//   all products in one parallel region.
// - One row elsewhere on a CPU: a matrix-vector product (for a one-row GEMM OpenBLAS packs the whole
//   weight matrix). Otherwise torch::linear.
std::vector<torch::Tensor> project(const torch::Tensor& x, const std::vector<Product>& products) {
  if (amx_runs(x, products)) {
    std::vector<kernels::AmxProjection> ap;
    for (const Product& p : products) ap.push_back({p.tiles, p.bias});
    return kernels::amx_gemm(x, ap);
  }
  std::vector<kernels::Projection> ps;
  for (const Product& p : products) ps.push_back({p.weight, p.bias});
  const bool mixed = !ps.empty() && ps[0].weight.scalar_type() != x.scalar_type();
  const bool small = std::all_of(ps.begin(), ps.end(),
                                 [&](const kernels::Projection& p) { return kernels::small_gemm_applies(x, p); });
  if (small) return kernels::small_gemm(x, ps);
  if (mixed && !kernels::small_gemm_bf16_supported() &&
      std::all_of(ps.begin(), ps.end(),
                  [&](const kernels::Projection& p) { return kernels::widened_gemm_applies(x, p); })) {
    std::vector<torch::Tensor> out;
    for (const kernels::Projection& p : ps) out.push_back(kernels::widened_gemm(x, p));
    return out;
  }
  if (mixed) {
    const torch::Tensor xr = x.to(ps[0].weight.scalar_type());
    std::vector<torch::Tensor> out;
    for (const kernels::Projection& p : ps) {
      torch::Tensor y = torch::linear(xr, p.weight).to(x.scalar_type());
      if (p.bias.defined()) y.add_(p.bias);
      out.push_back(y);
    }
    return out;
  }
  std::vector<torch::Tensor> out;
  for (const kernels::Projection& p : ps) {
    if (!x.device().is_cpu() || x.numel() != x.size(-1)) {
      out.push_back(torch::linear(x, p.weight, p.bias));
      continue;
    }
    torch::Tensor y = torch::mv(p.weight, x.reshape({-1}));  // [out]
    if (p.bias.defined()) y = y + p.bias;
    std::vector<int64_t> shape = x.sizes().vec();
    shape.back() = p.weight.size(0);
    out.push_back(y.view(shape));
  }
  return out;
}

torch::Tensor project(const torch::Tensor& x, const torch::Tensor& w, const kernels::AmxWeight& tiles) {
  return project(x, {{w, {}, &tiles}})[0];
}

// down(silu(gate·h) ⊙ up·h): [..., Hd] → [..., Hd]. Without autograd on a CPU, many rows (prompt
// and scoring passes) go through in blocks of kMlpRows, so that each block's intermediate ([rows,
// 2I] products, or [rows, I] activations from the AMX kernel) is still in cache when the activation
// and the down projection read it.
constexpr int64_t kMlpRows = 256;

// silu(gate·x) ⊙ up·x: [..., Hd] → [..., I]. Where the AMX kernel runs the products, in one pass of
// it (kernels::amx_swiglu); otherwise the two products, then the activation in gate's own memory
// when autograd does not need gate kept.
torch::Tensor activated(const Weights::Layer& l, const torch::Tensor& x) {
  const std::vector<Product> products{{l.gate, {}, &l.gate_tiles}, {l.up, {}, &l.up_tiles}};
  if (amx_runs(x, products)) return kernels::amx_swiglu(x, l.gate_tiles, l.up_tiles);
  std::vector<torch::Tensor> gate_up = project(x, products);
  if (torch::GradMode::is_enabled()) return torch::silu(gate_up[0]) * gate_up[1];
  return torch::silu_(gate_up[0]).mul_(gate_up[1]);
}

torch::Tensor swiglu(const Weights::Layer& l, const torch::Tensor& h) {
  const int64_t Hd = h.size(-1), N = h.numel() / Hd;
  if (N <= kMlpRows || !h.device().is_cpu() || torch::GradMode::is_enabled())
    return project(activated(l, h), l.down, l.down_tiles);
  const torch::Tensor x = h.reshape({N, Hd});
  torch::Tensor out = torch::empty({N, l.down.size(0)}, h.options());  // [N,Hd]
  for (int64_t r = 0; r < N; r += kMlpRows) {
    const int64_t n = std::min(kMlpRows, N - r);
    out.narrow(0, r, n).copy_(project(activated(l, x.narrow(0, r, n)), l.down, l.down_tiles));
  }
  std::vector<int64_t> shape = h.sizes().vec();
  shape.back() = out.size(1);
  return out.view(shape);
}

// Ties the lm_head and makes the rotary frequencies; bf16 weights on a CPU with AMX-BF16 get their
// tiles (kernels/amx_gemm.hpp). The weights the load copied into memory of its own, and the tiles,
// are moved into one huge-page arena (model/weight_arena.hpp); those in `mapped`, zero-copy views of
// a memory-mapped file, stay where they are, so that loading such a model holds no second copy. The
// heap then gives the loading's buffers back and keeps the passes' ones for reuse (core/heap.hpp).
void finish_weights(Weights& w, const std::set<const torch::Tensor*>& mapped = {}) {
  std::vector<torch::Tensor*> own;
  for (const Slot& s : slots(w)) {
    if (!mapped.count(s.tensor)) own.push_back(s.tensor);
  }
  if (w.device.is_cpu() && w.dtype == torch::kBFloat16 && kernels::amx_gemm_supported()) {
    const auto tile = [&](const torch::Tensor& m, kernels::AmxWeight& t) {
      t = kernels::amx_pack(m);
      own.push_back(&t.tiles);
    };
    for (Weights::Layer& l : w.layers) {
      tile(l.q, l.q_tiles);
      tile(l.k, l.k_tiles);
      tile(l.v, l.v_tiles);
      tile(l.o, l.o_tiles);
      tile(l.gate, l.gate_tiles);
      tile(l.up, l.up_tiles);
      tile(l.down, l.down_tiles);
    }
    tile(w.config.tie_word_embeddings ? w.embed : w.lm_head, w.lm_head_tiles);
  }
  pack_into_huge_pages(own);
  heap::settle_after_load();
  if (w.config.tie_word_embeddings) w.lm_head = w.embed;
  w.inv_freq = rope_inv_freq(w.config).to(w.device);
}

// Sums the partial results of a row-split projection over the tensor group (o_proj, down_proj) or
// of the vocabulary-split embedding lookup.
void reduce(const Weights& w, torch::Tensor& partial) {
  if (w.shard.size > 1) w.group.allreduce_sum(partial);
}

// Embedding rows of ids [B,T] -> [B,T,Hd]. Split over the vocabulary: each rank looks up the ids in
// its range (zeros elsewhere) and the group sums, so every rank ends with every row.
torch::Tensor embed_tokens(const Weights& w, const torch::Tensor& input) {
  if (w.shard.size == 1) return torch::embedding(w.embed, input).to(w.act_dtype());
  const int64_t rows = w.shard.vocab.size();
  const torch::Tensor local = input - w.shard.vocab.begin;
  const torch::Tensor outside = local.lt(0).logical_or(local.ge(rows));
  torch::Tensor x =
      torch::embedding(w.embed, local.clamp(0, rows - 1)).to(w.act_dtype()).masked_fill_(outside.unsqueeze(-1), 0);
  reduce(w, x);
  return x;
}

// The positions of a [B,T] batch that hold a token, and moves between the batch's layout and the
// packed one [N,...] of those positions alone (row-major order). Without padding both are one
// layout: pack and spread are views.
class Packing {
 public:
  explicit Packing(const torch::Tensor& present)  // [B,T] bool
      : B_(present.size(0)), T_(present.size(1)) {
    const torch::Tensor flat = present.reshape({B_ * T_});
    const int64_t n = flat.sum().item<int64_t>();
    if (n > 0 && n < B_ * T_) {
      rows_ = flat.nonzero().squeeze(1);  // [N]
      present_ = present;
    }
  }
  // [B,T] bool where positions hold a token; undefined without padding.
  const torch::Tensor& present() const { return present_; }
  // [B,T,...] → [N,...]
  torch::Tensor pack(const torch::Tensor& t) const {
    std::vector<int64_t> shape = t.sizes().slice(2).vec();
    shape.insert(shape.begin(), B_ * T_);
    const torch::Tensor flat = t.reshape(shape);
    return rows_.defined() ? flat.index_select(0, rows_) : flat;
  }
  // [N,C] → [B,T,C], zeros at the padding.
  torch::Tensor spread(const torch::Tensor& p) const {
    const int64_t C = p.size(-1);
    if (!rows_.defined()) return p.view({B_, T_, C});
    return torch::zeros({B_ * T_, C}, p.options()).index_copy_(0, rows_, p).view({B_, T_, C});
  }
  // [N,C] → [B,n,C]: the last n positions of spread(p), without making the rest.
  torch::Tensor spread_last(const torch::Tensor& p, int64_t n) const {
    if (n == T_) return spread(p);
    const int64_t C = p.size(-1);
    if (!rows_.defined()) return p.view({B_, T_, C}).narrow(1, T_ - n, n);
    // The packed row of each position (valid where present): how many present positions precede it.
    const torch::Tensor slot = present_.to(torch::kInt64).reshape({B_ * T_}).cumsum(0).sub_(1).view({B_, T_});
    const torch::Tensor keep = present_.narrow(1, T_ - n, n).reshape({B_ * n});                  // [B*n]
    const torch::Tensor from = slot.narrow(1, T_ - n, n).reshape({B_ * n}).masked_select(keep);  // [M]
    const torch::Tensor to = keep.nonzero().squeeze(1);                                          // [M]
    return torch::zeros({B_ * n, C}, p.options()).index_copy_(0, to, p.index_select(0, from)).view({B_, n, C});
  }

 private:
  int64_t B_, T_;
  torch::Tensor rows_;     // [N] int64: indices of the token positions in B*T; undefined without padding
  torch::Tensor present_;  // [B,T] bool; undefined without padding
};

}  // namespace

CausalLM CausalLM::load(const std::filesystem::path& dir, const LoadOptions& opts) {
  if (io::is_gguf_file(dir)) {
    const GgufModel gguf = GgufModel::open(dir);
    return from_tensors(gguf.config(), gguf.tensors(), opts, dir.string());
  }
  const ModelConfig config = ModelConfig::from_file(dir / "config.json");
  return from_source(config, *SafetensorsSource::open(dir), opts);
}

CausalLM CausalLM::from_source(const ModelConfig& config, const WeightSource& source, const LoadOptions& opts) {
  torch::NoGradGuard no_grad;
  auto w = empty_weights(config, opts, source.describe());
  // One rank: whole tensors, zero-copy views of the mapped files when the stored dtype is the compute
  // dtype on CPU. Split: every tensor is read into this rank's own memory, only its slice.
  const bool split = w->shard.size > 1;
  const auto read = [&](const std::string& name, int64_t dim, const dist::Range& range) {
    if (dim >= 0) return source.read_slice(name, dim, range.begin, range.end);
    if (split) return source.read_slice(name, 0, 0, source.info(name).shape.at(0));
    return source.read(name);
  };
  std::set<std::string> used;
  std::set<const torch::Tensor*> mapped;  // weights that are the source's own (mapped) tensors
  for (const Slot& s : slots(*w)) {
    if (!source.contains(s.name)) {
      throw FormatError(source.describe() + ": required tensor '" + s.name + "' is missing");
    }
    const WeightInfo info = source.info(s.name);
    if (info.dtype != "F32" && info.dtype != "F16" && info.dtype != "BF16") {
      throw FormatError(info.file + ": tensor '" + s.name + "' has dtype " + info.dtype +
                        " (expected F32, F16 or BF16)");
    }
    if (info.shape != s.shape) {
      throw FormatError(info.file + ": tensor '" + s.name + "' has shape " + shape_str(info.shape) + ", expected " +
                        shape_str(s.shape));
    }
    const torch::Tensor stored = read(s.name, s.dim, s.range);
    *s.tensor = stored.to(opts.device, slot_dtype(*w, s));
    if (!split && s.tensor->is_same(stored)) mapped.insert(s.tensor);
    used.insert(s.name);
  }
  // Leftovers. Like transformers, rotary inv_freq buffers of old checkpoints are ignored (recomputed
  // from the config), and a tied model's stored lm_head must equal the embeddings it is tied to.
  for (const std::string& name : source.names()) {
    if (used.count(name)) continue;
    const std::string suffix = ".self_attn.rotary_emb.inv_freq";
    if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) continue;
    const WeightInfo info = source.info(name);
    if (name == "lm_head.weight" && w->config.tie_word_embeddings) {
      const std::vector<int64_t> embed_shape{config.vocab_size, config.hidden_size};
      if (info.shape == embed_shape &&
          torch::equal(read(name, split ? 0 : -1, w->shard.vocab).to(opts.device, opts.dtype), w->embed))
        continue;
      throw FormatError(info.file +
                        ": tensor 'lm_head.weight' differs from the embeddings it is tied to (tie_word_embeddings)");
    }
    throw FormatError(info.file + ": tensor '" + name + "' is not used by a " + w->config.model_type + " model");
  }
  finish_weights(*w, mapped);
  CausalLM m;
  m.w_ = std::move(w);
  return m;
}

CausalLM CausalLM::from_tensors(const ModelConfig& config, const TensorReaders& tensors, const LoadOptions& opts,
                                const std::string& source) {
  torch::NoGradGuard no_grad;
  auto w = empty_weights(config, opts, source);
  std::set<std::string> used;
  for (const Slot& s : slots(*w)) {
    auto it = tensors.find(s.name);
    if (it == tensors.end()) throw FormatError(source + ": required tensor '" + s.name + "' is missing");
    torch::Tensor t = it->second();
    if (!t.is_floating_point()) {
      throw FormatError(source + ": tensor '" + s.name + "' has dtype " + c10::toString(t.scalar_type()) +
                        " (expected floating point)");
    }
    if (t.sizes().vec() != s.shape) {
      throw FormatError(source + ": tensor '" + s.name + "' has shape " + shape_str(t.sizes()) + ", expected " +
                        shape_str(s.shape));
    }
    // A reader gives whole tensors (dequantized GGUF); a split rank keeps its slice of each.
    if (s.dim >= 0) t = t.narrow(s.dim, s.range.begin, s.range.size()).clone();
    *s.tensor = t.to(opts.device, slot_dtype(*w, s));
    used.insert(s.name);
  }
  for (const auto& [name, reader] : tensors) {
    if (!used.count(name)) {
      throw FormatError(source + ": tensor '" + name + "' is not used by a " + config.model_type + " model");
    }
  }
  finish_weights(*w);
  CausalLM m;
  m.w_ = std::move(w);
  return m;
}

CausalLM CausalLM::random(const ModelConfig& config, uint64_t seed, const LoadOptions& opts) {
  torch::NoGradGuard no_grad;
  auto w = empty_weights(config, opts, "random " + config.model_type + " model");
  // Drawn whole on the CPU in float32, so a seed gives the same model on every device, dtype and
  // tensor group.
  auto gen = at::detail::createCPUGenerator(seed);
  for (const Slot& s : slots(*w)) {
    torch::Tensor t;
    switch (s.init) {
      case Init::kNormal:
        t = torch::empty(s.shape, torch::kFloat32).normal_(0.0, 0.02, gen);
        break;
      case Init::kOnes:
        t = torch::ones(s.shape, torch::kFloat32);
        break;
      case Init::kZeros:
        t = torch::zeros(s.shape, torch::kFloat32);
        break;
    }
    if (s.dim >= 0) t = t.narrow(s.dim, s.range.begin, s.range.size()).clone();
    *s.tensor = t.to(opts.device, slot_dtype(*w, s));
  }
  finish_weights(*w);
  CausalLM m;
  m.w_ = std::move(w);
  return m;
}

ForwardOutput CausalLM::forward(const torch::Tensor& ids, const torch::Tensor& attention_mask, KVCache* cache,
                                int64_t last_n) const {
  const torch::Tensor hidden = hidden_states(ids, attention_mask, cache, last_n);  // [B,T,Hd] or [B,last_n,Hd]
  return {logits(hidden), hidden.to(torch::kFloat32)};
}

torch::Tensor CausalLM::logits(const torch::Tensor& hidden) const {
  return project(hidden, w_->lm_head, w_->lm_head_tiles).to(torch::kFloat32);  // [...,V], this rank's V when split
}

torch::Tensor CausalLM::hidden_states(const torch::Tensor& ids, const torch::Tensor& attention_mask, KVCache* cache,
                                      int64_t last_n) const {
  const Weights& w = *w_;
  const ModelConfig& c = w.config;
  if (ids.dim() != 2) throw ShapeError("forward: ids must be [B,T], got " + shape_str(ids.sizes()));
  const int64_t B = ids.size(0), T = ids.size(1);
  const int64_t past = cache ? cache->length() : 0;
  if (attention_mask.dim() != 2 || attention_mask.size(0) != B || attention_mask.size(1) != past + T) {
    throw ShapeError("forward: attention_mask must be [B, past+T] = [" + std::to_string(B) + "," +
                     std::to_string(past + T) + "], got " + shape_str(attention_mask.sizes()));
  }
  if (cache && past > 0 && cache->keys.at(0).size(0) != B) {
    throw ShapeError("forward: batch size " + std::to_string(B) + " differs from the cache's " +
                     std::to_string(cache->keys[0].size(0)));
  }
  // This rank's heads (all of them when not split).
  const int64_t H = w.shard.heads.size(), KV = w.shard.kv_heads.size(), D = c.head_dim, rep = H / KV;
  const int64_t L = past + T;
  if (last_n < 0 || last_n > T) throw ShapeError("forward: last_n must be in [0, T]");
  const torch::Tensor input = ids.to(w.device, torch::kInt64);
  const torch::Tensor mask = attention_mask.to(w.device).to(torch::kBool);  // [B,L]

  // Positions from the mask, so that left padding does not shift them.
  const torch::Tensor positions = (mask.to(torch::kInt64).cumsum(1) - 1).clamp_min(0).narrow(1, past, T);  // [B,T]
  const torch::Tensor freqs = positions.to(torch::kFloat32).unsqueeze(-1) * w.inv_freq;                    // [B,T,D/2]
  const torch::Tensor cos_half = freqs.cos(), sin_half = freqs.sin();                                      // [B,T,D/2]
  torch::Tensor cos, sin;  // [B,1,T,D] in the model's dtype, made when the torch rotation first needs them

  // allowed[b,t,j]: query t (absolute index past+t) may attend to key j.
  const torch::Tensor q_idx = torch::arange(past, L, torch::TensorOptions().dtype(torch::kInt64).device(w.device));
  const torch::Tensor k_idx = torch::arange(0, L, torch::TensorOptions().dtype(torch::kInt64).device(w.device));
  torch::Tensor allowed = k_idx.unsqueeze(0) <= q_idx.unsqueeze(1);  // [T,L]
  if (c.sliding_window) allowed = allowed.logical_and(k_idx.unsqueeze(0) > q_idx.unsqueeze(1) - *c.sliding_window);
  allowed = allowed.unsqueeze(0).logical_and(mask.unsqueeze(1));  // [B,T,L]
  torch::Tensor blocked;  // [B,1,1,T,L], made when the unfused attention first needs it
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));

  if (cache && cache->keys.empty()) {
    cache->keys.resize(w.layers.size());
    cache->values.resize(w.layers.size());
  }
  // The N positions that hold a token (mask 1 among the T new ones). With padding, the products,
  // norms and the MLP run on those rows only, packed [N,Hd] (padding costs them nothing, so a pass
  // may take sequences of any lengths at once); attention and the cache see the [B,T] layout, with
  // zeros at the padding.
  const Packing packing(mask.narrow(1, past, T));
  const torch::Tensor cos_rows = packing.pack(cos_half).unsqueeze(0);  // [1,N,D/2]
  const torch::Tensor sin_rows = packing.pack(sin_half).unsqueeze(0);
  torch::Tensor x = embed_tokens(w, packing.pack(input));                    // [N,Hd]
  torch::Tensor h = rms_norm(x, w.layers.at(0).input_norm, c.rms_norm_eps);  // [N,Hd]
  for (size_t li = 0; li < w.layers.size(); ++li) {
    const auto& l = w.layers[li];
    const std::vector<torch::Tensor> qkv =
        project(h, {{l.q, l.q_bias, &l.q_tiles}, {l.k, l.k_bias, &l.k_tiles}, {l.v, l.v_bias, &l.v_tiles}});
    const torch::Tensor qr = qkv[0].unsqueeze(0), kr = qkv[1].unsqueeze(0);  // [1,N,H*D] [1,N,KV*D]
    const bool fused_rope =
        kernels::rope_applies(qr, H, cos_rows, sin_rows) && kernels::rope_applies(kr, KV, cos_rows, sin_rows);
    if (fused_rope) kernels::rope_({{qr, H}, {kr, KV}}, cos_rows, sin_rows);
    torch::Tensor q = packing.spread(qkv[0]).view({B, T, H, D}).transpose(1, 2);   // [B,H,T,D]
    torch::Tensor k = packing.spread(qkv[1]).view({B, T, KV, D}).transpose(1, 2);  // [B,KV,T,D]
    torch::Tensor v = packing.spread(qkv[2]).view({B, T, KV, D}).transpose(1, 2);  // [B,KV,T,D]
    if (!fused_rope) {
      if (!cos.defined()) {
        cos = torch::cat({cos_half, cos_half}, -1).unsqueeze(1).to(w.act_dtype());
        sin = torch::cat({sin_half, sin_half}, -1).unsqueeze(1).to(w.act_dtype());
      }
      q = q * cos + rotate_half(q) * sin;
      k = k * cos + rotate_half(k) * sin;
    }
    if (cache) {
      k = cache_append(cache->keys[li], k, past, cache->reserved());  // [B,KV,L,D]
      v = cache_append(cache->values[li], v, past, cache->reserved());
    }
    torch::Tensor attn;  // [B,T,H*D]
    if (kernels::attention_applies(q, k, v, allowed, packing.present())) {
      attn = kernels::attention(q, k, v, allowed, scale, packing.present());
    } else {
      // Grouped-query attention without repeating K/V: the `rep` query heads of one KV head are
      // stacked along the query axis.
      torch::Tensor qg = q.reshape({B, KV, rep * T, D});
      torch::Tensor scores =
          torch::matmul(qg, k.transpose(-1, -2)).mul_(scale).view({B, KV, rep, T, L});  // [B,KV,rep,T,L]
      if (!blocked.defined()) blocked = allowed.logical_not().view({B, 1, 1, T, L});
      scores = scores.to(torch::kFloat32).masked_fill_(blocked, std::numeric_limits<float>::lowest());
      torch::Tensor probs = torch::softmax(scores, -1).to(w.act_dtype()).view({B, KV, rep * T, L});
      attn = torch::matmul(probs, v).view({B, H, T, D}).transpose(1, 2).reshape({B, T, H * D});
    }
    torch::Tensor o = project(packing.pack(attn), l.o, l.o_tiles);  // [N,Hd], partial when split
    reduce(w, o);
    h = add_rms_norm(x, o, l.post_norm, c.rms_norm_eps);
    torch::Tensor mlp = swiglu(l, h);  // [N,Hd], partial when split
    reduce(w, mlp);
    if (li + 1 < w.layers.size()) {
      h = add_rms_norm(x, mlp, w.layers[li + 1].input_norm, c.rms_norm_eps);
    } else {
      x = x + mlp;
    }
  }
  if (cache) cache->length_ = L;
  x = last_n > 0 ? packing.spread_last(x, last_n) : packing.spread(x);  // [B,last_n,Hd] or [B,T,Hd]
  return rms_norm(x, w.norm, c.rms_norm_eps);                           // [B,T,Hd] or [B,last_n,Hd]
}

void KVCache::drop_front(int64_t n) {
  if (n < 0 || n > length_)
    throw ShapeError("KVCache::drop_front: " + std::to_string(n) + " of " + std::to_string(length_));
  for (auto* buffers : {&keys, &values}) {
    for (torch::Tensor& b : *buffers) b = b.narrow(2, n, b.size(2) - n);
  }
  length_ -= n;
}

void KVCache::pad_front(int64_t n) {
  if (n < 0) throw ShapeError("KVCache::pad_front: negative length " + std::to_string(n));
  for (auto* buffers : {&keys, &values}) {
    for (torch::Tensor& b : *buffers) {
      torch::Tensor grown = torch::zeros({b.size(0), b.size(1), n + length_, b.size(3)}, b.options());
      grown.narrow(2, n, length_).copy_(b.narrow(2, 0, length_));
      b = grown;
    }
  }
  length_ += n;
}

void KVCache::put_row(int64_t row, const KVCache& src, int64_t src_row) {
  const int64_t n = src.length_;
  if (n > length_ || src.keys.size() != keys.size())
    throw ShapeError("KVCache::put_row: a cache of " + std::to_string(n) + " positions does not fit in " +
                     std::to_string(length_));
  for (size_t li = 0; li < keys.size(); ++li) {
    for (auto [dst, from] : {std::pair{&keys[li], &src.keys[li]}, std::pair{&values[li], &src.values[li]}}) {
      torch::Tensor r = (*dst)[row];  // [KV,cap,D]
      r.narrow(1, 0, length_ - n).zero_();
      r.narrow(1, length_ - n, n).copy_((*from)[src_row].narrow(1, 0, n));
    }
  }
}

void KVCache::check_span(const char* what, int64_t row, int64_t rows, int64_t positions) const {
  const int64_t B = keys.empty() ? 0 : keys[0].size(0), cap = keys.empty() ? 0 : keys[0].size(2);
  if (row < 0 || rows < 0 || row > B - rows || positions < 0 || positions > cap)
    throw ShapeError(std::string("KVCache::") + what + ": rows [" + std::to_string(row) + ", " + std::to_string(row) +
                     " + " + std::to_string(rows) + ") and " + std::to_string(positions) + " positions outside " +
                     std::to_string(B) + " rows of " + std::to_string(cap) + " positions");
}

KVCache KVCache::window(int64_t row, int64_t rows, int64_t position) const {
  check_span("window", row, rows, position);
  KVCache w;
  for (auto [dst, src] : {std::pair{&w.keys, &keys}, std::pair{&w.values, &values}}) {
    for (const torch::Tensor& t : *src)
      dst->push_back(t.narrow(0, row, rows).narrow(2, position, t.size(2) - position));
  }
  return w;
}

void KVCache::zero_front(int64_t row, int64_t rows, int64_t n) {
  check_span("zero_front", row, rows, n);
  for (auto* buffers : {&keys, &values}) {
    for (torch::Tensor& t : *buffers) t.narrow(0, row, rows).narrow(2, 0, n).zero_();
  }
}

void KVCache::keep_rows(const std::vector<int64_t>& rows) {
  const auto n = static_cast<int64_t>(rows.size());
  const int64_t B = keys.empty() ? 0 : keys[0].size(0);
  const int64_t* r = rows.data();
  std::vector<bool> taken(static_cast<size_t>(std::max<int64_t>(B, 0)), false);
  for (int64_t i = 0; i < n; ++i) {
    if (r[i] < i || r[i] >= B || taken[static_cast<size_t>(r[i])])
      throw ShapeError("KVCache::keep_rows: rows must be distinct, within [0, " + std::to_string(B) +
                       ") and row i at least i; row " + std::to_string(i) + " is " + std::to_string(r[i]));
    taken[static_cast<size_t>(r[i])] = true;
  }
  // In place, in order: row i comes from r[i] >= i, which no earlier copy (into rows < i) touched. The
  // buffers keep their room for the positions still to come, and only the rows that move are copied.
  for (auto* buffers : {&keys, &values}) {
    for (torch::Tensor& b : *buffers) {
      for (int64_t i = 0; i < n; ++i) {
        if (r[i] != i) b[i].narrow(1, 0, length_).copy_(b[r[i]].narrow(1, 0, length_));
      }
      b = b.narrow(0, 0, n);
    }
  }
}

KVCache CausalLM::make_cache(int64_t rows, int64_t capacity) const {
  if (rows < 0 || capacity < 0)
    throw ShapeError("make_cache: " + std::to_string(rows) + " rows of " + std::to_string(capacity) + " positions");
  const auto options = torch::TensorOptions().dtype(w_->act_dtype()).device(w_->device);
  const auto kv = static_cast<int64_t>(w_->shard.kv_heads.size());
  KVCache c;
  c.reserve(capacity);
  for (size_t li = 0; li < w_->layers.size(); ++li) {
    c.keys.push_back(torch::empty({rows, kv, capacity, w_->config.head_dim}, options));
    c.values.push_back(torch::empty({rows, kv, capacity, w_->config.head_dim}, options));
  }
  return c;
}

const ModelConfig& CausalLM::config() const { return w_->config; }
torch::Device CausalLM::device() const { return w_->device; }
torch::Dtype CausalLM::dtype() const { return w_->dtype; }
torch::Tensor CausalLM::lm_head_weight() const { return w_->lm_head; }
const VocabParallel& CausalLM::vocab() const { return w_->vocab; }
const dist::Comm& CausalLM::tensor_group() const { return w_->group; }

std::vector<std::pair<std::string, torch::Tensor>> CausalLM::named_parameters() const {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const Slot& s : slots(*w_)) out.emplace_back(s.name, *s.tensor);
  return out;
}

void CausalLM::save(const std::filesystem::path& dir) const {
  if (w_->shard.size > 1) {
    throw ConfigError("save " + dir.string() + ": this model is split over a tensor group of " +
                      std::to_string(w_->shard.size) + " ranks; save a model loaded whole (parallel.tensor = 1)");
  }
  std::filesystem::create_directories(dir);
  ModelConfig c = w_->config;
  c.torch_dtype = w_->dtype == torch::kBFloat16 ? "bfloat16" : w_->dtype == torch::kFloat16 ? "float16" : "float32";
  write_file_atomically(dir / "config.json", c.to_json().dump(2) + "\n");
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (auto& [name, t] : named_parameters()) tensors.emplace_back(name, t.detach());
  io::write_safetensors(dir / "model.safetensors", tensors, {{"format", "pt"}});
}

}  // namespace sf::model
