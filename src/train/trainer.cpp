#include "train/trainer.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "core/atomic_file.hpp"
#include "core/build_info.hpp"
#include "core/error.hpp"
#include "core/files.hpp"
#include "core/hash.hpp"
#include "core/stop.hpp"
#include "dist/comm.hpp"
#include "dist/layout.hpp"
#include "model/model_files.hpp"
#include "tokenizer/tokenizer.hpp"
#include "train/dataset.hpp"

namespace sf::train {
namespace {

namespace fs = std::filesystem;

constexpr const char* kCompleteMarker = "COMPLETE";
constexpr const char* kStateFile = "trainer_state.json";
const char* const kTokenizerFiles[] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                       "tokenizer.model"};

// The tokenizer files of a model folder; of a GGUF file, the tokenizer.json it is read from.
void copy_tokenizer_files(const fs::path& from, const fs::path& to) {
  if (model::is_gguf_model(from)) {
    write_file_atomically(to / "tokenizer.json", model::tokenizer_json_text(from));
    return;
  }
  if (!fs::is_regular_file(from / "tokenizer.json")) throw IoError((from / "tokenizer.json").string() + ": not found");
  for (const char* name : kTokenizerFiles) {
    if (fs::is_regular_file(from / name)) fs::copy_file(from / name, to / name, fs::copy_options::overwrite_existing);
  }
}

// What the trained model depends on besides the config: the tokenizer and the starting weights.
std::string run_hash(const TrainConfig& c, const fs::path& tokenizer_dir) {
  std::string s = c.hash + "|" + sha256_hex(model::tokenizer_json_text(tokenizer_dir));
  if (c.init_from && model::is_gguf_model(*c.init_from)) {
    s += "|" + sha256_file(*c.init_from);
  } else if (c.init_from) {
    const fs::path single = *c.init_from / "model.safetensors";
    s += "|" + sha256_file(*c.init_from / "config.json") + "|" +
         sha256_file(fs::exists(single) ? single : *c.init_from / "model.safetensors.index.json");
  }
  return sha256_hex(s);
}

struct Checkpoint {
  fs::path dir;
  int64_t step = 0;
  std::string hash;
};

std::string checkpoint_name(int64_t step) {
  std::string n = std::to_string(step);
  return "step-" + std::string(n.size() < 6 ? 6 - n.size() : 0, '0') + n;
}

// The newest finished checkpoint (its state file is written last, then the folder is renamed).
std::optional<Checkpoint> latest_checkpoint(const fs::path& out) {
  std::optional<Checkpoint> best;
  const fs::path root = out / "checkpoints";
  if (!fs::is_directory(root)) return best;
  for (const auto& e : fs::directory_iterator(root)) {
    const std::string name = e.path().filename().string();
    if (!e.is_directory() || name.rfind("step-", 0) != 0 || name.find('.') != std::string::npos) continue;
    if (!fs::is_regular_file(e.path() / kStateFile)) continue;
    const auto state = read_json_file(e.path() / kStateFile);
    if (!state.contains("step") || !state["step"].is_number_integer() || !state.contains("hash") ||
        !state["hash"].is_string()) {
      throw FormatError((e.path() / kStateFile).string() + ": expected integer 'step' and string 'hash'");
    }
    const auto step = state["step"].get<int64_t>();
    if (!best || step > best->step) best = Checkpoint{e.path(), step, state["hash"].get<std::string>()};
  }
  return best;
}

model::ModelConfig fresh_model_config(const ModelInit& init, const tok::Tokenizer& tok, const std::string& source) {
  model::ModelConfig mc;
  mc.model_type = init.arch;
  mc.vocab_size = tok.vocab_size();
  mc.hidden_size = init.hidden;
  mc.intermediate_size = init.intermediate;
  mc.num_hidden_layers = init.layers;
  mc.num_attention_heads = init.heads;
  mc.num_key_value_heads = init.kv_heads;
  mc.head_dim = init.hidden / init.heads;
  mc.max_position_embeddings = init.max_positions;
  mc.rms_norm_eps = 1e-5;
  mc.rope_theta = init.rope_theta;
  mc.tie_word_embeddings = init.tie_embeddings;
  mc.attention_bias = init.arch == "qwen2";
  auto id = [&](const std::string& token, const char* key) -> int64_t {
    const auto v = tok.token_to_id(token);
    if (!v) throw ConfigError(source + ": model." + key + ": '" + token + "' is not in " + tok.path().string());
    return *v;
  };
  mc.bos_token_id = id(init.bos_token, "bos_token");
  mc.eos_token_ids = {id(init.eos_token, "eos_token")};
  mc.torch_dtype = "float32";
  return mc;
}

int64_t targets_in(const Sequence& s) {
  int64_t n = 0;
  for (size_t t = 1; t < s.labels.size(); ++t) n += s.labels[t] != kIgnoreLabel;
  return n;
}

// Sums every rank's gradients in one flat buffer.
void allreduce_gradients(const dist::Comm& comm, const std::vector<torch::Tensor>& params) {
  std::vector<torch::Tensor> flat;
  flat.reserve(params.size());
  for (const auto& p : params) {
    flat.push_back(p.grad().defined() ? p.grad().reshape({-1}) : torch::zeros({p.numel()}, p.options()));
  }
  torch::Tensor buf = torch::cat(flat);
  comm.allreduce_sum(buf);
  int64_t offset = 0;
  for (const auto& p : params) {
    torch::Tensor g = buf.narrow(0, offset, p.numel()).view_as(p);
    if (p.grad().defined()) {
      p.mutable_grad().copy_(g);
    } else {
      p.mutable_grad() = g.clone();
    }
    offset += p.numel();
  }
}

class LossLog {
 public:
  // Starts loss.csv, or keeps the rows up to `resumed_from` of an existing one.
  LossLog(const fs::path& file, int64_t resumed_from) {
    std::string kept = "step,loss,lr,grad_norm,tokens,seconds\n";
    if (resumed_from > 0 && fs::exists(file)) {
      std::istringstream in(read_text_file(file));
      std::string line;
      std::getline(in, line);
      while (std::getline(in, line)) {
        if (!line.empty() && std::stoll(line.substr(0, line.find(','))) <= resumed_from) kept += line + "\n";
      }
    }
    write_file_atomically(file, kept);
    out_.open(file, std::ios::app);
    if (!out_) throw IoError(file.string() + ": cannot append");
  }
  void add(int64_t step, double loss, double lr, double grad_norm, int64_t tokens, double seconds) {
    char buf[160];
    std::snprintf(buf, sizeof(buf), "%lld,%.8g,%.6g,%.6g,%lld,%.3f\n", static_cast<long long>(step), loss, lr,
                  grad_norm, static_cast<long long>(tokens), seconds);
    out_ << buf;
    out_.flush();
  }

