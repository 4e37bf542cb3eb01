// Training heads on synthetic studies whose aligned model each head can express, with bounded
// memory windows.
#include <gtest/gtest.h>

#include <algorithm>

#include "core/error.hpp"
#include "extract/logit_dataset.hpp"
#include "heads/loss.hpp"
#include "heads/positions.hpp"
#include "heads/synthetic.hpp"
#include "heads/train.hpp"
#include "testutil/testutil.hpp"

namespace {

using sf::heads::EpochMetrics;
using sf::heads::Head;
using sf::heads::HeadSpec;
using sf::heads::PositionSet;
using sf::heads::TrainOptions;

struct Trained {
  Head head;
  std::vector<EpochMetrics> epochs;
};

struct Split {
  std::vector<int64_t> train, val;
};

Split split(const sf::extract::LogitDataset& ds, double fraction, uint64_t seed) {
  const auto is_val = sf::heads::validation_examples(ds.num_examples(), fraction, seed);
  Split s;
  for (int64_t r = 0; r < ds.num_examples(); ++r) (is_val[static_cast<size_t>(r)] ? s.val : s.train).push_back(r);
  return s;
}

Trained train(const sf::test::Study& study, const HeadSpec& spec, const TrainOptions& opts) {
  const auto ds = sf::extract::LogitDataset::open(study.dataset);
  const int64_t V = study.lm_head.size(0);
  const Split s = split(ds, 0.25, opts.seed);
  const PositionSet train(ds, s.train, V), val(ds, s.val, V);
  Trained r{Head::init(spec, V, study.lm_head.size(1), opts.seed), {}};
  sf::heads::train_head(r.head, train, val, study.lm_head, opts, nullptr,
                        [&](const EpochMetrics& m) { r.epochs.push_back(m); });
  return r;
}

TrainOptions options(double lr, int64_t epochs) {
  TrainOptions o;
  o.lr = lr;
  o.epochs = epochs;
  o.batch_tokens = 16;
  o.seed = 3;
  return o;
}

TEST(Split, ByExampleSeededAndRankIndependent) {
  const auto a = sf::heads::validation_examples(40, 0.25, 7);
  EXPECT_EQ(std::count(a.begin(), a.end(), true), 10);
  EXPECT_EQ(a, sf::heads::validation_examples(40, 0.25, 7));
  EXPECT_NE(a, sf::heads::validation_examples(40, 0.25, 8));
  const auto small = sf::heads::validation_examples(3, 0.01, 1);
  EXPECT_EQ(std::count(small.begin(), small.end(), true), 1);  // at least one validation example
  EXPECT_THROW(sf::heads::validation_examples(1, 0.5, 1), sf::ConfigError);
  EXPECT_THROW(sf::heads::validation_examples(10, 0.0, 1), sf::ConfigError);
}

TEST(Positions, SetsKeepExamplesWholeAndReadBlocksInOrder) {
  sf::test::TempDir dir("heads_positions");
  const auto study = sf::test::make_study(dir.path(), {});
  const auto ds = sf::extract::LogitDataset::open(study.dataset);
  const Split s = split(ds, 0.25, 5);
  const PositionSet val(ds, s.val, 48);
  int64_t val_tokens = 0;
  for (int64_t row : s.val) val_tokens += ds.example_tokens(row);
  EXPECT_EQ(val.size(), val_tokens);
  EXPECT_EQ(PositionSet(ds, s.train, 48).size() + val.size(), ds.num_tokens());
  const auto w = val.read_blocks({0});
  EXPECT_EQ(w.size(), std::min<int64_t>(val.size(), sf::heads::kBlockPositions));
  EXPECT_EQ(w.hidden.size(1), 16);
  // The first rows are the first validation example's positions, in order.
  const auto first = ds.tokens(ds.token_offset(s.val[0]), ds.example_tokens(s.val[0]));
  EXPECT_TRUE(w.aligned_ids.slice(0, 0, first.aligned_topk_ids.size(0)).to(torch::kLong).equal(first.aligned_topk_ids));
  EXPECT_THROW(PositionSet(ds, s.val, 20).read_blocks({0}), sf::ShapeError);  // ids >= vocab, naming the file
}

TEST(Positions, NonFiniteLogitsStopTrainingNamingTheExample) {
  sf::test::TempDir dir("heads_positions_nan");
  sf::test::StudyOptions so;
  so.nan_example = 5;
  const auto study = sf::test::make_study(dir.path(), so);
  const auto ds = sf::extract::LogitDataset::open(study.dataset);
  std::vector<int64_t> rows(static_cast<size_t>(ds.num_examples()));
  for (size_t i = 0; i < rows.size(); ++i) rows[i] = static_cast<int64_t>(i);
  const PositionSet all(ds, rows, 48);
  try {
    all.read_blocks({0});
    FAIL() << "NaN logits were read for training";
  } catch (const sf::NumericError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(study.dataset.string() + ", model aligned (aligned), task synthetic, example 5, position 1: "
                                              "top-k logits: entry 0 (token "),
              std::string::npos)
        << m;
  }
  // The examples before it are read normally.
  const std::vector<int64_t> first(rows.begin(), rows.begin() + 5);
  EXPECT_NO_THROW(PositionSet(ds, first, 48).read_blocks({0}));
}

