#include "heads/memory_bench.hpp"

#include <fstream>
#include <string>

#include "core/clock.hpp"
#include "core/error.hpp"
#include "extract/logit_dataset.hpp"
#include "extract/shard_writer.hpp"
#include "heads/head.hpp"
#include "heads/train.hpp"

namespace sf::heads {
namespace {

// A field of /proc/self/status in kB (VmRSS, VmHWM).
int64_t status_kb(const std::string& field) {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(field + ":", 0) == 0) return std::stoll(line.substr(field.size() + 1));
  }
  throw IoError("/proc/self/status: no field " + field + " (this benchmark needs Linux)");
}

void reset_peak() {
  std::ofstream out("/proc/self/clear_refs");
  out << "5";  // resets VmHWM to the current RSS
  if (!out) throw IoError("/proc/self/clear_refs: cannot reset the peak RSS");
}

}  // namespace

nlohmann::json bench_training_memory(const MemoryBenchOptions& o) {
  if (o.dataset_mb <= 0 || o.bound_mb <= 0) throw ConfigError("bench train-head: sizes must be positive");
  std::filesystem::remove_all(o.dir);
  std::filesystem::create_directories(o.dir);
  const std::filesystem::path file = o.dir / "logits.h5";
  const int64_t bytes_per_position = 2 * o.hidden + o.top_k * 8;
  const int64_t positions = (o.dataset_mb << 20) / bytes_per_position;
  torch::manual_seed(static_cast<int64_t>(o.seed));
  const torch::Tensor w = torch::randn({o.vocab, o.hidden}) / std::sqrt(static_cast<double>(o.hidden));  // [V,H]
  {
    extract::ShardLayout layout;
    layout.top_k = o.top_k;
    layout.hidden_size = o.hidden;
    layout.gzip_level = 0;
    extract::ShardWriter writer(file, {{"source", "bench train-head (synthetic)"}}, layout);
    constexpr int64_t kPerExample = 128;
    int64_t item = 0;
    for (int64_t done = 0; done < positions; done += kPerExample, ++item) {
      const int64_t n = std::min(kPerExample, positions - done);
      extract::ExtractedExample ex;
      ex.item = item;
      ex.example_id = item;
      ex.task = "synthetic";
      ex.finish_reason = "length";
      ex.aligned_prompt_ids = ex.base_prompt_ids = {1};
      ex.base_hidden = torch::randn({n, o.hidden});
      const torch::Tensor teacher = torch::matmul(ex.base_hidden, w.t()) + torch::randn({n, o.vocab});
      std::tie(ex.aligned_topk_logits, ex.aligned_topk_ids) = teacher.topk(o.top_k, 1);
      ex.base_topk_logits = ex.aligned_topk_logits;
      ex.base_topk_ids = ex.aligned_topk_ids;
      const torch::Tensor tokens = ex.aligned_topk_ids.select(1, 0).to(torch::kInt);
      ex.response_ids.assign(tokens.data_ptr<int32_t>(), tokens.data_ptr<int32_t>() + n);
      ex.is_eos = torch::zeros({n}, torch::kBool);
      writer.append({ex});
    }
    writer.finish();
  }
  const auto ds = extract::LogitDataset::open(file);
  std::vector<int64_t> train_rows, val_rows;
  for (int64_t r = 0; r < ds.num_examples(); ++r) (r % 20 == 19 ? val_rows : train_rows).push_back(r);
  const PositionSet train(ds, train_rows, o.vocab), val(ds, val_rows, o.vocab);
  const Head head = Head::init({"bench", "hidden", 0, 0}, o.vocab, o.hidden, o.seed);
  TrainOptions t;
  t.lr = 1e-3;
  t.epochs = 1;
  t.batch_tokens = o.batch_tokens;
  t.seed = o.seed;
  t.max_memory_bytes = o.bound_mb << 20;
  const int64_t before_kb = status_kb("VmRSS");
  reset_peak();
  const Stopwatch clock;
  EpochMetrics last;
  train_head(head, train, val, w, t, nullptr, [&](const EpochMetrics& m) { last = m; });
  const double seconds = clock.seconds();
  const int64_t peak_kb = status_kb("VmHWM");
  std::filesystem::remove_all(o.dir);
  const double mib = 1024.0;
  return {{"bench", "train-head"},
          {"dataset_mib", static_cast<double>(positions * bytes_per_position) / (1 << 20)},
          {"positions", positions},
          {"bound_mib", o.bound_mb},
          {"window_positions", last.window_positions},
          {"windows_per_epoch", last.windows_per_epoch},
          {"rss_before_mib", static_cast<double>(before_kb) / mib},
          {"peak_rss_mib", static_cast<double>(peak_kb) / mib},
          {"peak_over_before_mib", static_cast<double>(peak_kb - before_kb) / mib},
          {"head_and_adam_mib", 4.0 * 3 * static_cast<double>(o.vocab * o.hidden) / (1 << 20)},
          {"train_seconds", seconds},
          {"val_kl", last.val.kl}};
}

}  // namespace sf::heads