 private:
  std::ofstream out_;
};

}  // namespace

double learning_rate(const TrainConfig& c, int64_t step) {
  if (step < c.warmup) return c.lr * static_cast<double>(step + 1) / static_cast<double>(c.warmup);
  const int64_t decay_steps = c.steps - c.warmup;
  if (decay_steps <= 1) return c.lr;
  const double progress = static_cast<double>(step - c.warmup) / static_cast<double>(decay_steps - 1);
  return c.min_lr + 0.5 * (c.lr - c.min_lr) * (1.0 + std::cos(M_PI * std::min(1.0, progress)));
}

torch::Tensor token_loss_sum(const torch::Tensor& logits, const torch::Tensor& labels) {
  const int64_t T = logits.size(1), V = logits.size(2);
  if (labels.sizes() != logits.sizes().slice(0, 2)) throw ShapeError("token_loss_sum: labels must be [B,T]");
  const torch::Tensor pred = logits.narrow(1, 0, T - 1).reshape({-1, V});                   // [B*(T-1),V]
  const torch::Tensor target = labels.narrow(1, 1, T - 1).reshape({-1}).to(pred.device());  // [B*(T-1)]
  return torch::nn::functional::cross_entropy(
      pred, target, torch::nn::functional::CrossEntropyFuncOptions().ignore_index(kIgnoreLabel).reduction(torch::kSum));
}

