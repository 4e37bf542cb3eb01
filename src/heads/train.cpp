#include "heads/train.hpp"

#include <algorithm>
#include <optional>

#include "core/clock.hpp"
#include "core/error.hpp"
#include "dist/comm.hpp"
#include "heads/loss.hpp"
#include "heads/objective.hpp"
#include "heads/rng.hpp"

namespace sf::heads {
namespace {

double sum_over_ranks(const dist::Comm* comm, double v) { return comm ? comm->allreduce_sum(v) : v; }

// This rank's share [lo, hi) of m positions.
std::pair<int64_t, int64_t> share(int64_t m, const dist::Comm* comm) {
  const int64_t r = comm ? comm->rank() : 0, size = comm ? comm->size() : 1;
  return {m * r / size, m * (r + 1) / size};
}

PositionBatch to_batch(const Window& w, const torch::Tensor& rows, torch::Device device) {
  return {w.hidden.index_select(0, rows).to(device, torch::kFloat32),
          w.aligned_logits.index_select(0, rows).to(device, torch::kFloat32),
          w.aligned_ids.index_select(0, rows).to(device, torch::kLong)};
}

// How many blocks a window holds: as many as the memory bound allows, at least one step's worth.
int64_t blocks_per_window(const PositionSet& set, const TrainOptions& opts) {
  const int64_t fit = opts.max_memory_bytes / std::max<int64_t>(1, set.bytes_per_position()) / kBlockPositions;
  const int64_t one_step = (opts.batch_tokens + kBlockPositions - 1) / kBlockPositions;
  return std::max<int64_t>({fit, one_step, 1});
}

// Windows of a set: read from the file each time, or (when `cache` is set) gathered from the
// whole set held in memory. Either way a window's rows come in the order of its blocks.
class WindowSource {
 public:
  WindowSource(const PositionSet& set, bool cache) : set_(set) {
    if (cache && set.size() > 0) {
      std::vector<int64_t> all(static_cast<size_t>(set.num_blocks()));
      for (int64_t b = 0; b < set.num_blocks(); ++b) all[static_cast<size_t>(b)] = b;
      cache_ = set.read_blocks(all);
    }
  }

  // The data holding the window and the window's rows in it (block order).
  std::pair<Window, torch::Tensor> get(const std::vector<int64_t>& blocks) const {
    if (!cache_) {
      Window w = set_.read_blocks(blocks);
      return {w, torch::arange(w.size(), torch::kLong)};
    }
    std::vector<torch::Tensor> rows;
    for (int64_t b : blocks)
      rows.push_back(
          torch::arange(b * kBlockPositions, std::min(set_.size(), (b + 1) * kBlockPositions), torch::kLong));
    return {*cache_, rows.empty() ? torch::zeros({0}, torch::kLong) : torch::cat(rows)};
  }

