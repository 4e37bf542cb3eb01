// Head variants: shapes, zero initialisation, and the meaning of each correction.
#include <gtest/gtest.h>

#include "core/error.hpp"
#include "heads/head.hpp"

namespace {

using sf::heads::Head;
using sf::heads::HeadSpec;

constexpr int64_t kV = 40;
constexpr int64_t kH = 8;

torch::Tensor randn(std::vector<int64_t> shape, uint64_t seed) {
  torch::manual_seed(seed);
  return torch::randn(shape);
}

TEST(Head, FreshHeadsChangeNothing) {
  const auto hidden = randn({5, kH}, 1);
  const auto logits = randn({5, kV}, 2);
  for (const HeadSpec& spec : {HeadSpec{"h", "hidden", 0, 0}, HeadSpec{"lr", "hidden", 4, 0},
                               HeadSpec{"bb", "bb", 3, 10}, HeadSpec{"b", "bias", 0, 0}}) {
    const Head head = Head::init(spec, kV, kH, 7);
    const auto out = head.apply(logits, hidden);
    EXPECT_EQ(out.sizes(), logits.sizes()) << spec.name;
    EXPECT_TRUE(out.equal(logits)) << spec.name;
  }
}

TEST(Head, ParameterShapes) {
  auto shapes = [](const Head& h) {
    std::vector<std::pair<std::string, std::vector<int64_t>>> out;
    for (const auto& [n, t] : h.named_parameters()) out.emplace_back(n, t.sizes().vec());
    return out;
  };
  using Shapes = std::vector<std::pair<std::string, std::vector<int64_t>>>;
  EXPECT_EQ(shapes(Head::init({"h", "hidden", 0, 0}, kV, kH, 1)), (Shapes{{"delta_weight", {kV, kH}}}));
  EXPECT_EQ(shapes(Head::init({"h", "hidden", 3, 0}, kV, kH, 1)), (Shapes{{"delta_u", {kV, 3}}, {"delta_v", {kH, 3}}}));
  EXPECT_EQ(shapes(Head::init({"b", "bb", 5, 10}, kV, kH, 1)),
            (Shapes{{"bb_in", {kV, 5}}, {"bb_out", {kV, 5}}, {"bb_bias", {kV}}}));
  EXPECT_EQ(shapes(Head::init({"b", "bias", 0, 0}, kV, kH, 1)), (Shapes{{"bias", {kV}}}));
  EXPECT_EQ(Head::init({"b", "bb", 5, 10}, kV, kH, 1).hidden_size(), 0);
}

TEST(Head, HiddenHeadAddsDeltaTimesHidden) {
  const Head head = Head::init({"h", "hidden", 0, 0}, kV, kH, 1);
  const auto delta = randn({kV, kH}, 3);
  head.named_parameters()[0].second.copy_(delta);
  const auto hidden = randn({4, kH}, 4);
  const auto logits = randn({4, kV}, 5);
  EXPECT_TRUE(torch::allclose(head.apply(logits, hidden), logits + hidden.matmul(delta.t()), 1e-5, 1e-5));
  // The training path (from hidden and the lm_head weight) computes the same logits.
  const auto w = randn({kV, kH}, 6);
  EXPECT_TRUE(torch::allclose(head.corrected_logits(hidden, w), head.apply(hidden.matmul(w.t()), hidden), 1e-5, 1e-5));
  EXPECT_TRUE(head.delta_weight().equal(delta));
}

TEST(Head, LowRankStartsAtZeroAndMaterialises) {
  const Head head = Head::init({"lr", "hidden", 3, 0}, kV, kH, 9);
  EXPECT_EQ(head.delta_weight().abs().max().item<float>(), 0.0f);
  const auto params = head.named_parameters();
  EXPECT_GT(params[1].second.abs().max().item<float>(), 0.0f);  // V is random, so U gets gradients
  params[0].second.copy_(randn({kV, 3}, 10));
  const auto dw = head.delta_weight();
  EXPECT_TRUE(torch::allclose(dw, params[0].second.matmul(params[1].second.t())));
  const auto hidden = randn({4, kH}, 11);
  const auto logits = randn({4, kV}, 12);
  EXPECT_TRUE(torch::allclose(head.apply(logits, hidden), logits + hidden.matmul(dw.t()), 1e-5, 1e-5));
  // Same seed, same initialisation.
  EXPECT_TRUE(Head::init({"lr", "hidden", 3, 0}, kV, kH, 9)
                  .named_parameters()[1]
                  .second.equal(Head::init({"lr", "hidden", 3, 0}, kV, kH, 9).named_parameters()[1].second));
}

TEST(Head, BiasHeadAddsBias) {
  const Head head = Head::init({"b", "bias", 0, 0}, kV, 0, 1);
  const auto bias = randn({kV}, 13);
  head.named_parameters()[0].second.copy_(bias);
  const auto logits = randn({3, kV}, 14);
  EXPECT_TRUE(head.apply(logits, torch::Tensor()).equal(logits + bias));
}

TEST(Head, BlackBoxTouchesOnlyTheBaseTopkAndIgnoresHiddenSize) {
  const int64_t k = 6;
  const Head head = Head::init({"bb", "bb", 4, k}, kV, 0, 2);
  for (const auto& [name, t] : head.named_parameters()) t.copy_(randn(t.sizes().vec(), 20 + t.numel()));
  const auto logits = randn({5, kV}, 15);
  // Works with hidden states of any size (a larger base), or none.
  const auto out = head.apply(logits, randn({5, 3 * kH}, 16));
  EXPECT_TRUE(out.equal(head.apply(logits, torch::Tensor())));
  const auto top = std::get<1>(logits.topk(k, 1));
  auto in_topk = torch::zeros({5, kV}, torch::kBool).scatter(1, top, true);
  EXPECT_TRUE(out.masked_select(in_topk.logical_not()).equal(logits.masked_select(in_topk.logical_not())));
  EXPECT_FALSE(out.masked_select(in_topk).equal(logits.masked_select(in_topk)));
  // By hand for row 0: p = softmax of the top-k logits, gain_i = Out[s_i]·Σ_j p_j In[s_j] + b[s_i].
  const auto params = head.named_parameters();
  const auto s = top[0];
  const auto p = torch::softmax(logits[0].index_select(0, s), 0);
  const auto context = p.matmul(params[0].second.index_select(0, s));  // [r]
  const auto gain = params[1].second.index_select(0, s).matmul(context) + params[2].second.index_select(0, s);
  EXPECT_TRUE(torch::allclose(out[0].index_select(0, s), logits[0].index_select(0, s) + gain, 1e-5, 1e-5));
}

TEST(Head, ShapeAndSpecErrors) {
  const Head hidden = Head::init({"h", "hidden", 0, 0}, kV, kH, 1);
  EXPECT_THROW(hidden.apply(torch::zeros({2, kV + 1}), torch::zeros({2, kH})), sf::ShapeError);
  EXPECT_THROW(hidden.apply(torch::zeros({2, kV}), torch::zeros({2, kH + 1})), sf::ShapeError);
  EXPECT_THROW(hidden.apply(torch::zeros({2, kV}), torch::Tensor()), sf::ShapeError);
  EXPECT_THROW(Head::init({"x", "mlp", 0, 0}, kV, kH, 1), sf::ConfigError);
  EXPECT_THROW(Head::init({"x", "bb", 0, 10}, kV, kH, 1), sf::ConfigError);
  EXPECT_THROW(Head::init({"x", "bias", 2, 0}, kV, kH, 1), sf::ConfigError);
  EXPECT_THROW(Head::init({"b", "bias", 0, 0}, kV, kH, 1).delta_weight(), sf::ConfigError);
  const Head bb = Head::init({"bb", "bb", 2, 4}, kV, 0, 1);
  EXPECT_THROW(bb.corrected_support(torch::zeros({2, 3}), torch::zeros({2, 3}, torch::kLong)), sf::ShapeError);
  EXPECT_THROW(bb.corrected_support(torch::zeros({1, 4}), torch::full({1, 4}, kV, torch::kLong)), sf::ShapeError);
}

}  // namespace