int64_t count_targets(const torch::Tensor& labels) {
  return labels.narrow(1, 1, labels.size(1) - 1).ne(kIgnoreLabel).sum().item<int64_t>();
}

int64_t loss_window(const torch::Tensor& labels) {
  const int64_t T = labels.size(1);
  const torch::Tensor counted = labels.narrow(1, 1, T - 1).ne(kIgnoreLabel).any(0);  // [T-1]: position t+1 counts
  const torch::Tensor idx = counted.nonzero();
  if (idx.numel() == 0) return std::min<int64_t>(T, 2);
  const int64_t first = idx.min().item<int64_t>();  // logits at position `first` predict the first target
  return std::max<int64_t>(std::min<int64_t>(T, 2), T - first);
}

std::unique_ptr<torch::optim::AdamW> make_optimizer(const model::CausalLM& model, const TrainConfig& c) {
  std::vector<torch::Tensor> decay, no_decay;
  for (auto& [name, p] : model.named_parameters()) {
    p.requires_grad_(true);
    (p.dim() >= 2 ? decay : no_decay).push_back(p);
  }
  auto options = [&](double wd) {
    return torch::optim::AdamWOptions(c.lr).betas({c.beta1, c.beta2}).eps(c.eps).weight_decay(wd);
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(options(c.weight_decay)));
  if (!no_decay.empty()) groups.emplace_back(no_decay, std::make_unique<torch::optim::AdamWOptions>(options(0.0)));
  return std::make_unique<torch::optim::AdamW>(groups, options(c.weight_decay));
}

