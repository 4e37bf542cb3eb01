// The distillation loss (KL to the aligned top-k softmax), its masking, and top-1 agreement.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/error.hpp"
#include "heads/loss.hpp"

namespace {

using sf::heads::kl_topk_loss;
using sf::heads::kl_topk_rows;

TEST(KlTopk, MatchesHandComputedValue) {
  // Teacher logits [0, ln 3] → p = (1/4, 3/4). Student q = (1/2, 1/4) at the same ids (the rest of
  // its mass sits on other ids). KL = 1/4·ln(1/4 / 1/2) + 3/4·ln(3/4 / 1/4) = -ln2/4 + (3/4)ln3.
  const auto teacher = torch::tensor({{0.0f, static_cast<float>(std::log(3.0))}});
  const auto student = torch::log(torch::tensor({{0.5f, 0.25f}}));
  const double expected = -std::log(2.0) / 4.0 + 0.75 * std::log(3.0);
  EXPECT_NEAR(kl_topk_loss(teacher, student).item<double>(), expected, 1e-6);
}

TEST(KlTopk, ZeroWhenDistributionsAgreeAndShiftInvariantTeacher) {
  const auto logits = torch::tensor({{2.0f, 1.0f, -1.0f}, {0.5f, 0.5f, 0.0f}});
  const auto logq = torch::log_softmax(logits, 1);
  EXPECT_NEAR(kl_topk_loss(logits, logq).item<double>(), 0.0, 1e-6);
  EXPECT_NEAR(kl_topk_loss(logits + 7.0, logq).item<double>(), 0.0, 1e-6);
  // Any other student is strictly worse.
  EXPECT_GT(kl_topk_loss(logits, torch::log_softmax(logits * 0.5, 1)).item<double>(), 1e-3);
}

TEST(KlTopk, MaskRenormalisesTeacherAndIgnoresStudentOutsideIt) {
  // Teacher (p ∝ e^2, e^1, e^0). Masking the last entry leaves p' = softmax(2, 1); the student's
  // value there is -inf and must not produce NaN or a gradient.
  const auto teacher = torch::tensor({{2.0f, 1.0f, 0.0f}});
  const auto mask = torch::tensor({{true, true, false}});
  auto student =
      torch::tensor({{std::log(0.6f), std::log(0.4f), -std::numeric_limits<float>::infinity()}}).requires_grad_(true);
  const auto loss = kl_topk_loss(teacher, student, mask);
  const double p0 = std::exp(2.0) / (std::exp(2.0) + std::exp(1.0));
  const double expected = p0 * std::log(p0 / 0.6) + (1 - p0) * std::log((1 - p0) / 0.4);
  EXPECT_NEAR(loss.item<double>(), expected, 1e-6);
  loss.backward();
  EXPECT_TRUE(torch::isfinite(student.grad()).all().item<bool>());
  EXPECT_EQ(student.grad()[0][2].item<float>(), 0.0f);
  EXPECT_NEAR(student.grad()[0][0].item<double>(), -p0, 1e-6);  // d/dlogq of -Σ p logq
}

TEST(KlTopk, RowWithNothingKeptContributesZero) {
  const auto teacher = torch::tensor({{1.0f, 0.0f}, {1.0f, 0.0f}});
  const auto student = torch::log(torch::tensor({{0.5f, 0.5f}, {0.5f, 0.5f}}));
  const auto mask = torch::tensor({{false, false}, {true, true}});
  const auto rows = kl_topk_rows(teacher, student, mask);
  EXPECT_EQ(rows[0].item<float>(), 0.0f);
  EXPECT_GT(rows[1].item<float>(), 0.0f);
}

TEST(KlTopk, FullVocabularyStudentGatheredAtTeacherIds) {
  // The student's distribution is over the whole vocabulary; only its values at the teacher's ids
  // enter the loss, so mass the student puts elsewhere is penalised through log q.
  const auto logits = torch::tensor({{0.0f, 0.0f, 0.0f, 0.0f}});
  const auto ids = torch::tensor({{2, 0}}, torch::kLong);
  const auto logq = sf::heads::logprobs_at(logits, ids);
  EXPECT_NEAR(logq[0][0].item<double>(), std::log(0.25), 1e-6);
  const auto teacher = torch::tensor({{0.0f, 0.0f}});  // p = (1/2, 1/2)
  EXPECT_NEAR(kl_topk_loss(teacher, logq).item<double>(), std::log(2.0), 1e-6);
}

TEST(KlTopk, ShapeErrors) {
  EXPECT_THROW(kl_topk_loss(torch::zeros({2, 3}), torch::zeros({2, 4})), sf::ShapeError);
  EXPECT_THROW(kl_topk_loss(torch::zeros({2, 3}), torch::zeros({2, 3}), torch::ones({2, 2}, torch::kBool)),
               sf::ShapeError);
}

TEST(Support, PositionsOfTeacherIdsInBaseTopk) {
  const auto teacher = torch::tensor({{5, 7, 9}, {1, 2, 3}}, torch::kLong);
  const auto base = torch::tensor({{9, 5, 4, 0}, {8, 8, 3, 1}}, torch::kLong);
  const auto pos = sf::heads::positions_in_support(teacher, base);
  const auto expected = torch::tensor({{1, -1, 0}, {3, -1, 2}}, torch::kLong);
  EXPECT_TRUE(pos.equal(expected)) << pos;
}

TEST(Agreement, Top1) {
  const auto pred = torch::tensor({1, 2, 3, 4}, torch::kLong);
  const auto teacher = torch::tensor({1, 0, 3, 0}, torch::kLong);
  EXPECT_EQ(sf::heads::top1_matches(pred, teacher), 2);
  EXPECT_DOUBLE_EQ(sf::heads::top1_agreement(pred, teacher), 0.5);
}

}  // namespace
