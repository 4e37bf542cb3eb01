// `superficial init-model`, `generate`, `score`, `bench forward` and `bench load`. generate, score
// and the benchmarks take --tensor T under mpirun: each group of T ranks holds one copy of the
// model split T ways (only world rank 0 prints).
#include <sys/resource.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "cli/bench_probe.hpp"
#include "cli/command.hpp"
#include "core/error.hpp"
#include "core/files.hpp"
#include "dist/layout.hpp"
#include "model/causal_lm.hpp"
#include "model/finite.hpp"
#include "model/flops.hpp"
#include "model/generate.hpp"
#include "model/model_files.hpp"
#include "tokenizer/chat_template.hpp"
#include "tokenizer/tokenizer.hpp"

namespace {

using sf::cli::best_seconds;
using sf::cli::gemm_peak_gflops;
using sf::cli::load_average;
using sf::cli::rss_now_and_peak_mb;
using sf::cli::seconds_since;
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

sf::model::LoadOptions load_options(const std::string& device, const std::string& dtype,
                                    const sf::dist::ParallelLayout& layout) {
  sf::model::LoadOptions o;
  o.tensor_group = layout.tensor;
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
    tok_cfg = sf::read_json_file(tok_cfg_path);
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

// The model shapes `bench forward` runs (random weights). SmolLM2-135M's 3 KV heads allow T = 1
// or 3; Qwen2.5-0.5B's 2 KV heads allow T = 1 or 2.
ModelConfig bench_shape(const std::string& name) {
  ModelConfig c;
  c.model_type = "llama";
  c.max_position_embeddings = 8192;
  c.tie_word_embeddings = true;
  if (name == "smollm2-135m") {
    c.vocab_size = 49152;
    c.hidden_size = 576;
    c.intermediate_size = 1536;
    c.num_hidden_layers = 30;
    c.num_attention_heads = 9;
    c.num_key_value_heads = 3;
    c.head_dim = 64;
    c.rope_theta = 100000;
    c.rms_norm_eps = 1e-5;
  } else if (name == "qwen2.5-0.5b") {
    c.model_type = "qwen2";
    c.attention_bias = true;
    c.vocab_size = 151936;
    c.hidden_size = 896;
    c.intermediate_size = 4864;
    c.num_hidden_layers = 24;
    c.num_attention_heads = 14;
    c.num_key_value_heads = 2;
    c.head_dim = 64;
    c.rope_theta = 1000000;
    c.rms_norm_eps = 1e-6;
  } else {
    throw sf::ConfigError("--shape: '" + name + "' is not smollm2-135m or qwen2.5-0.5b");
  }
  return c;
}

// Every rank's JSON object, printed by world rank 0 as {"ranks": [...], ...common}.
void print_from_root(nlohmann::json common, const nlohmann::json& mine) {
  const auto& world = sf::dist::Comm::world();
  const auto all = world.gather(mine.dump());
  if (!world.is_root()) return;
  common["ranks"] = nlohmann::json::array();
  for (const auto& text : all) common["ranks"].push_back(nlohmann::json::parse(text));
  std::printf("%s\n", common.dump().c_str());
}

void bench_forward(bool quick, int threads, int tensor, const std::string& shape) {
  if (threads > 0) at::set_num_threads(threads);
  const auto layout = sf::dist::ParallelLayout::make(sf::dist::Comm::world(), tensor);
  const ModelConfig c = bench_shape(shape);
  sf::model::LoadOptions opts;
  opts.tensor_group = layout.tensor;
  const auto model = CausalLM::random(c, 0, opts);
  const sf::dist::Comm& group = layout.tensor;
  const int64_t B = 8, T = 256, V = c.vocab_size, q = c.num_attention_heads * c.head_dim;
  const int reps = quick ? 1 : 3;

  // FLOPs per token: the products of the layers and the lm_head (model/flops.hpp); attention: QK^T
  // and PV over all T keys (the full T x T products are computed, then masked) = 4 x T x heads x
  // head_dim per layer. A rank of a tensor group does 1/T of them.
  const double attn_flops = static_cast<double>(c.num_hidden_layers) * 4.0 * T * q;
  const double flops_per_token =
      (sf::model::layer_product_flops(c) + sf::model::lm_head_flops(c) + attn_flops) / tensor;
  const double gemm_peak = gemm_peak_gflops(sf::model::product_shapes(c, tensor), B * T, reps + 1);

  double score_s = 1e30, score_comm_s = 0, guard_s = 1e30;
  {
    torch::InferenceMode guard;
    auto ids = torch::randint(0, V, {B, T}, torch::kInt64);
    const auto mask = torch::ones({B, T}, torch::kInt64);
    group.broadcast(ids);                                        // the same tokens on every rank of the group
    model.forward(ids.narrow(1, 0, 16), mask.narrow(1, 0, 16));  // warm-up
    for (int r = 0; r < reps; ++r) {
      group.reset_stats();
      auto t0 = std::chrono::steady_clock::now();
      const auto f = model.forward(ids, mask);
      const double s = seconds_since(t0);
      if (s < score_s) {
        score_s = s;
        score_comm_s = group.stats().seconds;
      }
      // The non-finite guard over every logit of the batch [B,T,V] as rows [B*T,V]: an upper bound
      // of what the stages check (top-k logits, log-probabilities, hidden states).
      t0 = std::chrono::steady_clock::now();
      if (sf::model::first_non_finite(f.logits.reshape({B * T, -1})))
        throw sf::NumericError("bench forward: non-finite logits from a random model");
      guard_s = std::min(guard_s, seconds_since(t0));
    }
  }
  const double score_tps = static_cast<double>(B * T) / score_s;
  const double score_gflops = score_tps * flops_per_token / 1e9;

  // Decode throughput: generate(N) - generate(1) isolates N-1 cached decoding steps.
  const int64_t new_tokens = quick ? 8 : 64;
  auto decode = [&](int64_t batch) {
    std::vector<std::vector<int32_t>> prompts(static_cast<size_t>(batch));
    for (size_t i = 0; i < prompts.size(); ++i) {
      for (int32_t t = 0; t < 32; ++t) prompts[i].push_back(static_cast<int32_t>((i * 131 + t * 17) % V));
    }
    sf::model::GenerateOptions g;
    g.batch_size = batch;
    g.max_new_tokens = 1;
    group.reset_stats();
    auto t0 = std::chrono::steady_clock::now();
    sf::model::generate(model, prompts, g);
    const double one = seconds_since(t0), one_comm = group.stats().seconds;
    g.max_new_tokens = new_tokens;
    group.reset_stats();
    t0 = std::chrono::steady_clock::now();
    sf::model::generate(model, prompts, g);
    const double all = seconds_since(t0), all_comm = group.stats().seconds;
    return std::make_pair(static_cast<double>(batch * (new_tokens - 1)) / std::max(all - one, 1e-9),
                          (all_comm - one_comm) / std::max(all - one, 1e-9));
  };
  const auto d1 = decode(1), d16 = decode(16);

  nlohmann::json out;
  out["benchmark"] = "forward";
  out["model"] = shape + " shape (random init), float32, cpu";
  out["quick"] = quick;
  out["tensor"] = tensor;
  out["groups"] = layout.num_groups();
  out["threads"] = at::get_num_threads();
  out["load_avg_1m"] = load_average();
  out["scoring_batch"] = {B, T};
  out["scoring_seconds"] = score_s;
  out["scoring_tokens_per_s"] = score_tps;  // of one tensor group
  out["scoring_gflops"] = score_gflops;     // per rank
  out["gemm_peak_gflops"] = gemm_peak;      // per rank, on its own GEMM shapes
  out["scoring_vs_gemm"] = score_gflops / gemm_peak;
  out["scoring_allreduce_share"] = score_comm_s / score_s;
  out["finite_guard_seconds"] = guard_s;
  out["finite_guard_vs_scoring"] = guard_s / score_s;
  out["decode_new_tokens"] = new_tokens;
  out["decode_tokens_per_s_b1"] = d1.first;
  out["decode_tokens_per_s_b16"] = d16.first;
  out["decode_allreduce_share_b1"] = d1.second;
  out["decode_allreduce_share_b16"] = d16.second;
  out["peak_rss_mb"] = rss_now_and_peak_mb().second;
  // Each rank's view (they wait for each other inside the all-reduces); rank 0's fields on top.
  nlohmann::json mine{{"rank", sf::dist::Comm::world().rank()},
                      {"scoring_seconds", score_s},
                      {"scoring_allreduce_share", score_comm_s / score_s},
                      {"peak_rss_mb", out["peak_rss_mb"]}};
  print_from_root(out, mine);
}

// Peak resident memory of loading a model folder and using it. A whole fp32 model on the CPU is a
// zero-copy mapping of its files, paged in as weights are used (a short forward touches only a few
// embedding rows), so every weight is read once after loading: the figures then hold the model as
// it is after enough use. A split model holds copies of its slices from the start.
void bench_load(const std::string& dir, int tensor, const std::string& dtype) {
  const auto layout = sf::dist::ParallelLayout::make(sf::dist::Comm::world(), tensor);
  const auto [rss0, hwm0] = rss_now_and_peak_mb();
  auto t0 = std::chrono::steady_clock::now();
  const auto model = CausalLM::load(dir, load_options("cpu", dtype, layout));
  const double load_s = seconds_since(t0);
  const auto [rss1, hwm1] = rss_now_and_peak_mb();
  {
    torch::InferenceMode guard;
    double checksum = 0;
    for (const auto& [name, t] : model.named_parameters()) checksum += t.sum().item<double>();
    const auto ids = torch::arange(1, 17, torch::kInt64).unsqueeze(0);
    model.forward(ids, torch::ones_like(ids));
    if (!std::isfinite(checksum)) throw sf::FormatError(dir + ": weights are not finite");
  }
  const auto [rss2, hwm2] = rss_now_and_peak_mb();
  double weights = 0;
  for (const auto& [name, t] : model.named_parameters()) {
    weights += static_cast<double>(t.numel() * static_cast<int64_t>(t.element_size()));
  }
  double file_bytes = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() == ".safetensors") file_bytes += static_cast<double>(e.file_size());
  }
  nlohmann::json common{{"benchmark", "load"},
                        {"model", dir},
                        {"dtype", dtype},
                        {"tensor", tensor},
                        {"safetensors_mb", file_bytes / 1048576.0},
                        {"load_avg_1m", load_average()}};
  nlohmann::json mine{{"rank", sf::dist::Comm::world().rank()},
                      {"load_seconds", load_s},
                      {"weights_held_mb", weights / 1048576.0},
                      {"rss_before_mb", rss0},
                      {"rss_after_load_mb", rss1},
                      {"peak_rss_load_mb", hwm1},
                      {"rss_after_use_mb", rss2},
                      {"peak_rss_mb", hwm2},
                      {"peak_rss_increase_mb", hwm2 - rss0}};
  print_from_root(common, mine);
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
    int tensor = 1;
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
  gm->add_option("--tensor", gen->tensor, "Tensor-parallel size (under mpirun)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  gm->callback([gen, prompt_opt, ids_opt] {
    if (!*prompt_opt && !*ids_opt) throw sf::ConfigError("generate: give --prompt or --ids");
    const auto layout = sf::dist::ParallelLayout::make(sf::dist::Comm::world(), gen->tensor);
    const auto model = CausalLM::load(gen->model, load_options(gen->device, gen->dtype, layout));
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
    if (!sf::dist::Comm::world().is_root()) return;
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
    int tensor = 1;
  };
  auto sc = std::make_shared<Score>();
  auto* sm = app.add_subcommand("score", "Per-token log-probabilities of a text under a model (teacher forcing)");
  sm->add_option("--model", sc->model, "Model folder or .gguf file")->required();
  auto* text_opt = sm->add_option("--text", sc->text, "Text (encoded with the tokenizer's BOS/EOS post-processor)");
  auto* sids_opt = sm->add_option("--ids", sc->ids, "Space-separated token ids");
  text_opt->excludes(sids_opt);
  sm->add_option("--device", sc->device, "cpu or cuda:N")->capture_default_str();
  sm->add_option("--dtype", sc->dtype, "float32 or bfloat16")->capture_default_str();
  sm->add_option("--tensor", sc->tensor, "Tensor-parallel size (under mpirun)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  sm->callback([sc, text_opt, sids_opt] {
    if (!*text_opt && !*sids_opt) throw sf::ConfigError("score: give --text or --ids");
    const auto layout = sf::dist::ParallelLayout::make(sf::dist::Comm::world(), sc->tensor);
    const auto model = CausalLM::load(sc->model, load_options(sc->device, sc->dtype, layout));
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
    if (!sf::dist::Comm::world().is_root()) return;
    std::printf("position\tid\ttoken\tlogprob\n");
    for (size_t t = 0; t < ids.size(); ++t) {
      const std::string piece = tok ? nlohmann::json(tok->id_to_token(ids[t])).dump() : "\"\"";
      std::printf("%zu\t%d\t%s\t%.6f\n", t, ids[t], piece.c_str(),
                  s.token_logprobs[0][static_cast<int64_t>(t)].item<double>());
    }
  });

  // bench forward
  struct BenchForward {
    bool quick = false;
    int threads = 0, tensor = 1;
    std::string shape = "smollm2-135m";
  };
  auto bfa = std::make_shared<BenchForward>();
  auto* bf = sf::cli::bench_group(app).add_subcommand(
      "forward", "Scoring and decoding throughput of a model shape vs torch GEMM peak (--tensor T under mpirun)");
  bf->add_flag("--quick", bfa->quick, "One repetition, 8 decode tokens (< 30 s)");
  bf->add_option("--threads", bfa->threads, "Torch intra-op threads (default: torch's)");
  bf->add_option("--tensor", bfa->tensor, "Tensor-parallel size: groups of T ranks split the model")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  bf->add_option("--shape", bfa->shape, "smollm2-135m (T = 1, 3) or qwen2.5-0.5b (T = 1, 2)")->capture_default_str();
  bf->callback([bfa] { bench_forward(bfa->quick, bfa->threads, bfa->tensor, bfa->shape); });

  // bench load
  struct BenchLoad {
    std::string model, dtype = "float32";
    int tensor = 1, threads = 0;
  };
  auto bla = std::make_shared<BenchLoad>();
  auto* bl = sf::cli::bench_group(app).add_subcommand(
      "load", "Peak resident memory per rank of loading a model folder (--tensor T under mpirun)");
  bl->add_option("--model", bla->model, "Model folder")->required();
  bl->add_option("--tensor", bla->tensor, "Tensor-parallel size")->check(CLI::PositiveNumber)->capture_default_str();
  bl->add_option("--dtype", bla->dtype, "float32 or bfloat16")->capture_default_str();
  bl->add_option("--threads", bla->threads, "Torch intra-op threads (default: torch's)");
  bl->callback([bla] {
    if (bla->threads > 0) at::set_num_threads(bla->threads);
    bench_load(bla->model, bla->tensor, bla->dtype);
  });
}

}  // namespace

SF_COMMAND(setup);
