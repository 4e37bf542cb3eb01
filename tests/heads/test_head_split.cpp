// Heads on vocabulary-split logits (tensor parallelism): on each rank of a group of two, apply()
// of this rank's logit slice equals that slice of apply() on the whole logits, for every head kind,
// without gathering the vocabulary. Run as two MPI ranks (tests/heads/extra.cmake:
// `heads_tp_mpi_np2`); the suite is DISABLED_ so that the single-rank run skips it.
// Tolerance: 1e-5 (fp32; the split log-sum-exp of bb heads sums in another order).
#include <gtest/gtest.h>

#include "core/error.hpp"
#include "dist/layout.hpp"
#include "heads/head.hpp"
#include "model/vocab_parallel.hpp"

namespace {

using sf::heads::Head;
using sf::heads::HeadSpec;

constexpr int64_t kV = 301;  // 150 + 151: uneven slices
constexpr int64_t kH = 8;
constexpr double kTol = 1e-5;

torch::Tensor randn(std::vector<int64_t> shape, uint64_t seed) {
  torch::manual_seed(seed);
  return torch::randn(shape);
}

class DISABLED_TpHeads : public ::testing::Test {
 protected:
  void SetUp() override {
    if (sf::dist::Comm::world().size() != 2) GTEST_SKIP() << "needs mpirun -np 2";
    group = sf::dist::ParallelLayout::make(sf::dist::Comm::world(), 2).tensor;
  }
  sf::dist::Comm group;
};

TEST_F(DISABLED_TpHeads, EveryKindGivesThisRanksSliceOfTheWholeResult) {
  const sf::model::VocabParallel vocab(kV, group);
  // The same inputs on both ranks (seeded); k = 200 > a rank's slice: the support spans both.
  const torch::Tensor logits = randn({6, kV}, 3), hidden = randn({6, kH}, 4);
  for (const HeadSpec& spec : std::vector<HeadSpec>{{"h", "hidden", 0, 0, "random"},
                                                    {"lr", "hidden", 4, 0, "random"},
                                                    {"b", "bias", 0, 0},
                                                    {"bb", "bb", 3, 10, "random"},
                                                    {"bbw", "bb", 3, 200, "random"},
                                                    {"bl", "bb_linear", 0, 6, "random"},
                                                    {"blr", "bb_linear", 3, 200, "random"}}) {
    const Head head = Head::init(spec, kV, kH, 11);
    if (spec.type == "bias") head.named_parameters()[0].second.copy_(randn({kV}, 5));
    const torch::Tensor whole = head.apply(logits, hidden);
    const torch::Tensor split = head.apply(vocab.slice(logits).contiguous(), hidden, vocab);
    ASSERT_EQ(split.sizes(), (std::vector<int64_t>{6, vocab.local_size()})) << spec.name;
    EXPECT_GT((whole - logits).abs().max().item<double>(), 1e-3) << spec.name << ": the head changes nothing";
    EXPECT_LE((vocab.slice(whole) - split).abs().max().item<double>(), kTol) << spec.name;
  }
}

TEST_F(DISABLED_TpHeads, WrongSliceOrVocabularyIsAShapeError) {
  const sf::model::VocabParallel vocab(kV, group);
  const Head head = Head::init({"b", "bias", 0, 0}, kV, kH, 1);
  EXPECT_THROW(head.apply(randn({2, kV}, 1), {}, vocab), sf::ShapeError);  // whole logits, split vocab
  EXPECT_THROW(head.apply(randn({2, 10}, 1), {}, sf::model::VocabParallel(20, group)), sf::ShapeError);
}

}  // namespace