TrainResult run_training(const TrainConfig& c) {
  const dist::Comm& comm = dist::Comm::world();
  const fs::path& out = c.out;
  const fs::path tokenizer_dir = c.init_from ? *c.init_from : c.init->tokenizer;
  const std::string hash = run_hash(c, tokenizer_dir);
  TrainResult result;

  if (fs::exists(out / kCompleteMarker)) {
    const auto done = read_json_file(out / kCompleteMarker);
    if (done.value("hash", std::string()) != hash) {
      throw ConfigError(out.string() + ": holds a model trained from a different config or input model; remove it " +
                        "or choose another `out` (" + c.source + ")");
    }
    spdlog::info("{}: already built", out.string());
    result.cached = true;
    result.complete = true;
    result.last_step = done.value("steps", int64_t{0});
    return result;
  }

  const int threads = comm.threads_per_rank(c.threads);
  torch::set_num_threads(threads);
  model::LoadOptions load_opts;
  if (c.device == "cuda") load_opts.device = dist::rank_cuda_device(c.source, comm);

  const auto tokenizer = model::load_tokenizer(tokenizer_dir);
  const auto checkpoint = latest_checkpoint(out);
  if (checkpoint && checkpoint->hash != hash) {
    throw ConfigError(checkpoint->dir.string() + ": checkpoint of a different config or input model; remove " +
                      (out / "checkpoints").string() + " to start over");
  }
  std::optional<model::CausalLM> loaded;
  if (checkpoint) {
    loaded = model::CausalLM::load(checkpoint->dir, load_opts);
    result.resumed_from = checkpoint->step;
  } else if (c.init_from) {
    loaded = model::CausalLM::load(*c.init_from, load_opts);
  } else {
    loaded = model::CausalLM::random(fresh_model_config(*c.init, tokenizer, c.source), c.seed, load_opts);
  }
  const model::CausalLM& model = *loaded;
  if (model.config().vocab_size < tokenizer.vocab_size()) {
    throw ShapeError(tokenizer.path().string() + ": " + std::to_string(tokenizer.vocab_size()) +
                     " ids do not fit the model's vocab_size " + std::to_string(model.config().vocab_size));
  }
  if (model.config().eos_token_ids.empty()) {
    throw ConfigError(c.source +
                      ": model.init_from: the model's config names no eos_token_id (needed to end each example)");
  }
  const auto eos_id = static_cast<int32_t>(model.config().eos_token_ids.front());

  const BuiltRows data = build_rows(c, tokenizer, eos_id);
  const int64_t ranks = comm.size();
  if (c.batch % (ranks * c.accum) != 0) {
    throw ConfigError(c.source + ": batch " + std::to_string(c.batch) + " is not a multiple of ranks (" +
                      std::to_string(ranks) + ") x accum (" + std::to_string(c.accum) + ")");
  }
  const int64_t micro = c.batch / (ranks * c.accum);
  const RowSampler sampler(static_cast<int64_t>(data.rows.size()), c.seed);

  auto optimizer = make_optimizer(model, c);
  std::vector<torch::Tensor> params;
  for (const auto& named : model.named_parameters()) params.push_back(named.second);
  if (checkpoint) torch::load(*optimizer, (checkpoint->dir / "optimizer.pt").string());

  if (comm.is_root()) {
    fs::create_directories(out);
    spdlog::info(
        "train {} ({}): {} rows of <= {} tokens ({} tokens, {} skipped), {} parameters, {} rank(s) x {} thread(s)",
        out.string(), c.recipe_name, data.rows.size(), c.seq_len, data.tokens, data.skipped,
        [&] {
          int64_t n = 0;
          for (const auto& p : params) n += p.numel();
          return n;
        }(),
        ranks, threads);
    if (checkpoint) spdlog::info("resuming from {} (step {})", checkpoint->dir.string(), checkpoint->step);
  }
  std::optional<LossLog> loss_log;
  if (comm.is_root()) loss_log.emplace(out / "loss.csv", result.resumed_from);
  comm.barrier();

  auto save_checkpoint = [&](int64_t step) {
    if (comm.is_root()) {
      const fs::path final_dir = out / "checkpoints" / checkpoint_name(step);
      const fs::path tmp = final_dir.string() + ".tmp";
      fs::remove_all(tmp);
      model.save(tmp);
      copy_tokenizer_files(tokenizer_dir, tmp);
      torch::save(*optimizer, (tmp / "optimizer.pt").string());
      write_file_atomically(tmp / kStateFile, nlohmann::json{{"step", step}, {"hash", hash}}.dump(2) + "\n");
      fs::remove_all(final_dir);
      rename_path(tmp, final_dir);
      sync_path(final_dir.parent_path());
      for (const auto& e : fs::directory_iterator(out / "checkpoints")) {
        if (e.path() != final_dir) fs::remove_all(e.path());
      }
      spdlog::info("checkpoint {}", final_dir.string());
    }
    comm.barrier();
  };

  install_stop_handlers();
  const auto t0 = std::chrono::steady_clock::now();
  double last_loss = std::numeric_limits<double>::quiet_NaN();
  int64_t step = result.resumed_from;
  while (step < c.steps) {
    const std::vector<int64_t> rows = sampler.batch(step, c.batch);
    int64_t targets = 0;
    for (int64_t i : rows) targets += targets_in(data.rows[static_cast<size_t>(i)]);
    if (targets == 0) throw ShapeError(c.source + ": step " + std::to_string(step + 1) + ": the batch has no target");

    optimizer->zero_grad();
    double local_loss = 0;
    int64_t local_tokens = 0;
    for (int64_t a = 0; a < c.accum; ++a) {
      const int64_t first = (comm.rank() * c.accum + a) * micro;
      std::vector<const Sequence*> mb;
      for (int64_t i = first; i < first + micro; ++i)
        mb.push_back(&data.rows[static_cast<size_t>(rows[static_cast<size_t>(i)])]);
      const Batch b = collate(mb, eos_id, c.response_logits_only);
      // With response_logits_only, logits only for the final w positions that predict targets.
      const int64_t w = c.response_logits_only ? loss_window(b.labels) : 0;
      const auto fwd = model.forward(b.ids, b.mask, nullptr, w);  // logits [B,T,V] or [B,w,V]
      const torch::Tensor labels = w > 0 ? b.labels.narrow(1, b.labels.size(1) - w, w) : b.labels;
      const torch::Tensor loss_sum = token_loss_sum(fwd.logits, labels);  // scalar
      (loss_sum / static_cast<double>(targets)).backward();
      local_loss += loss_sum.item<double>();
      local_tokens += b.mask.sum().item<int64_t>();
    }
    if (ranks > 1) allreduce_gradients(comm, params);
    const double grad_norm =
        torch::nn::utils::clip_grad_norm_(params, c.clip > 0 ? c.clip : std::numeric_limits<double>::infinity());
    const double lr = learning_rate(c, step);
    for (auto& group : optimizer->param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
    optimizer->step();
    ++step;

    last_loss = (ranks > 1 ? comm.allreduce_sum(local_loss) : local_loss) / static_cast<double>(targets);
    const int64_t tokens = ranks > 1 ? comm.allreduce_sum(local_tokens) : local_tokens;
    if (!std::isfinite(last_loss)) {
      throw Error(c.source + ": step " + std::to_string(step) + ": the loss is not finite (try a lower lr)");
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (loss_log) loss_log->add(step, last_loss, lr, grad_norm, tokens, seconds);
    if (comm.is_root() && (step % c.log_every == 0 || step == c.steps)) {
      spdlog::info("step {}/{} loss {:.4f} lr {:.3g} |g| {:.3g} ({:.1f} s)", step, c.steps, last_loss, lr, grad_norm,
                   seconds);
    }
    if (c.stop_after > 0 && step == c.stop_after && step < c.steps) {
      save_checkpoint(step);
      result.last_step = step;
      return result;
    }
    if (c.save_every > 0 && step % c.save_every == 0 && step < c.steps) save_checkpoint(step);
    // SIGTERM / SIGUSR1 on any rank: every rank stops after this step, with a checkpoint.
    const bool stop = stop_requested();
    if (step < c.steps && (ranks > 1 ? comm.allreduce_max(stop ? 1.0 : 0.0) > 0 : stop)) {
      save_checkpoint(step);
      throw Interrupted(out.string() + ": training stopped at step " + std::to_string(step) + " by a signal; run " +
                        "the same command again to resume");
    }
  }

  if (comm.is_root()) {
    model.save(out);
    copy_tokenizer_files(tokenizer_dir, out);
    write_file_atomically(out / "train_config.yaml", c.resolved_yaml);
    nlohmann::json heldout_counts = nlohmann::json::object();
    for (const auto& [file, rows] : data.heldout) {
      std::string lines;
      for (const auto& row : rows) lines += nlohmann::json(row).dump() + "\n";
      write_file_atomically(out / file, lines);
      heldout_counts[file] = rows.size();
    }
    nlohmann::json summary = {
        {"recipe", c.recipe_name},
        {"steps", c.steps},
        {"final_loss", last_loss},
        {"rows", data.rows.size()},
        {"tokens_per_epoch", data.tokens},
        {"skipped_records", data.skipped},
        {"heldout_records", heldout_counts},
        {"records", data.records_per_source},
        {"ranks", ranks},
        {"threads_per_rank", threads},
        {"resumed_from", result.resumed_from},
        {"seconds_this_run", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()},
        {"hash", hash},
        {"tool_version", build::kVersion},
        {"git_sha", build::kGitSha}};
    write_file_atomically(out / "train_summary.json", summary.dump(2) + "\n");
    write_file_atomically(out / kCompleteMarker, nlohmann::json{{"hash", hash}, {"steps", c.steps}}.dump(2) + "\n");
    fs::remove_all(out / "checkpoints");
    spdlog::info("trained {} ({} steps, final loss {:.4f})", out.string(), c.steps, last_loss);
  }
  comm.barrier();
  result.last_step = step;
  result.complete = true;
  return result;
}

}  // namespace sf::train
