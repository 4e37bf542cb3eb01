// `superficial init-model`, `generate`, `score` and `bench forward`.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "cli/command.hpp"
#include "core/error.hpp"
#include "model/causal_lm.hpp"
#include "model/finite.hpp"
#include "model/generate.hpp"
#include "model/model_files.hpp"
#include "tokenizer/chat_template.hpp"
#include "tokenizer/tokenizer.hpp"

namespace {

using sf::model::CausalLM;
using sf::model::ModelConfig;

std::vector<int32_t> parse_ids(const std::string& text) {
  std::vector<int32_t> ids;
  std::istringstream in(text);
  std::string word;
  while (in >> word) {
    size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(word, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != word.size() || v < 0 || v > INT32_MAX) throw sf::ConfigError("--ids: '" + word + "' is not a token id");
    ids.push_back(static_cast<int32_t>(v));
  }
  if (ids.empty()) throw sf::ConfigError("--ids: no token ids given");
  return ids;
}

sf::model::LoadOptions load_options(const std::string& device, const std::string& dtype) {
  sf::model::LoadOptions o;
  try {
    o.device = torch::Device(device);
  } catch (const c10::Error&) {
    throw sf::ConfigError("--device: '" + device + "' is not a device (cpu, cuda:N)");
  }
  if (dtype == "float32") {
    o.dtype = torch::kFloat32;
  } else if (dtype == "bfloat16") {
    o.dtype = torch::kBFloat16;
  } else {
    throw sf::ConfigError("--dtype: '" + dtype + "' is not float32 or bfloat16");
  }
  return o;
}

// A special token named in tokenizer_config.json ("bos_token": "<s>" or {"content": "<s>"}).
std::optional<int32_t> config_token(const nlohmann::json& cfg, const std::string& key, const sf::tok::Tokenizer& tok) {
  if (!cfg.contains(key)) return std::nullopt;
  const auto& v = cfg[key];
  std::string content;
  if (v.is_string()) {
    content = v.get<std::string>();
  } else if (v.is_object() && v.contains("content") && v["content"].is_string()) {
    content = v["content"].get<std::string>();
  } else {
    return std::nullopt;
  }
  return tok.token_to_id(content);
}

void init_model(const std::string& arch, int64_t layers, int64_t hidden, int64_t heads, int64_t kv_heads,
                int64_t intermediate, const std::filesystem::path& tokenizer, const std::filesystem::path& out,
                uint64_t seed, bool tie, std::optional<int64_t> bos, std::optional<int64_t> eos) {
  const auto tok = sf::tok::Tokenizer::from_file(tokenizer);
  nlohmann::json tok_cfg = nlohmann::json::object();
  const auto tok_cfg_path = tokenizer.parent_path() / "tokenizer_config.json";
  if (std::filesystem::exists(tok_cfg_path)) {
    std::ifstream in(tok_cfg_path);
    try {
      tok_cfg = nlohmann::json::parse(in);
    } catch (const nlohmann::json::parse_error& e) {
      throw sf::FormatError(tok_cfg_path.string() + ": malformed JSON at byte " + std::to_string(e.byte));
    }
  }
  nlohmann::json j;
  j["model_type"] = arch;
  j["vocab_size"] = tok.vocab_size();
  j["hidden_size"] = hidden;
  // Default MLP width: about 8/3 of the hidden size (as Llama), rounded up to a multiple of 32.
  j["intermediate_size"] = intermediate > 0 ? intermediate : (8 * hidden / 3 + 31) / 32 * 32;
  j["num_hidden_layers"] = layers;
  j["num_attention_heads"] = heads;
  j["num_key_value_heads"] = kv_heads;
  j["tie_word_embeddings"] = tie;
  j["max_position_embeddings"] = 4096;
  ModelConfig c = ModelConfig::from_json(j, "init-model options");
  // Special ids: the flag, else tokenizer_config.json's token, else the post-processor's.
  const auto pick = [](std::optional<int64_t> flag, std::optional<int32_t> named,
                       std::optional<int32_t> post) -> std::optional<int64_t> {
    if (flag) return flag;
    if (named) return *named;
    if (post) return *post;
    return std::nullopt;
  };
  c.bos_token_id = pick(bos, config_token(tok_cfg, "bos_token", tok), tok.post_bos_id());
  const std::optional<int64_t> eos_id = pick(eos, config_token(tok_cfg, "eos_token", tok), tok.post_eos_id());
  if (eos_id) c.eos_token_ids = std::vector<int64_t>{*eos_id};
  c.pad_token_id = pick(std::nullopt, config_token(tok_cfg, "pad_token", tok), std::nullopt);
  for (const auto& id : {c.bos_token_id, eos_id}) {
    if (id && (*id < 0 || *id >= c.vocab_size)) throw sf::ConfigError("--bos/--eos: id outside the vocabulary");
  }
  CausalLM::random(c, seed).save(out);
  for (const char* name : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"}) {
    const auto src = tokenizer.parent_path() / name;
    const auto dst = out / name;
    const auto from = std::string(name) == "tokenizer.json" ? tokenizer : src;
    if (std::filesystem::exists(from)) {
      std::filesystem::copy_file(from, dst, std::filesystem::copy_options::overwrite_existing);
    }
  }
  std::printf("%s: %s, %lld layers, hidden %lld, %lld/%lld heads, vocab %lld\n", out.string().c_str(), arch.c_str(),
              static_cast<long long>(layers), static_cast<long long>(hidden), static_cast<long long>(heads),
              static_cast<long long>(kv_heads), static_cast<long long>(c.vocab_size));
}

std::optional<sf::tok::Tokenizer> model_tokenizer(const std::filesystem::path& model) {
  if (!sf::model::has_tokenizer(model)) return std::nullopt;
  return sf::model::load_tokenizer(model);
}

// --- bench forward ---------------------------------------------------------------------------

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// GFLOP/s of x[M,K] @ w[N,K]^T (the layout of torch::linear), best of `reps`.
double gemm_gflops(int64_t m, int64_t k, int64_t n, int reps) {
  torch::InferenceMode guard;
  auto x = torch::randn({m, k}), w = torch::randn({n, k});
  torch::Tensor y = torch::mm(x, w.t());
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    y = torch::mm(x, w.t());
    best = std::min(best, seconds_since(t0));
  }
  return 2.0 * static_cast<double>(m * k * n) / best / 1e9;
}

