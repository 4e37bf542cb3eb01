#include "heads/train.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "core/error.hpp"
#include "dist/comm.hpp"
#include "extract/logit_dataset.hpp"
#include "heads/loss.hpp"
#include "heads/rng.hpp"

namespace sf::heads {
namespace {

double sum_over_ranks(const dist::Comm* comm, double v) { return comm ? comm->allreduce_sum(v) : v; }

// The positions `idx` (local rows, CPU int64) of a set, on the device, ids as int64.
struct Batch {
  torch::Tensor hidden, aligned_logits, aligned_ids, base_logits, base_ids;
};

Batch gather(const TokenSet& s, const torch::Tensor& idx, torch::Device device) {
  auto take = [&](const torch::Tensor& t, bool ids) {
    if (!t.defined()) return torch::Tensor();
    torch::Tensor out = t.index_select(0, idx).to(device);
    return ids ? out.to(torch::kLong) : out;
  };
  return {take(s.hidden, false), take(s.aligned_logits, false), take(s.aligned_ids, true), take(s.base_logits, false),
          take(s.base_ids, true)};
}

// Per position: KL to the aligned top-k softmax [n] and the student's top-1 id [n].
std::pair<torch::Tensor, torch::Tensor> student_rows(const Head& head, bool base_only, const Batch& b,
                                                     const torch::Tensor& w) {
  if (head.variant() == "bb") {
    const int64_t k = head.spec().k;
    const torch::Tensor support = b.base_ids.narrow(1, 0, k);  // [n,k]
    const torch::Tensor z =
        base_only ? b.base_logits.narrow(1, 0, k) : head.corrected_support(b.base_logits, b.base_ids);
    const torch::Tensor pos = positions_in_support(b.aligned_ids, support);           // [n,ka]
    const torch::Tensor logq = torch::log_softmax(z, 1).gather(1, pos.clamp_min(0));  // [n,ka]
    const torch::Tensor kl = kl_topk_rows(b.aligned_logits, logq, pos.ge(0));         // [n]
    return {kl, support.gather(1, z.argmax(1, /*keepdim=*/true)).squeeze(1)};
  }
  const torch::Tensor logits =
      base_only ? torch::matmul(b.hidden, w.t()) : head.corrected_logits(b.hidden, w);  // [n,V]
  return {kl_topk_rows(b.aligned_logits, logprobs_at(logits, b.aligned_ids)), logits.argmax(1)};
}

void check_set(const Head& head, const TokenSet& s, const torch::Tensor& w, const std::string& which) {
  const std::string who = "head '" + head.spec().name + "': " + which + " positions";
  if (!s.aligned_ids.defined()) return;
  if (head.variant() == "bb") {
    if (!s.base_ids.defined()) throw ShapeError(who + ": base top-k logits were not loaded");
    if (s.base_ids.size(1) < head.spec().k) {
      throw ConfigError(who + ": k = " + std::to_string(head.spec().k) + " exceeds the dataset's top-k " +
                        std::to_string(s.base_ids.size(1)));
    }
  } else {
    if (!s.hidden.defined() || !w.defined()) throw ShapeError(who + ": base hidden states were not loaded");
    if (w.size(0) != head.vocab_size() || s.hidden.size(1) != w.size(1)) {
      throw ShapeError(who + ": hidden size " + std::to_string(s.hidden.size(1)) + " / lm_head " + c10::str(w.sizes()) +
                       " do not fit the head");
    }
  }
}

}  // namespace

std::vector<bool> validation_examples(int64_t num_examples, double val_fraction, uint64_t seed) {
  if (!(val_fraction > 0.0 && val_fraction < 1.0)) {
    throw ConfigError("heads.val_fraction: must be in (0, 1), got " + std::to_string(val_fraction));
  }
  if (num_examples < 2) {
    throw ConfigError("heads: the logit dataset has " + std::to_string(num_examples) +
                      " examples; a train/validation split needs at least 2");
  }
  auto n_val = static_cast<int64_t>(std::llround(val_fraction * static_cast<double>(num_examples)));
  n_val = std::clamp<int64_t>(n_val, 1, num_examples - 1);
  std::vector<bool> val(static_cast<size_t>(num_examples), false);
  const std::vector<int64_t> perm = permutation(num_examples, mix_seed(seed, 0x5e1f));
  for (int64_t i = 0; i < n_val; ++i) val[static_cast<size_t>(perm[static_cast<size_t>(i)])] = true;
  return val;
}

std::pair<int64_t, int64_t> rank_rows(int64_t num_examples, int rank, int size) {
  return {num_examples * rank / size, num_examples * (rank + 1) / size};
}

SplitData load_split(const extract::LogitDataset& ds, const dist::Comm* comm, double val_fraction, uint64_t seed,
                     bool need_hidden, bool need_base_topk, int64_t vocab_size) {
  const int64_t n_ex = ds.num_examples();
  const std::vector<bool> is_val = validation_examples(n_ex, val_fraction, seed);
  const auto [lo, hi] = rank_rows(n_ex, comm ? comm->rank() : 0, comm ? comm->size() : 1);
  SplitData out;
  for (int64_t row = 0; row < n_ex; ++row) {
    const bool v = is_val[static_cast<size_t>(row)];
    TokenSet& s = v ? out.val : out.train;
    (v ? out.val_examples : out.train_examples) += 1;
    if (row < lo) s.offset += ds.example_tokens(row);
    s.total += ds.example_tokens(row);
  }
  std::vector<torch::Tensor> parts[2][5];  // [train/val][hidden, aligned logits/ids, base logits/ids]
  for (int64_t row = lo; row < hi; ++row) {
    const int64_t n = ds.example_tokens(row);
    if (n == 0) continue;
    const extract::TokenRows r = ds.tokens(ds.token_offset(row), n);
    const int64_t max_id = std::max(r.aligned_topk_ids.max().item<int64_t>(),
                                    need_base_topk ? r.base_topk_ids.max().item<int64_t>() : int64_t{0});
    const int64_t min_id = std::min(r.aligned_topk_ids.min().item<int64_t>(),
                                    need_base_topk ? r.base_topk_ids.min().item<int64_t>() : int64_t{0});
    if (min_id < 0 || max_id >= vocab_size) {
      throw ShapeError(ds.path().string() + ": example row " + std::to_string(row) + ": token ids outside [0," +
                       std::to_string(vocab_size) + ") of the base vocabulary");
    }
    auto& p = parts[is_val[static_cast<size_t>(row)] ? 1 : 0];
    if (need_hidden) p[0].push_back(r.base_hidden.to(torch::kFloat32));
    p[1].push_back(r.aligned_topk_logits.to(torch::kFloat32));
    p[2].push_back(r.aligned_topk_ids.to(torch::kInt));
    if (need_base_topk) {
      p[3].push_back(r.base_topk_logits.to(torch::kFloat32));
      p[4].push_back(r.base_topk_ids.to(torch::kInt));
    }
  }
  const int64_t k = ds.top_k();
  const int64_t h = ds.hidden_size();
  for (int which = 0; which < 2; ++which) {
    TokenSet& s = which ? out.val : out.train;
    auto cat = [&](std::vector<torch::Tensor>& v, int64_t cols, torch::Dtype dt) {
      torch::Tensor t = v.empty() ? torch::empty({0, cols}, dt) : torch::cat(v, 0);
      v.clear();
      return t;
    };
    if (need_hidden) s.hidden = cat(parts[which][0], h, torch::kFloat32);
    s.aligned_logits = cat(parts[which][1], k, torch::kFloat32);
    s.aligned_ids = cat(parts[which][2], k, torch::kInt);
    if (need_base_topk) {
      s.base_logits = cat(parts[which][3], k, torch::kFloat32);
      s.base_ids = cat(parts[which][4], k, torch::kInt);
    }
  }
  return out;
}

nlohmann::json EpochMetrics::to_json() const {
  return {{"epoch", epoch},
          {"steps", steps},
          {"train_kl", train_kl},
          {"val_kl", val.kl},
          {"val_top1", val.top1},
          {"base_train_kl", base_train.kl},
          {"base_train_top1", base_train.top1},
          {"base_val_kl", base_val.kl},
          {"base_val_top1", base_val.top1},
          {"train_positions", train_positions},
          {"val_positions", val_positions},
          {"support", support},
          {"seconds", seconds}};
}

EvalStats evaluate(const Head& head, bool base_only, const TokenSet& set, const torch::Tensor& lm_head_weight,
                   const TrainOptions& opts, const dist::Comm* comm) {
  torch::NoGradGuard no_grad;
  check_set(head, set, lm_head_weight, "evaluation");
  double kl = 0;
  double matches = 0;
  for (int64_t lo = 0; lo < set.size(); lo += opts.batch_tokens) {
    const int64_t n = std::min(opts.batch_tokens, set.size() - lo);
    const Batch b = gather(set, torch::arange(lo, lo + n, torch::kLong), opts.device);
    const auto [rows, top1] = student_rows(head, base_only, b, lm_head_weight);
    kl += rows.sum().item<double>();
    matches += static_cast<double>(top1_matches(top1, b.aligned_ids.select(1, 0)));
  }
  kl = sum_over_ranks(comm, kl);
  matches = sum_over_ranks(comm, matches);
  const double total = static_cast<double>(set.total);
  return total > 0 ? EvalStats{kl / total, matches / total} : EvalStats{};
}

void train_head(const Head& head, const SplitData& data, const torch::Tensor& lm_head_weight, const TrainOptions& opts,
                const dist::Comm* comm, const std::function<void(const EpochMetrics&)>& on_epoch) {
  if (opts.lr <= 0 || opts.epochs < 0 || opts.batch_tokens <= 0) {
    throw ConfigError("heads: lr and batch_tokens must be positive and epochs >= 0");
  }
  check_set(head, data.train, lm_head_weight, "training");
  check_set(head, data.val, lm_head_weight, "validation");
  const auto start = std::chrono::steady_clock::now();
  EpochMetrics m;
  m.support = head.variant() == "bb" ? "base_topk" : "vocab";
  m.train_positions = data.train.total;
  m.val_positions = data.val.total;
  m.base_train = evaluate(head, true, data.train, lm_head_weight, opts, comm);
  m.base_val = evaluate(head, true, data.val, lm_head_weight, opts, comm);
  auto finish_epoch = [&] {
    m.val = evaluate(head, false, data.val, lm_head_weight, opts, comm);
    m.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    on_epoch(m);
  };
  m.train_kl = evaluate(head, false, data.train, lm_head_weight, opts, comm).kl;
  finish_epoch();

  std::vector<torch::Tensor> params;
  for (const auto& [name, t] : head.named_parameters()) params.push_back(t.requires_grad_(true));
  torch::optim::Adam adam(params, torch::optim::AdamOptions(opts.lr));
  const TokenSet& train = data.train;
  const int64_t lo = train.offset;
  const int64_t hi = train.offset + train.size();
  for (int64_t epoch = 1; epoch <= opts.epochs; ++epoch) {
    const std::vector<int64_t> order = permutation(train.total, mix_seed(opts.seed, static_cast<uint64_t>(epoch)));
    double kl_sum = 0;
    for (int64_t first = 0; first < train.total; first += opts.batch_tokens) {
      const int64_t last = std::min(train.total, first + opts.batch_tokens);
      std::vector<int64_t> local;
      for (int64_t i = first; i < last; ++i) {
        const int64_t g = order[static_cast<size_t>(i)];
        if (g >= lo && g < hi) local.push_back(g - lo);
      }
      adam.zero_grad();
      if (!local.empty()) {
        const Batch b = gather(train, torch::tensor(local, torch::kLong), opts.device);
        const torch::Tensor sum = student_rows(head, false, b, lm_head_weight).first.sum();
        (sum / static_cast<double>(last - first)).backward();
        kl_sum += sum.item<double>();
      }
      for (torch::Tensor& p : params) {
        if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
        if (comm && comm->size() > 1) comm->allreduce_sum(p.mutable_grad());
      }
      adam.step();
      ++m.steps;
    }
    m.epoch = epoch;
    m.train_kl = train.total > 0 ? sum_over_ranks(comm, kl_sum) / static_cast<double>(train.total) : 0.0;
    finish_epoch();
  }
  for (torch::Tensor& p : params) {
    p.requires_grad_(false);
    p.mutable_grad() = torch::Tensor();
  }
}

}  // namespace sf::heads