 private:
  const PositionSet& set_;
  std::optional<Window> cache_;
};

torch::Tensor permuted(const torch::Tensor& rows, uint64_t seed) {
  const std::vector<int64_t> p = permutation(rows.size(0), seed);
  return rows.index_select(0, torch::tensor(p, torch::kLong));
}

EvalStats evaluate_on(const Head* head, const PositionSet& set, const WindowSource& source, int64_t per_window,
                      const torch::Tensor& w, const TrainOptions& opts, int64_t support_k, const dist::Comm* comm) {
  torch::NoGradGuard no_grad;
  double kl = 0, matches = 0, coverage = 0;
  for (int64_t first = 0; first < set.num_blocks(); first += per_window) {
    std::vector<int64_t> blocks;
    for (int64_t b = first; b < std::min(set.num_blocks(), first + per_window); ++b) blocks.push_back(b);
    const auto [data, rows] = source.get(blocks);
    const auto [lo, hi] = share(rows.size(0), comm);
    for (int64_t s = lo; s < hi; s += opts.batch_tokens) {
      const PositionBatch b = to_batch(data, rows.slice(0, s, std::min(hi, s + opts.batch_tokens)), opts.device);
      const RowStats r = objective_rows(head, b, w, support_k);
      kl += r.kl.sum().item<double>();
      matches += static_cast<double>(top1_matches(r.top1, b.aligned_ids.select(1, 0)));
      if (r.coverage.defined()) coverage += r.coverage.sum().item<double>();
    }
  }
  const double total = static_cast<double>(set.size());
  if (total == 0) return {};
  return {sum_over_ranks(comm, kl) / total, sum_over_ranks(comm, matches) / total,
          sum_over_ranks(comm, coverage) / total};
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

nlohmann::json EpochMetrics::to_json() const {
  return {{"epoch", epoch},
          {"steps", steps},
          {"steps_per_epoch", steps_per_epoch},
          {"windows_per_epoch", windows_per_epoch},
          {"window_positions", window_positions},
          {"train_kl", train_kl},
          {"val_kl", val.kl},
          {"val_top1", val.top1},
          {"val_coverage", val.coverage},
          {"base_train_kl", base_train.kl},
          {"base_train_top1", base_train.top1},
          {"base_val_kl", base_val.kl},
          {"base_val_top1", base_val.top1},
          {"train_coverage", base_train.coverage},
          {"train_positions", train_positions},
          {"val_positions", val_positions},
          {"seconds", seconds}};
}

void train_head(const Head& head, const PositionSet& train, const PositionSet& val, const torch::Tensor& w,
                const TrainOptions& opts, const dist::Comm* comm,
                const std::function<void(const EpochMetrics&)>& on_epoch) {
  if (opts.lr <= 0 || opts.epochs < 0 || opts.batch_tokens <= 0 || opts.max_memory_bytes <= 0)
    throw ConfigError("heads: lr, batch_tokens and max_memory must be positive and epochs >= 0");
  if (train.size() == 0) throw ConfigError("head '" + head.spec().name + "': no training positions");
  if (w.device() != opts.device) throw ShapeError("train_head: lm_head weight is not on " + opts.device.str());
  const Stopwatch clock;
  const int64_t per_window = blocks_per_window(train, opts);
  const int64_t bound = per_window * kBlockPositions;
  const bool cache_train = train.size() <= bound;
  const WindowSource train_source(train, cache_train);
  const WindowSource val_source(val, cache_train && train.size() + val.size() <= bound);
  const int64_t support_k = head.spec().k;

  EpochMetrics m;
  m.train_positions = train.size();
  m.val_positions = val.size();
  m.window_positions = std::min(bound, train.size());
  m.windows_per_epoch = (train.num_blocks() + per_window - 1) / per_window;
  for (int64_t first = 0; first < train.num_blocks(); first += per_window) {
    const int64_t n = std::min(train.size(), (first + per_window) * kBlockPositions) - first * kBlockPositions;
    m.steps_per_epoch += (n + opts.batch_tokens - 1) / opts.batch_tokens;
  }
  m.base_train = evaluate_on(nullptr, train, train_source, per_window, w, opts, support_k, comm);
  m.base_val = evaluate_on(nullptr, val, val_source, per_window, w, opts, support_k, comm);
  auto finish_epoch = [&] {
    m.val = evaluate_on(&head, val, val_source, per_window, w, opts, support_k, comm);
    m.seconds = clock.seconds();
    on_epoch(m);
  };
  m.train_kl = evaluate_on(&head, train, train_source, per_window, w, opts, 0, comm).kl;
  finish_epoch();

  std::vector<torch::Tensor> params;
  for (const auto& [name, t] : head.named_parameters()) params.push_back(t.requires_grad_(true));
  torch::optim::Adam adam(params, torch::optim::AdamOptions(opts.lr));
  for (int64_t epoch = 1; epoch <= opts.epochs; ++epoch) {
    const uint64_t epoch_seed = mix_seed(opts.seed, static_cast<uint64_t>(epoch));
    const std::vector<int64_t> order = permutation(train.num_blocks(), epoch_seed);
    double kl_sum = 0;
    for (int64_t first = 0, window = 0; first < train.num_blocks(); first += per_window, ++window) {
      const std::vector<int64_t> blocks(order.begin() + first,
                                        order.begin() + std::min(train.num_blocks(), first + per_window));
      const auto [data, in_order] = train_source.get(blocks);
      const torch::Tensor rows = permuted(in_order, mix_seed(epoch_seed, static_cast<uint64_t>(window) + 1));
      const int64_t n = rows.size(0);
      for (int64_t step = 0; step < n; step += opts.batch_tokens) {
        const int64_t size = std::min(opts.batch_tokens, n - step);
        const auto [lo, hi] = share(size, comm);
        adam.zero_grad();
        if (hi > lo) {
          const PositionBatch b = to_batch(data, rows.slice(0, step + lo, step + hi), opts.device);
          const torch::Tensor sum = objective_rows(&head, b, w).kl.sum();
          (sum / static_cast<double>(size)).backward();
          kl_sum += sum.item<double>();
        }
        for (torch::Tensor& p : params) {
          if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
          if (comm && comm->size() > 1) comm->allreduce_sum(p.mutable_grad());
        }
        adam.step();
        ++m.steps;
      }
    }
    m.epoch = epoch;
    m.train_kl = sum_over_ranks(comm, kl_sum) / static_cast<double>(train.size());
    finish_epoch();
  }
  for (torch::Tensor& p : params) {
    p.requires_grad_(false);
    p.mutable_grad() = torch::Tensor();
  }
}

}  // namespace sf::heads
