// label_prob judges split over a tensor group of two ranks (tests/judge/extra.cmake:
// `judge_tp_mpi_np2`; DISABLED_ so that the single-rank run skips it): the label probabilities and
// log-likelihoods of the golden fixture match transformers with the tolerances of test_golden.cpp,
// on both ranks, for one-token labels (picked from the split next-token logits) and multi-token
// labels (scored sequences).
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>

#include "dist/layout.hpp"
#include "judge/kinds.hpp"
#include "testutil/golden.hpp"
#include "testutil/testutil.hpp"
#include "tokenizer/tokenizer.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr double kProbTol = 1e-5;
constexpr double kLoglikTol = 1e-4;

fs::path fixtures() { return sf::test::fixtures_dir() / "judges"; }

TEST(DISABLED_TpJudge, LabelProbabilitiesOfASplitJudgeMatchTransformers) {
  if (sf::dist::Comm::world().size() != 2) GTEST_SKIP() << "needs mpirun -np 2";
  const auto layout = sf::dist::ParallelLayout::make(sf::dist::Comm::world(), 2);
  const json c = json::parse(sf::test::read_file(fixtures() / "cases.json"));
  const auto inputs = c["judge_inputs"].get<std::vector<std::string>>();
  auto ref = sf::test::read_reference(fixtures() / "llama" / "reference.safetensors");
  sf::model::LoadOptions opts;
  opts.tensor_group = layout.tensor;
  for (const auto& [set, labels_json] : c["label_sets"].items()) {
    const auto labels = labels_json.get<std::vector<std::string>>();
    sf::judge::Recipe r;
    r.name = "golden";
    r.kind = sf::judge::Kind::kLabelProb;
    r.metric = "m";
    r.prompt = "{answer}";
    r.positive = labels[0];
    r.labels = labels;
    r.where = "golden";
    const sf::judge::LabelProbJudge judge(r, sf::model::CausalLM::load(fixtures() / "llama", opts),
                                          sf::tok::Tokenizer::from_file(fixtures() / "llama" / "tokenizer.json"),
                                          sf::tok::ChatTemplate::preset("plain"), 3);
    const auto verdicts = judge.judge(inputs);
    ASSERT_EQ(verdicts.size(), inputs.size());
    for (size_t i = 0; i < inputs.size(); ++i) {
      for (size_t l = 0; l < labels.size(); ++l) {
        const auto row = static_cast<int64_t>(i), col = static_cast<int64_t>(l);
        EXPECT_NEAR(verdicts[i].prob[l], ref[set + "_prob"][row][col].item<double>(), kProbTol)
            << set << " input " << i << " label " << labels[l];
        EXPECT_NEAR(verdicts[i].raw[l], ref[set + "_loglik"][row][col].item<double>(), kLoglikTol)
            << set << " input " << i << " label " << labels[l];
      }
    }
  }
}

}  // namespace
