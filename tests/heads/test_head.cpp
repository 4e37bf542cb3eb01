// Head kinds: shapes, initialisation, the meaning of each correction, and the serving rules that
// keep every head's served distribution equal to what its objective trains.
#include <gtest/gtest.h>

#include <cmath>

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

void randomise(const Head& head, uint64_t seed) {
  for (const auto& [name, t] : head.named_parameters()) t.copy_(randn(t.sizes().vec(), seed + t.numel()));
}

const std::vector<HeadSpec> kAll = {{"h", "hidden", 0, 0}, {"lr", "hidden", 4, 0},    {"bb", "bb", 3, 10},
                                    {"b", "bias", 0, 0},   {"bl", "bb_linear", 0, 6}, {"blr", "bb_linear", 3, 6}};

TEST(Head, ZeroInitialisedHeadsChangeNothing) {
  const auto hidden = randn({5, kH}, 1);
  const auto logits = randn({5, kV}, 2);
  for (const HeadSpec& spec : kAll) {
    const Head head = Head::init(spec, kV, kH, 7);
    const auto out = head.apply(logits, hidden);
    EXPECT_EQ(out.sizes(), logits.sizes()) << spec.name;
    EXPECT_TRUE(torch::allclose(out, logits, 0, 1e-5)) << spec.name;
  }
}

TEST(Head, RandomInitialisationIsTorchLinearsAndSeeded) {
  const Head h = Head::init({"h", "hidden", 0, 0, "random"}, kV, kH, 3);
  const auto w = h.named_parameters()[0].second;
  EXPECT_LE(w.abs().max().item<double>(), 1.0 / std::sqrt(double(kH)));  // U(±1/√fan_in), fan_in = H
  EXPECT_GT(w.abs().max().item<double>(), 0.8 / std::sqrt(double(kH)));
  EXPECT_TRUE(w.equal(Head::init({"h", "hidden", 0, 0, "random"}, kV, kH, 3).named_parameters()[0].second));
  EXPECT_FALSE(w.equal(Head::init({"h", "hidden", 0, 0, "random"}, kV, kH, 4).named_parameters()[0].second));
  const Head dense = Head::init({"bl", "bb_linear", 0, 6, "random"}, kV, 0, 3);
  EXPECT_LE(dense.named_parameters()[0].second.abs().max().item<double>(), 1.0 / std::sqrt(double(kV)));
  EXPECT_THROW(Head::init({"b", "bias", 0, 0, "random"}, kV, kH, 1), sf::ConfigError);
  EXPECT_THROW(Head::init({"h", "hidden", 0, 0, "gaussian"}, kV, kH, 1), sf::ConfigError);
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
  EXPECT_EQ(shapes(Head::init({"l", "bb_linear", 0, 5}, kV, kH, 1)), (Shapes{{"bbl_weight", {kV, kV}}}));
  EXPECT_EQ(shapes(Head::init({"l", "bb_linear", 2, 5}, kV, kH, 1)),
            (Shapes{{"bbl_in", {kV, 2}}, {"bbl_out", {kV, 2}}}));
  EXPECT_EQ(Head::init({"b", "bb", 5, 10}, kV, kH, 1).hidden_size(), 0);
}

TEST(Head, HiddenHeadAddsDeltaTimesHidden) {
  const Head head = Head::init({"h", "hidden", 0, 0}, kV, kH, 1);
  const auto delta = randn({kV, kH}, 3);
  head.named_parameters()[0].second.copy_(delta);
  const auto hidden = randn({4, kH}, 4);
  const auto logits = randn({4, kV}, 5);
  EXPECT_TRUE(torch::allclose(head.apply(logits, hidden), logits + hidden.matmul(delta.t()), 1e-5, 1e-5));
  EXPECT_TRUE(head.delta_weight().equal(delta));
  const Head low = Head::init({"lr", "hidden", 3, 0}, kV, kH, 9);
  randomise(low, 10);
  const auto dw = low.delta_weight();
  EXPECT_TRUE(torch::allclose(dw, low.named_parameters()[0].second.matmul(low.named_parameters()[1].second.t())));
  EXPECT_TRUE(torch::allclose(low.apply(logits, hidden), logits + hidden.matmul(dw.t()), 1e-5, 1e-5));
}

TEST(Head, BiasHeadAddsBias) {
  const Head head = Head::init({"b", "bias", 0, 0}, kV, 0, 1);
  const auto bias = randn({kV}, 13);
  head.named_parameters()[0].second.copy_(bias);
  const auto logits = randn({3, kV}, 14);
  EXPECT_TRUE(head.apply(logits, torch::Tensor()).equal(logits + bias));
}

