// The CUDA path (ctest label `cuda`; scripts/gpu-check.sh builds and runs it on a GPU machine).
// Every test skips with "skipped: no GPU" where torch sees no CUDA device.
// Tolerances against transformers: testutil/golden.hpp's table (logit_tolerance).
#include <gtest/gtest.h>

#include "core/error.hpp"
#include "dist/comm.hpp"
#include "dist/layout.hpp"
#include "heads/head.hpp"
#include "model/causal_lm.hpp"
#include "model/generate.hpp"
#include "testutil/golden.hpp"
#include "testutil/testutil.hpp"

namespace {

using sf::model::CausalLM;

#define SKIP_WITHOUT_GPU() \
  if (!torch::cuda::is_available()) GTEST_SKIP() << "skipped: no GPU"

std::filesystem::path model_dir(const std::string& variant) { return sf::test::fixtures_dir() / "models" / variant; }

class CudaGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(CudaGolden, LogitsWithinTheToleranceTable) {
  SKIP_WITHOUT_GPU();
  torch::InferenceMode guard;
  auto ref = sf::test::read_reference(model_dir(GetParam()) / "reference.safetensors");
  for (const torch::ScalarType dtype : {torch::kFloat32, torch::kBFloat16}) {
    const double tol = sf::test::logit_tolerance(torch::kCUDA, dtype);
    sf::model::LoadOptions opts;
    opts.device = torch::Device(torch::kCUDA, 0);
    opts.dtype = dtype;
    const CausalLM m = CausalLM::load(model_dir(GetParam()), opts);
    const auto out = m.forward(ref["right_ids"], ref["right_mask"]);
    EXPECT_TRUE(out.logits.is_cuda());
    const auto mask = ref["right_mask"].to(torch::kBool).unsqueeze(-1).expand_as(ref["right_logits"]);
    const double diff = (out.logits.cpu() - ref["right_logits"]).abs().masked_select(mask).max().item<double>();
    EXPECT_LE(diff, tol) << GetParam() << " " << c10::toString(dtype);
    std::cout << GetParam() << " cuda " << c10::toString(dtype) << " max |Δlogit| " << diff << "\n";
  }
}

INSTANTIATE_TEST_SUITE_P(Variants, CudaGolden,
                         ::testing::Values("llama_tied", "llama_untied", "llama3", "mistral_swa", "qwen2"));

// A head and its model on the GPU: scoring and generation with the head never meet a host tensor
// (the head refuses inputs on another device), and give what the CPU gives.
TEST(Cuda, HeadSystemsStayOnTheDeviceAndMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  torch::InferenceMode guard;
  const CausalLM cpu = CausalLM::load(model_dir("llama_untied"));
  sf::model::LoadOptions opts;
  opts.device = torch::Device(torch::kCUDA, 0);
  const CausalLM gpu = CausalLM::load(model_dir("llama_untied"), opts);
  const auto V = cpu.config().vocab_size, H = cpu.config().hidden_size;
  for (const sf::heads::HeadSpec& spec :
       {sf::heads::HeadSpec{"h", "hidden", 0, 0, "random"}, sf::heads::HeadSpec{"bb", "bb", 4, 16, "random"},
        sf::heads::HeadSpec{"bl", "bb_linear", 4, 16, "random"}}) {
    const auto head_cpu = sf::heads::Head::init(spec, V, H, 3);
    const auto head_gpu = sf::heads::Head::init(spec, V, H, 3, opts.device);
    auto transform = [](const sf::heads::Head& h) {
      return [&h](const torch::Tensor& l, const torch::Tensor& hid) { return h.apply(l, hid); };
    };
    const std::vector<std::vector<int32_t>> prompts = {{1, 5, 9, 3}, {1, 7}};
    const std::vector<std::vector<int32_t>> conts = {{11, 12}, {13, 14, 15}};
    const auto a =
        sf::model::continuation_logprobs(sf::model::Ensemble::of(cpu, transform(head_cpu)), {prompts}, conts, 2);
    const auto b =
        sf::model::continuation_logprobs(sf::model::Ensemble::of(gpu, transform(head_gpu)), {prompts}, conts, 2);
    for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-3) << spec.type;
    sf::model::GenerateOptions g;
    g.max_new_tokens = 6;
    g.record_top_k = 3;
    const auto ga = sf::model::generate(sf::model::Ensemble::of(cpu, transform(head_cpu)), {prompts}, g);
    const auto gb = sf::model::generate(sf::model::Ensemble::of(gpu, transform(head_gpu)), {prompts}, g);
    for (size_t i = 0; i < ga.size(); ++i) EXPECT_EQ(ga[i].tokens, gb[i].tokens) << spec.type;
    EXPECT_THROW(head_gpu.apply(torch::zeros({1, V}), torch::zeros({1, H})), sf::ShapeError);
  }
}

// Each rank's tensors on its own GPU (cuda:<local rank>), reduced, gathered and broadcast across the
// world: through NCCL in builds with SUPERFICIAL_WITH_NCCL once there are two ranks (ctest
// cuda_collectives_np2, which needs two GPUs); a single rank gets its input back. Every rank skips
// alike where the node has fewer GPUs than ranks.
TEST(Cuda, CollectivesOnEachRanksGpu) {
  SKIP_WITHOUT_GPU();
  auto& comm = sf::dist::Comm::world();
  if (static_cast<int>(torch::cuda::device_count()) < comm.local_size()) {
    GTEST_SKIP() << "skipped: fewer GPUs than ranks on this node";
  }
  const torch::Device device = sf::dist::rank_cuda_device("test_cuda", comm);
  const int64_t n = comm.size();
  const torch::Tensor base = torch::arange(8, torch::kFloat32);
  for (const torch::ScalarType dtype : {torch::kFloat32, torch::kBFloat16}) {
    torch::Tensor sum = (base * (comm.rank() + 1)).to(device, dtype);
    torch::Tensor max = sum.clone();
    comm.allreduce_sum(sum);
    comm.allreduce_max(max);
    EXPECT_EQ(sum.device(), device);
    EXPECT_EQ(sum.scalar_type(), dtype);
    // Small integers: exact in bf16 too.
    EXPECT_TRUE(sum.cpu().to(torch::kFloat32).equal(base * (n * (n + 1) / 2))) << c10::toString(dtype);
    EXPECT_TRUE(max.cpu().to(torch::kFloat32).equal(base * n)) << c10::toString(dtype);
  }
  const auto on_device = torch::TensorOptions().dtype(torch::kInt64).device(device);
  const torch::Tensor gathered = comm.allgather(torch::full({3}, comm.rank(), on_device));  // [n, 3]
  EXPECT_EQ(gathered.device(), device);
  EXPECT_TRUE(gathered.cpu().equal(torch::arange(n).unsqueeze(1).expand({n, 3})));
  torch::Tensor sent = torch::full({5}, comm.rank() + 10, on_device);
  comm.broadcast(sent, static_cast<int>(n - 1));
  EXPECT_TRUE(sent.cpu().equal(torch::full({5}, n - 1 + 10, torch::kInt64)));
}

}  // namespace
