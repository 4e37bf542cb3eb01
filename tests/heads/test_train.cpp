// Training heads on synthetic studies whose aligned model each head can express.
#include <gtest/gtest.h>

#include <algorithm>

#include "core/error.hpp"
#include "extract/logit_dataset.hpp"
#include "heads/loss.hpp"
#include "heads/synthetic.hpp"
#include "heads/train.hpp"
#include "testutil/testutil.hpp"

namespace {

using sf::heads::EpochMetrics;
using sf::heads::Head;
using sf::heads::HeadSpec;
using sf::heads::TrainOptions;

struct Trained {
  Head head;
  std::vector<EpochMetrics> epochs;
};

Trained train(const sf::test::Study& study, const HeadSpec& spec, const TrainOptions& opts) {
  const auto ds = sf::extract::LogitDataset::open(study.dataset);
  const bool bb = spec.variant == "bb";
  const auto data = sf::heads::load_split(ds, nullptr, 0.25, opts.seed, !bb, bb, study.lm_head.size(0));
  Trained r{Head::init(spec, study.lm_head.size(0), bb ? 0 : study.lm_head.size(1), opts.seed), {}};
  sf::heads::train_head(r.head, data, bb ? torch::Tensor() : study.lm_head, opts, nullptr,
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
  // Rank slices cover the rows exactly once.
  int64_t next = 0;
  for (int r = 0; r < 3; ++r) {
    const auto [lo, hi] = sf::heads::rank_rows(10, r, 3);
    EXPECT_EQ(lo, next);
    next = hi;
  }
  EXPECT_EQ(next, 10);
}

TEST(Split, LoadSplitKeepsExamplesWhole) {
  sf::test::TempDir dir("heads_split");
  const auto study = sf::test::make_study(dir.path(), {});
  const auto ds = sf::extract::LogitDataset::open(study.dataset);
  const auto data = sf::heads::load_split(ds, nullptr, 0.25, 5, true, true, 48);
  const auto is_val = sf::heads::validation_examples(ds.num_examples(), 0.25, 5);
  int64_t val_tokens = 0;
  for (int64_t row = 0; row < ds.num_examples(); ++row) {
    if (is_val[static_cast<size_t>(row)]) val_tokens += ds.example_tokens(row);
  }
  EXPECT_EQ(data.val.size(), val_tokens);
  EXPECT_EQ(data.val.total, val_tokens);
  EXPECT_EQ(data.train.size() + data.val.size(), ds.num_tokens());
  EXPECT_EQ(data.val_examples, 6);
  EXPECT_EQ(data.train.hidden.sizes(), (std::vector<int64_t>{data.train.size(), 16}));
  EXPECT_THROW(sf::heads::load_split(ds, nullptr, 0.25, 5, true, true, 20), sf::ShapeError);  // ids >= vocab
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
  EXPECT_EQ(last.support, "vocab");
  EXPECT_EQ(last.steps, 25 * ((last.train_positions + 15) / 16));
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

TEST(Train, BlackBoxHeadLearnsOnTheSupportAndTransfersToALargerBase) {
  sf::test::TempDir dir("heads_train_bb");
  sf::test::StudyOptions so;
  so.bias_scale = 2.0;
  so.top_k = 24;
  const auto study = sf::test::make_study(dir.path(), so);
  const Trained r = train(study, {"bb", "bb", 8, 20}, options(0.05, 25));
  const EpochMetrics& last = r.epochs.back();
  EXPECT_EQ(last.support, "base_topk");
  EXPECT_LT(last.val.kl, 0.35 * r.epochs.front().base_val.kl);
  EXPECT_GT(last.val.top1, r.epochs.front().base_val.top1);

  // A larger base (hidden 3× as wide) with the same vocabulary, whose aligned model differs from it
  // by the same bias: the head, trained on the small base only, moves it towards its aligned model.
  torch::manual_seed(99);
  const torch::Tensor w_big = torch::randn({so.vocab, 3 * so.hidden}) * 0.3;
  const torch::Tensor h_big = torch::randn({200, 3 * so.hidden});
  const torch::Tensor base_big = torch::matmul(h_big, w_big.t());
  const torch::Tensor aligned_big = base_big + study.bias;
  auto [a_logits, a_ids] = aligned_big.topk(so.top_k, 1);
  auto kl_to_aligned = [&](const torch::Tensor& logits) {
    return sf::heads::kl_topk_loss(a_logits, sf::heads::logprobs_at(logits, a_ids)).item<double>();
  };
  torch::NoGradGuard no_grad;
  const double before = kl_to_aligned(base_big);
  const double after = kl_to_aligned(r.head.apply(base_big, h_big));
  EXPECT_LT(after, 0.6 * before) << before << " -> " << after;
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