// The bb head re-weights the base top-k support and keeps its total mass: outside the support
// nothing changes, inside it the served logits are log_softmax(z_S + g) + logsumexp(z_S).
TEST(Head, BbHeadServesWhatItsObjectiveTrains) {
  const int64_t k = 6;
  const Head head = Head::init({"bb", "bb", 4, k}, kV, 0, 2);
  randomise(head, 20);
  const auto logits = randn({5, kV}, 15);
  const auto out = head.apply(logits, torch::Tensor());
  EXPECT_TRUE(out.equal(head.apply(logits, randn({5, 3 * kH}, 16))));  // hidden states of any size, or none
  const auto [z, top] = logits.topk(k, 1);
  const auto in_topk = torch::zeros({5, kV}, torch::kBool).scatter(1, top, true);
  EXPECT_TRUE(out.masked_select(in_topk.logical_not()).equal(logits.masked_select(in_topk.logical_not())));
  EXPECT_FALSE(out.masked_select(in_topk).equal(logits.masked_select(in_topk)));
  // The support's probability mass under the full softmax is the base's.
  const auto mass = [&](const torch::Tensor& l) {
    return torch::softmax(l, 1).masked_fill(in_topk.logical_not(), 0).sum(1);
  };
  EXPECT_TRUE(torch::allclose(mass(out), mass(logits), 1e-5, 1e-6));
  // By hand for row 0: p = softmax(z_S), g_i = Out[s_i]·Σ_j p_j In[s_j] + b[s_i].
  const auto& params = head.named_parameters();
  const auto s = top[0];
  const auto p = torch::softmax(z[0], 0);
  const auto context = p.matmul(params[0].second.index_select(0, s));  // [r]
  const auto gain = params[1].second.index_select(0, s).matmul(context) + params[2].second.index_select(0, s);
  const auto expected = torch::log_softmax(z[0] + gain, 0) + torch::logsumexp(z[0], 0);
  EXPECT_TRUE(torch::allclose(out[0].index_select(0, s), expected, 1e-5, 1e-5));
}

TEST(Head, BbHeadIgnoresACommonShiftOfItsGain) {
  // A shift of every gain in a row cannot be seen by the support-softmax the head is trained with,
  // so it must not change what is served (it used to move mass between the support and the rest).
  const Head head = Head::init({"bb", "bb", 4, 8}, kV, 0, 2);
  randomise(head, 21);
  const auto logits = randn({6, kV}, 22);
  const auto before = head.apply(logits, torch::Tensor());
  head.named_parameters()[2].second.add_(5.0);  // bb_bias + 5 for every id
  const auto after = head.apply(logits, torch::Tensor());
  EXPECT_TRUE(torch::allclose(before, after, 1e-5, 1e-5)) << (before - after).abs().max();
  EXPECT_TRUE(torch::allclose(torch::log_softmax(before, 1), torch::log_softmax(after, 1), 1e-5, 1e-5));
}

TEST(Head, BbLinearIsTheReferenceMapOnTheTopkMaskedLogits) {
  const int64_t k = 5;
  const Head dense = Head::init({"bl", "bb_linear", 0, k, "random"}, kV, 0, 3);
  const auto logits = randn({4, kV}, 23);
  const auto [z, top] = logits.topk(k, 1);
  const auto x = torch::zeros_like(logits).scatter(1, top, z);  // get_topk: top-k kept, the rest 0
  const auto w = dense.named_parameters()[0].second;
  EXPECT_TRUE(torch::allclose(dense.apply(logits, torch::Tensor()), logits + x.matmul(w.t()), 1e-5, 1e-5));
  // Low rank: the same map with M = Out·Inᵀ, computed from the k inputs only.
  const Head low = Head::init({"blr", "bb_linear", 3, k, "random"}, kV, 0, 4);
  const auto m = low.named_parameters()[1].second.matmul(low.named_parameters()[0].second.t());  // [V,V]
  EXPECT_TRUE(torch::allclose(low.apply(logits, torch::Tensor()), logits + x.matmul(m.t()), 1e-4, 1e-5));
}

TEST(Head, InputsOnAnotherDeviceAreRefused) {
  // A unit's tensors never cross devices silently: a head applied to logits that live elsewhere
  // (e.g. log-probs returned on the host while the head is on cuda:N) is a one-line error.
  const Head head = Head::init({"h", "hidden", 0, 0}, kV, kH, 1);
  const auto meta = torch::TensorOptions().device(torch::kMeta);
  try {
    head.apply(torch::empty({2, kV}, meta), torch::zeros({2, kH}));
    FAIL() << "expected a ShapeError";
  } catch (const sf::ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("lives on cpu but its logits are on meta"), std::string::npos) << e.what();
  }
  EXPECT_THROW(head.apply(torch::zeros({2, kV}), torch::empty({2, kH}, meta)), sf::ShapeError);
  EXPECT_EQ(head.device(), torch::Device(torch::kCPU));
}

TEST(Head, ShapeAndSpecErrors) {
  const Head hidden = Head::init({"h", "hidden", 0, 0}, kV, kH, 1);
  EXPECT_THROW(hidden.apply(torch::zeros({2, kV + 1}), torch::zeros({2, kH})), sf::ShapeError);
  EXPECT_THROW(hidden.apply(torch::zeros({2, kV}), torch::zeros({2, kH + 1})), sf::ShapeError);
  EXPECT_THROW(hidden.apply(torch::zeros({2, kV}), torch::Tensor()), sf::ShapeError);
  EXPECT_THROW(Head::init({"x", "mlp", 0, 0}, kV, kH, 1), sf::ConfigError);
  EXPECT_THROW(Head::init({"x", "bb", 0, 10}, kV, kH, 1), sf::ConfigError);
  EXPECT_THROW(Head::init({"x", "bb_linear", 0, 0}, kV, kH, 1), sf::ConfigError);
  EXPECT_THROW(Head::init({"x", "bias", 2, 0}, kV, kH, 1), sf::ConfigError);
  EXPECT_THROW(Head::init({"b", "bias", 0, 0}, kV, kH, 1).delta_weight(), sf::ConfigError);
  const Head bb = Head::init({"bb", "bb", 2, 4}, 3, 0, 1);  // k > vocabulary
  EXPECT_THROW(bb.apply(torch::zeros({1, 3}), torch::Tensor()), sf::ShapeError);
}

}  // namespace
