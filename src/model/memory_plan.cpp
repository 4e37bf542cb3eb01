#include "model/memory_plan.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>

#ifdef SUPERFICIAL_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <torch/cuda.h>
#endif

#include "core/error.hpp"
#include "model/model_files.hpp"
#include "model/shard.hpp"

namespace sf::model {

namespace {

// Products of untrusted config values, checked: a config that overflows 64 bits is refused.
uint64_t mul(std::initializer_list<uint64_t> factors, const std::string& what) {
  uint64_t out = 1;
  for (uint64_t f : factors) {
    if (__builtin_mul_overflow(out, f, &out)) throw ConfigError(what + ": memory size overflows 64 bits");
  }
  return out;
}

uint64_t add(uint64_t a, uint64_t b, const std::string& what) {
  uint64_t out = 0;
  if (__builtin_add_overflow(a, b, &out)) throw ConfigError(what + ": memory size overflows 64 bits");
  return out;
}

uint64_t u(int64_t v) { return static_cast<uint64_t>(std::max<int64_t>(v, 0)); }

// The largest part of n split T ways.
uint64_t largest(int64_t n, int T) { return u((n + T - 1) / T); }

std::string pad(const std::string& s, size_t width) {
  return s.size() >= width ? s + " " : s + std::string(width - s.size(), ' ');
}

std::string dtype_name(int64_t bytes) { return bytes == 4 ? "float32" : bytes == 2 ? "16-bit" : "?"; }

}  // namespace

std::string format_bytes(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int i = 0;
  while (v >= 1024.0 && i < 4) {
    v /= 1024.0;
    ++i;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), i == 0 ? "%.0f %s" : "%.1f %s", v, units[i]);
  return buf;
}