void bench_forward(bool quick, int threads) {
  if (threads > 0) at::set_num_threads(threads);
  ModelConfig c;  // SmolLM2-135M's shape
  c.model_type = "llama";
  c.vocab_size = 49152;
  c.hidden_size = 576;
  c.intermediate_size = 1536;
  c.num_hidden_layers = 30;
  c.num_attention_heads = 9;
  c.num_key_value_heads = 3;
  c.head_dim = 64;
  c.max_position_embeddings = 8192;
  c.rope_theta = 100000;
  c.rms_norm_eps = 1e-5;
  c.tie_word_embeddings = true;
  const auto model = CausalLM::random(c, 0);
  const int64_t B = 8, T = 256, hd = c.hidden_size, I = c.intermediate_size, V = c.vocab_size;
  const int64_t kv = c.num_key_value_heads * c.head_dim, q = c.num_attention_heads * c.head_dim;
  const int reps = quick ? 1 : 3;

  // Matmul FLOPs per token: 2 x (weights used in matmuls); attention: QK^T and PV over all T keys
  // (the full T x T products are computed, then masked) = 4 x T x heads x head_dim per layer.
  const double weight_macs =
      static_cast<double>(c.num_hidden_layers * (hd * q * 2 + hd * kv * 2 + 3 * hd * I) + hd * V);
  const double attn_flops = static_cast<double>(c.num_hidden_layers) * 4.0 * T * q;
  const double flops_per_token = 2.0 * weight_macs + attn_flops;

  double gemm_peak = 0;
  // The (N, K) shapes of the model's GEMMs at B*T rows: gate/up, down, lm_head, q, k/v, o.
  for (auto [n, k] : std::vector<std::pair<int64_t, int64_t>>{{I, hd}, {hd, I}, {V, hd}, {q, hd}, {kv, hd}, {hd, q}}) {
    gemm_peak = std::max(gemm_peak, gemm_gflops(B * T, k, n, reps + 1));
  }

  double score_s = 1e30, guard_s = 1e30;
  {
    torch::InferenceMode guard;
    const auto ids = torch::randint(0, V, {B, T}, torch::kInt64);
    const auto mask = torch::ones({B, T}, torch::kInt64);
    model.forward(ids.narrow(1, 0, 16), mask.narrow(1, 0, 16));  // warm-up
    for (int r = 0; r < reps; ++r) {
      auto t0 = std::chrono::steady_clock::now();
      const auto f = model.forward(ids, mask);
      score_s = std::min(score_s, seconds_since(t0));
      // The non-finite guard over every logit of the batch [B,T,V] as rows [B*T,V]: an upper bound
      // of what the stages check (top-k logits, log-probabilities, hidden states).
      t0 = std::chrono::steady_clock::now();
      if (sf::model::first_non_finite(f.logits.reshape({B * T, V})))
        throw sf::NumericError("bench forward: non-finite logits from a random model");
      guard_s = std::min(guard_s, seconds_since(t0));
    }
  }
  const double score_tps = static_cast<double>(B * T) / score_s;
  const double score_gflops = score_tps * flops_per_token / 1e9;

  // Decode throughput: generate(N) - generate(1) isolates N-1 cached decoding steps.
  const int64_t new_tokens = quick ? 8 : 64;
  auto decode_tps = [&](int64_t batch) {
    std::vector<std::vector<int32_t>> prompts(static_cast<size_t>(batch));
    for (size_t i = 0; i < prompts.size(); ++i) {
      for (int32_t t = 0; t < 32; ++t) prompts[i].push_back(static_cast<int32_t>((i * 131 + t * 17) % V));
    }
    sf::model::GenerateOptions opts;
    opts.batch_size = batch;
    opts.max_new_tokens = 1;
    auto t0 = std::chrono::steady_clock::now();
    sf::model::generate(model, prompts, opts);
    const double one = seconds_since(t0);
    opts.max_new_tokens = new_tokens;
    t0 = std::chrono::steady_clock::now();
    sf::model::generate(model, prompts, opts);
    const double all = seconds_since(t0);
    return static_cast<double>(batch * (new_tokens - 1)) / std::max(all - one, 1e-9);
  };
  const double d1 = decode_tps(1), d16 = decode_tps(16);

  struct rusage ru {};
  ::getrusage(RUSAGE_SELF, &ru);
  double load1 = -1;
  std::ifstream("/proc/loadavg") >> load1;
  nlohmann::json out;
  out["benchmark"] = "forward";
  out["model"] = "SmolLM2-135M shape (random init), float32, cpu";
  out["quick"] = quick;
  out["threads"] = at::get_num_threads();
  out["load_avg_1m"] = load1;
  out["scoring_batch"] = {B, T};
  out["scoring_seconds"] = score_s;
  out["scoring_tokens_per_s"] = score_tps;
  out["scoring_gflops"] = score_gflops;
  out["gemm_peak_gflops"] = gemm_peak;
  out["scoring_vs_gemm"] = score_gflops / gemm_peak;
  out["finite_guard_seconds"] = guard_s;
  out["finite_guard_vs_scoring"] = guard_s / score_s;
  out["decode_new_tokens"] = new_tokens;
  out["decode_tokens_per_s_b1"] = d1;
  out["decode_tokens_per_s_b16"] = d16;
  out["peak_rss_mb"] = static_cast<double>(ru.ru_maxrss) / 1024.0;
  std::printf("%s\n", out.dump().c_str());
}