TEST(Train, HiddenHeadLearnsAnExpressibleTeacher) {
  sf::test::TempDir dir("heads_train_hidden");
  sf::test::StudyOptions so;
  so.delta_scale = 0.4;
  const auto study = sf::test::make_study(dir.path(), so);
  const Trained r = train(study, {"hidden", "hidden", 0, 0}, options(0.02, 25));
  ASSERT_EQ(r.epochs.size(), 26u);
  const EpochMetrics& first = r.epochs.front();
  const EpochMetrics& last = r.epochs.back();
  // A fresh head is the base: same validation KL and agreement.
  EXPECT_NEAR(first.val.kl, first.base_val.kl, 1e-6);
  EXPECT_NEAR(first.val.top1, first.base_val.top1, 1e-9);
  EXPECT_GT(first.base_val.kl, 0.1);
  EXPECT_LT(last.val.kl, 0.25 * first.base_val.kl);
  EXPECT_LT(last.train_kl, 0.25 * first.train_kl);
  EXPECT_GT(last.val.top1, first.base_val.top1);
  EXPECT_EQ(last.steps_per_epoch, (last.train_positions + 15) / 16);  // one window: the whole set
  EXPECT_EQ(last.steps, 25 * last.steps_per_epoch);
}

TEST(Train, LowRankHeadLearnsALowRankTeacher) {
  sf::test::TempDir dir("heads_train_lowrank");
  sf::test::StudyOptions so;
  so.delta_scale = 0.4;
  so.delta_rank = 2;
  const auto study = sf::test::make_study(dir.path(), so);
  const Trained r = train(study, {"lowrank", "hidden", 2, 0}, options(0.02, 25));
  EXPECT_LT(r.epochs.back().val.kl, 0.35 * r.epochs.front().base_val.kl);
}

TEST(Train, BiasHeadLearnsABiasTeacher) {
  sf::test::TempDir dir("heads_train_bias");
  sf::test::StudyOptions so;
  so.bias_scale = 2.0;
  const auto study = sf::test::make_study(dir.path(), so);
  const Trained r = train(study, {"bias", "bias", 0, 0}, options(0.05, 25));
  EXPECT_LT(r.epochs.back().val.kl, 0.25 * r.epochs.front().base_val.kl);
}

