// The distillation loss (KL to the aligned top-k softmax), the objective every head is trained and
// served through, and top-1 agreement.
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.hpp"
#include "heads/loss.hpp"
#include "heads/objective.hpp"

namespace {

using sf::heads::kl_topk_rows;

double kl(const torch::Tensor& teacher, const torch::Tensor& student) {
  return kl_topk_rows(teacher, student).mean().item<double>();
}

TEST(KlTopk, MatchesHandComputedValue) {
  // Teacher logits [0, ln 3] → p = (1/4, 3/4). Student q = (1/2, 1/4) at the same ids (the rest of
  // its mass sits on other ids). KL = 1/4·ln(1/4 / 1/2) + 3/4·ln(3/4 / 1/4) = -ln2/4 + (3/4)ln3.
  const auto teacher = torch::tensor({{0.0f, static_cast<float>(std::log(3.0))}});
  const auto student = torch::log(torch::tensor({{0.5f, 0.25f}}));
  EXPECT_NEAR(kl(teacher, student), -std::log(2.0) / 4.0 + 0.75 * std::log(3.0), 1e-6);
}

TEST(KlTopk, ZeroWhenDistributionsAgreeAndShiftInvariantTeacher) {
  const auto logits = torch::tensor({{2.0f, 1.0f, -1.0f}, {0.5f, 0.5f, 0.0f}});
  const auto logq = torch::log_softmax(logits, 1);
  EXPECT_NEAR(kl(logits, logq), 0.0, 1e-6);
  EXPECT_NEAR(kl(logits + 7.0, logq), 0.0, 1e-6);
  EXPECT_GT(kl(logits, torch::log_softmax(logits * 0.5, 1)), 1e-3);  // any other student is worse
}

TEST(KlTopk, FullVocabularyStudentGatheredAtTeacherIds) {
  // Only the student's values at the teacher's ids enter the loss, so mass the student puts
  // elsewhere is penalised through log q.
  const auto logits = torch::tensor({{0.0f, 0.0f, 0.0f, 0.0f}});
  const auto ids = torch::tensor({{2, 0}}, torch::kLong);
  const auto logq = sf::heads::logprobs_at(logits, ids);
  EXPECT_NEAR(logq[0][0].item<double>(), std::log(0.25), 1e-6);
  EXPECT_NEAR(kl(torch::tensor({{0.0f, 0.0f}}), logq), std::log(2.0), 1e-6);
  EXPECT_THROW(kl_topk_rows(torch::zeros({2, 3}), torch::zeros({2, 4})), sf::ShapeError);
}

TEST(Support, PositionsOfTeacherIdsInBaseTopk) {
  const auto teacher = torch::tensor({{5, 7, 9}, {1, 2, 3}}, torch::kLong);
  const auto base = torch::tensor({{9, 5, 4, 0}, {8, 8, 3, 1}}, torch::kLong);
  const auto pos = sf::heads::positions_in_support(teacher, base);
  EXPECT_TRUE(pos.equal(torch::tensor({{1, -1, 0}, {3, -1, 2}}, torch::kLong))) << pos;
}

TEST(Agreement, Top1) {
  const auto pred = torch::tensor({1, 2, 3, 4}, torch::kLong);
  EXPECT_EQ(sf::heads::top1_matches(pred, torch::tensor({1, 0, 3, 0}, torch::kLong)), 2);
}

// The objective is the KL of the distribution the head serves: softmax(apply(h·Wᵀ, h)).
TEST(Objective, IsTheKlOfTheServedDistributionForEveryKind) {
  torch::manual_seed(3);
  const int64_t V = 30, H = 6, n = 7;
  const auto w = torch::randn({V, H});
  sf::heads::PositionBatch b;
  b.hidden = torch::randn({n, H});
  std::tie(b.aligned_logits, b.aligned_ids) = torch::randn({n, V}).topk(5, 1);
  for (const sf::heads::HeadSpec& spec :
       {sf::heads::HeadSpec{"h", "hidden", 0, 0, "random"}, sf::heads::HeadSpec{"b", "bb", 3, 8, "random"},
        sf::heads::HeadSpec{"l", "bb_linear", 2, 8, "random"}}) {
    const auto head = sf::heads::Head::init(spec, V, H, 5);
    const auto served = head.apply(b.hidden.matmul(w.t()), b.hidden);
    const auto expected = kl_topk_rows(b.aligned_logits, sf::heads::logprobs_at(served, b.aligned_ids));
    const auto r = sf::heads::objective_rows(&head, b, w, spec.k);
    EXPECT_TRUE(torch::allclose(r.kl, expected, 1e-6, 1e-6)) << spec.type;
    EXPECT_TRUE(r.top1.equal(served.argmax(1))) << spec.type;
    if (spec.k == 0) {
      EXPECT_FALSE(r.coverage.defined());
      continue;
    }
    ASSERT_TRUE(r.coverage.defined());
    // Coverage: the teacher mass on the base top-k support, by hand for row 0.
    const auto support = std::get<1>(b.hidden.matmul(w.t())[0].topk(spec.k));
    const auto p = torch::softmax(b.aligned_logits[0], 0);
    double c = 0;
    for (int64_t j = 0; j < 5; ++j)
      if (support.eq(b.aligned_ids[0][j]).any().item<bool>()) c += p[j].item<double>();
    EXPECT_NEAR(r.coverage[0].item<double>(), c, 1e-6) << spec.type;
  }
  const auto base = sf::heads::objective_rows(nullptr, b, w);
  EXPECT_FALSE(base.coverage.defined());
  EXPECT_TRUE(torch::allclose(
      base.kl, kl_topk_rows(b.aligned_logits, sf::heads::logprobs_at(b.hidden.matmul(w.t()), b.aligned_ids))));
}

}  // namespace