void setup(CLI::App& app) {
  // init-model
  struct Init {
    std::string arch = "llama", tokenizer, out;
    int64_t layers = 2, hidden = 64, heads = 4, kv_heads = 0, intermediate = 0;
    uint64_t seed = 0;
    bool tie = false;
    std::optional<int64_t> bos, eos;
  };
  auto init = std::make_shared<Init>();
  auto* im = app.add_subcommand("init-model", "Write a randomly initialised model folder in Hugging Face layout");
  im->add_option("--arch", init->arch, "llama, mistral or qwen2")
      ->check(CLI::IsMember({"llama", "mistral", "qwen2"}))
      ->capture_default_str();
  im->add_option("--layers", init->layers, "Decoder layers")->check(CLI::PositiveNumber)->capture_default_str();
  im->add_option("--hidden", init->hidden, "Hidden size")->check(CLI::PositiveNumber)->capture_default_str();
  im->add_option("--heads", init->heads, "Attention heads")->check(CLI::PositiveNumber)->capture_default_str();
  im->add_option("--kv-heads", init->kv_heads, "Key/value heads (default: --heads)")->check(CLI::NonNegativeNumber);
  im->add_option("--intermediate", init->intermediate, "MLP width (default: 8/3 x hidden, multiple of 32)");
  im->add_option("--vocab-from", init->tokenizer, "tokenizer.json; sets vocab_size and is copied")->required();
  im->add_option("--out", init->out, "Output folder")->required();
  im->add_option("--seed", init->seed, "Initialisation seed")->capture_default_str();
  im->add_flag("--tie-embeddings", init->tie, "Tie lm_head to the embeddings");
  im->add_option("--bos", init->bos, "BOS id (default: from tokenizer_config.json or the post-processor)");
  im->add_option("--eos", init->eos, "EOS id (default: from tokenizer_config.json or the post-processor)");
  im->callback([init] {
    init_model(init->arch, init->layers, init->hidden, init->heads, init->kv_heads ? init->kv_heads : init->heads,
               init->intermediate, init->tokenizer, init->out, init->seed, init->tie, init->bos, init->eos);
  });

  // generate
  struct Gen {
    std::string model, prompt, templ, ids, device = "cpu", dtype = "float32";
    int64_t max_new = 64;
    double temperature = 0, top_p = 1;
    uint64_t seed = 0;
  };
  auto gen = std::make_shared<Gen>();
  auto* gm = app.add_subcommand("generate", "Continue a prompt (greedy unless --temperature > 0)");
  gm->add_option("--model", gen->model, "Model folder (config.json, safetensors, tokenizer.json) or .gguf file")
      ->required();
  auto* prompt_opt = gm->add_option("--prompt", gen->prompt, "Prompt text");
  auto* ids_opt = gm->add_option("--ids", gen->ids, "Prompt as space-separated token ids");
  prompt_opt->excludes(ids_opt);
  gm->add_option("--template", gen->templ, "Prompt template preset (plain, alpaca, chatml, llama3, ...)")
      ->needs(prompt_opt);
  gm->add_option("--max-new-tokens", gen->max_new, "Tokens to generate")->capture_default_str();
  gm->add_option("--temperature", gen->temperature, "Sampling temperature; 0 = greedy")->capture_default_str();
  gm->add_option("--top-p", gen->top_p, "Nucleus sampling mass")->capture_default_str();
  gm->add_option("--seed", gen->seed, "Sampling seed")->capture_default_str();
  gm->add_option("--device", gen->device, "cpu or cuda:N")->capture_default_str();
  gm->add_option("--dtype", gen->dtype, "float32 or bfloat16")->capture_default_str();
  gm->callback([gen, prompt_opt, ids_opt] {
    if (!*prompt_opt && !*ids_opt) throw sf::ConfigError("generate: give --prompt or --ids");
    const auto model = CausalLM::load(gen->model, load_options(gen->device, gen->dtype));
    const auto tok = model_tokenizer(gen->model);
    std::vector<int32_t> ids;
    if (*ids_opt) {
      ids = parse_ids(gen->ids);
    } else {
      if (!tok) throw sf::IoError(gen->model + ": no tokenizer, needed to encode --prompt");
      const auto rendered =
          sf::tok::ChatTemplate::preset(gen->templ.empty() ? "plain" : gen->templ).prompt(gen->prompt);
      ids = tok->encode(rendered.text, rendered.add_special_tokens);
    }
    sf::model::GenerateOptions opts;
    opts.max_new_tokens = gen->max_new;
    opts.greedy = gen->temperature <= 0;
    opts.temperature = gen->temperature > 0 ? gen->temperature : 1.0;
    opts.top_p = gen->top_p;
    opts.seed = gen->seed;
    opts.eos_ids = model.config().eos_token_ids;
    opts.record_top_k = 1;  // the logit of each step's token, for the non-finite guard
    const auto g = sf::model::generate(model, {ids}, opts).at(0);
    sf::model::require_finite(g.topk_logits, {"generate: model " + gen->model, "step logits", 0, g.topk_ids});
    if (tok) {
      std::printf("%s\n", tok->decode(g.tokens, /*skip_special=*/true).c_str());
    } else {
      std::string line;
      for (auto id : g.tokens) line += (line.empty() ? "" : " ") + std::to_string(id);
      std::printf("%s\n", line.c_str());
    }
  });

  // score
  struct Score {
    std::string model, text, ids, device = "cpu", dtype = "float32";
  };
  auto sc = std::make_shared<Score>();
  auto* sm = app.add_subcommand("score", "Per-token log-probabilities of a text under a model (teacher forcing)");
  sm->add_option("--model", sc->model, "Model folder or .gguf file")->required();
  auto* text_opt = sm->add_option("--text", sc->text, "Text (encoded with the tokenizer's BOS/EOS post-processor)");
  auto* sids_opt = sm->add_option("--ids", sc->ids, "Space-separated token ids");
  text_opt->excludes(sids_opt);
  sm->add_option("--device", sc->device, "cpu or cuda:N")->capture_default_str();
  sm->add_option("--dtype", sc->dtype, "float32 or bfloat16")->capture_default_str();
  sm->callback([sc, text_opt, sids_opt] {
    if (!*text_opt && !*sids_opt) throw sf::ConfigError("score: give --text or --ids");
    const auto model = CausalLM::load(sc->model, load_options(sc->device, sc->dtype));
    const auto tok = model_tokenizer(sc->model);
    std::vector<int32_t> ids;
    if (*sids_opt) {
      ids = parse_ids(sc->ids);
    } else {
      if (!tok) throw sf::IoError(sc->model + ": no tokenizer, needed to encode --text");
      ids = tok->encode(sc->text, /*add_special=*/true);
    }
    const auto s = sf::model::score(model, {ids}, {});
    sf::model::require_finite(s.token_logprobs[0], {"score: model " + sc->model, "log-probability", 0, {}});
    std::printf("position\tid\ttoken\tlogprob\n");
    for (size_t t = 0; t < ids.size(); ++t) {
      const std::string piece = tok ? nlohmann::json(tok->id_to_token(ids[t])).dump() : "\"\"";
      std::printf("%zu\t%d\t%s\t%.6f\n", t, ids[t], piece.c_str(),
                  s.token_logprobs[0][static_cast<int64_t>(t)].item<double>());
    }
  });

  // bench forward
  auto quick = std::make_shared<bool>(false);
  auto threads = std::make_shared<int>(0);
  auto* bf = sf::cli::bench_group(app).add_subcommand(
      "forward", "Scoring and decoding throughput of a SmolLM2-135M-shaped model vs torch GEMM peak");
  bf->add_flag("--quick", *quick, "One repetition, 8 decode tokens (< 30 s)");
  bf->add_option("--threads", *threads, "Torch intra-op threads (default: torch's)");
  bf->callback([quick, threads] { bench_forward(*quick, *threads); });
}

}  // namespace

SF_COMMAND(setup);