// Both black-box kinds learn on their own base. The bb head, whose gain depends on the softmax of
// the support only, also moves a larger base of another logit scale towards its aligned model; the
// reference's bb_linear map is linear in the raw logits and is not expected to.
TEST(Train, BbHeadsLearnOnTheSupportAndTransferToALargerBase) {
  sf::test::TempDir dir("heads_train_bb");
  sf::test::StudyOptions so;
  so.bias_scale = 2.0;
  so.top_k = 24;
  const auto study = sf::test::make_study(dir.path(), so);
  for (const HeadSpec& spec : {HeadSpec{"bb", "bb", 8, 40}, HeadSpec{"bbl", "bb_linear", 8, 40}}) {
    const Trained r = train(study, spec, options(0.05, 25));
    const EpochMetrics& last = r.epochs.back();
    EXPECT_LT(last.val.kl, 0.5 * r.epochs.front().base_val.kl) << spec.type;
    EXPECT_GT(last.val.top1, r.epochs.front().base_val.top1) << spec.type;
    EXPECT_GT(last.val.coverage, 0.8) << spec.type;  // the teacher's mass lies mostly in the base top-40
    EXPECT_LE(last.val.coverage, 1.0 + 1e-6) << spec.type;
    if (spec.type != "bb") continue;

    // A larger base (hidden 3× as wide) with the same vocabulary, whose aligned model differs from
    // it by the same bias: the head, trained on the small base only, moves it towards its aligned model.
    torch::manual_seed(99);
    const torch::Tensor w_big = torch::randn({so.vocab, 3 * so.hidden}) * 0.3;
    const torch::Tensor h_big = torch::randn({200, 3 * so.hidden});
    const torch::Tensor base_big = torch::matmul(h_big, w_big.t());
    const auto aligned_topk = (base_big + study.bias).topk(so.top_k, 1);
    const torch::Tensor& a_logits = std::get<0>(aligned_topk);  // (not a structured binding: lambdas capture it)
    const torch::Tensor& a_ids = std::get<1>(aligned_topk);
    auto kl_to_aligned = [&](const torch::Tensor& logits) {
      return sf::heads::kl_topk_rows(a_logits, sf::heads::logprobs_at(logits, a_ids)).mean().item<double>();
    };
    torch::NoGradGuard no_grad;
    const double before = kl_to_aligned(base_big);
    const double after = kl_to_aligned(r.head.apply(base_big, h_big));
    EXPECT_LT(after, 0.7 * before) << spec.type << ": " << before << " -> " << after;
  }
}

TEST(Train, MemoryBoundStreamsWindowsAndStillLearns) {
  sf::test::TempDir dir("heads_train_window");
  sf::test::StudyOptions so;
  so.delta_scale = 0.4;
  so.examples = 120;  // ~660 positions: several blocks of 256
  const auto study = sf::test::make_study(dir.path(), so);
  TrainOptions small = options(0.02, 6);
  small.max_memory_bytes = 1;  // one block per window
  const Trained streamed = train(study, {"hidden", "hidden", 0, 0}, small);
  const EpochMetrics& last = streamed.epochs.back();
  EXPECT_GT(last.windows_per_epoch, 1);
  EXPECT_EQ(last.window_positions, sf::heads::kBlockPositions);
  EXPECT_LT(last.val.kl, 0.5 * streamed.epochs.front().base_val.kl);
  // The same data, held in memory at once: the same number of positions per epoch.
  const Trained held = train(study, {"hidden", "hidden", 0, 0}, options(0.02, 6));
  EXPECT_EQ(held.epochs.back().windows_per_epoch, 1);
  EXPECT_EQ(held.epochs.back().train_positions, last.train_positions);
  EXPECT_NEAR(held.epochs.front().base_val.kl, streamed.epochs.front().base_val.kl, 1e-6);
}

TEST(Train, SameSeedSameHead) {
  sf::test::TempDir dir("heads_train_seed");
  sf::test::StudyOptions so;
  so.delta_scale = 0.4;
  const auto study = sf::test::make_study(dir.path(), so);
  const Trained a = train(study, {"lowrank", "hidden", 3, 0}, options(0.02, 2));
  const Trained b = train(study, {"lowrank", "hidden", 3, 0}, options(0.02, 2));
  for (size_t i = 0; i < a.head.named_parameters().size(); ++i) {
    EXPECT_TRUE(a.head.named_parameters()[i].second.equal(b.head.named_parameters()[i].second));
  }
  EXPECT_FALSE(a.head.delta_weight().equal(torch::zeros_like(a.head.delta_weight())));
}

}  // namespace