uint64_t parse_bytes(const std::string& text, const std::string& key) {
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
  const std::string number = text.substr(0, i);
  std::string unit = text.substr(i);
  unit.erase(std::remove(unit.begin(), unit.end(), ' '), unit.end());
  double value = 0;
  size_t used = 0;
  try {
    value = std::stod(number, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  struct Unit {
    const char* name;
    double bytes;
  };
  const Unit units[] = {
      {"", 1},      {"B", 1},        {"KB", 1e3},        {"MB", 1e6},           {"GB", 1e9},
      {"TB", 1e12}, {"KiB", 1024.0}, {"MiB", 1048576.0}, {"GiB", 1073741824.0}, {"TiB", 1099511627776.0}};
  for (const auto& un : units) {
    if (used == number.size() && !number.empty() && unit == un.name) {
      const double bytes = value * un.bytes;
      if (!(bytes >= 1) || bytes >= 1.8e19) break;
      return static_cast<uint64_t>(std::llround(bytes));
    }
  }
  throw ConfigError(key + ": '" + text + "' is not a size (e.g. 80GiB, 80GB, 81920MiB)");
}

std::optional<DeviceBudget> cuda_device_budget(int gpus_per_node, int device) {
#ifdef SUPERFICIAL_WITH_CUDA
  if (!torch::cuda::is_available() || device < 0 || device >= static_cast<int>(torch::cuda::device_count())) {
    return std::nullopt;
  }
  DeviceBudget d;
  d.gpus_per_node = gpus_per_node;
  d.gpu_memory =
      static_cast<uint64_t>(at::cuda::getDeviceProperties(static_cast<c10::DeviceIndex>(device))->totalGlobalMem);
  return d;
#else
  (void)gpus_per_node;
  (void)device;
  return std::nullopt;
#endif
}

std::vector<PlanInput> plan_inputs(const Job& job, int64_t prompt_tokens, std::optional<int64_t> batch,
                                   std::optional<int64_t> max_length) {
  const auto setting = [&](const char* section, const char* key, int64_t fallback) {
    return job.has_section(section) ? job.section(section).get<int64_t>(key, fallback) : fallback;
  };
  const int64_t b = batch.value_or(std::max(setting("extract", "batch_size", 8), setting("evaluate", "batch_size", 8)));
  const int64_t length = max_length.value_or(setting("extract", "max_new_tokens", 512) + prompt_tokens);
  std::vector<PlanInput> out;
  for (const auto& [name, ref] : job.models()) {
    PlanInput in;
    in.name = name + " (" + ref.path.string() + ")";
    in.config = load_model_config(ref.path);
    in.dtype_bytes = ref.dtype == "float32" ? 4 : 2;
    in.batch = b;
    in.max_length = length;
    out.push_back(std::move(in));
  }
  if (out.empty()) throw ConfigError(job.source() + ": models: the job names no model to plan for");
  return out;
}

ModelPlan plan_model(const PlanInput& in, const DeviceBudget& device) {
  const ModelConfig& c = in.config;
  const std::string& what = in.name;
  if (in.batch < 1 || in.max_length < 1 || (in.dtype_bytes != 2 && in.dtype_bytes != 4)) {
    throw ConfigError(what + ": batch and max length must be >= 1 and the dtype 16 or 32 bits");
  }
  const uint64_t b = u(in.dtype_bytes), hd = u(c.hidden_size), D = u(c.head_dim), L = u(c.num_hidden_layers);
  const uint64_t N = mul({u(in.batch), u(in.max_length)}, what);  // tokens in one forward
  ModelPlan plan;
  plan.input = in;
  for (int T : valid_tensor_sizes(c)) {
    if (T > device.gpus_per_node) break;
    const uint64_t heads = u(c.num_attention_heads / T), kv = u(c.num_key_value_heads / T);
    const uint64_t inter = largest(c.intermediate_size, T), vocab = largest(c.vocab_size, T);
    // Elements of one layer: q/o (heads·D·hd each), k/v (kv·D·hd each), gate/up/down, two norms,
    // and the q/k/v biases when present.
    uint64_t layer = add(mul({2, heads, D, hd}, what), mul({2, kv, D, hd}, what), what);
    layer = add(layer, mul({3, inter, hd}, what), what);
    layer = add(layer, 2 * hd, what);
    if (c.attention_bias) layer = add(layer, mul({heads + 2 * kv, D}, what), what);
    uint64_t elements = add(mul({layer, L}, what), mul({c.tie_word_embeddings ? 1u : 2u, vocab, hd}, what), what);
    elements = add(elements, hd, what);  // final norm

    PlanRow row;
    row.tensor = T;
    row.weights = mul({elements, b}, what);
    row.kv_cache = mul({2, L, u(in.batch), u(in.max_length), kv, D, b}, what);
    const uint64_t residual = mul({N, hd, 3 * b + 8}, what);
    const uint64_t attention = mul({u(in.batch), heads, u(in.max_length), u(in.max_length), b + 8}, what);
    const uint64_t mlp = mul({N, inter, 3 * b}, what);
    const uint64_t logits = mul({N, vocab, b + 13}, what);
    row.activations = add(residual, std::max({attention, mlp, logits}), what);
    plan.rows.push_back(row);
  }
  return plan;
}

JobPlan plan_job(const std::vector<PlanInput>& models, const DeviceBudget& device) {
  if (device.gpus_per_node < 1) throw ConfigError("--gpus-per-node: must be >= 1");
  if (device.gpu_memory == 0) throw ConfigError("--gpu-memory: must be > 0");
  JobPlan job;
  job.device = device;
  for (const auto& m : models) job.models.push_back(plan_model(m, device));
  for (int T = 1; T <= device.gpus_per_node; ++T) {
    JobRow row;
    row.tensor = T;
    bool everywhere = !job.models.empty();
    for (const auto& m : job.models) {
      auto it = std::find_if(m.rows.begin(), m.rows.end(), [&](const PlanRow& r) { return r.tensor == T; });
      if (it == m.rows.end()) {
        everywhere = false;
        break;
      }
      row.weights = add(row.weights, it->weights, "job");
      row.peak = std::max(row.peak, add(it->kv_cache, it->activations, "job"));
    }
    if (everywhere) job.rows.push_back(row);
  }
  return job;
}

std::optional<int> JobPlan::smallest_fit() const {
  for (const auto& r : rows)
    if (r.fits(device)) return r.tensor;
  return std::nullopt;
}

std::string JobPlan::table() const {
  std::string out;
  for (const auto& m : models) {
    const ModelConfig& c = m.input.config;
    out += "model " + m.input.name + ": " + c.model_type + ", " + std::to_string(c.num_hidden_layers) + " layers, " +
           std::to_string(c.num_attention_heads) + "/" + std::to_string(c.num_key_value_heads) + " heads, vocab " +
           std::to_string(c.vocab_size) + ", " + dtype_name(m.input.dtype_bytes) + ", batch " +
           std::to_string(m.input.batch) + " x " + std::to_string(m.input.max_length) + " tokens\n";
    out += "  " + pad("T", 4) + pad("weights", 12) + pad("KV cache", 12) + pad("activations", 13) + pad("total", 12) +
           "alone\n";
    std::optional<int> alone;
    for (const auto& r : m.rows) {
      const bool fits = r.total() + device.reserve <= device.gpu_memory;
      if (fits && !alone) alone = r.tensor;
      out += "  " + pad(std::to_string(r.tensor), 4) + pad(format_bytes(r.weights), 12) +
             pad(format_bytes(r.kv_cache), 12) + pad(format_bytes(r.activations), 13) +
             pad(format_bytes(r.total()), 12) + (fits ? "fits" : "too big") + "\n";
    }
    out += "  smallest T for this model alone: " + (alone ? std::to_string(*alone) : std::string("none")) + "\n";
  }
  out += "job (every model resident, one forward at a time) per GPU of " + format_bytes(device.gpu_memory) + ", " +
         std::to_string(device.gpus_per_node) + " per node, reserve " + format_bytes(device.reserve) + "\n";
  out += "  " + pad("T", 4) + pad("weights", 12) + pad("peak", 12) + pad("total", 12) + "\n";
  for (const auto& r : rows) {
    out += "  " + pad(std::to_string(r.tensor), 4) + pad(format_bytes(r.weights), 12) + pad(format_bytes(r.peak), 12) +
           pad(format_bytes(r.total(device)), 12) + (r.fits(device) ? "fits" : "too big") + "\n";
  }
  const auto best = smallest_fit();
  out += "smallest T that fits: " +
         (best ? std::to_string(*best) : std::string("none (more GPU memory, or a smaller batch or length)")) + "\n";
  return out;
}

void JobPlan::check(int tensor) const {
  for (const auto& r : rows) {
    if (r.tensor == tensor && r.fits(device)) return;
  }
  const bool valid = std::any_of(rows.begin(), rows.end(), [&](const JobRow& r) { return r.tensor == tensor; });
  const auto best = smallest_fit();
  throw ConfigError(
      "parallel.tensor = " + std::to_string(tensor) +
      (valid ? " does not fit the models in " + format_bytes(device.gpu_memory) + " per GPU"
             : " is not a T every model allows on nodes of " + std::to_string(device.gpus_per_node) + " GPUs") +
      (best ? " (smallest T that fits: " + std::to_string(*best) + ")" : "") + "\n" + table());
}

}  // namespace sf::model
