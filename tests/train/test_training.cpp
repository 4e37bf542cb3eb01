// Training through the inference model's forward: a step lowers the loss, checkpoints reload
// exactly, resume continues the same loss curve, and two MPI ranks equal one.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.hpp"
#include "model/causal_lm.hpp"
#include "testutil/testutil.hpp"
#include "train/dataset.hpp"
#include "train/train_config.hpp"
#include "train/trainer.hpp"

namespace {

namespace fs = std::filesystem;

sf::model::ModelConfig tiny_config() {
  sf::model::ModelConfig c;
  c.model_type = "llama";
  c.vocab_size = 64;
  c.hidden_size = 32;
  c.intermediate_size = 64;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 8;
  c.max_position_embeddings = 64;
  c.tie_word_embeddings = true;
  c.eos_token_ids = {2};
  return c;
}

sf::train::TrainConfig optim_config(double lr) {
  return sf::train::TrainConfig::parse(
      "recipe: pretrain\nout: o\nmodel: {init_from: m}\ndata: [{file: a, format: lines, text: '{text}'}]\n"
      "seq_len: 16\nbatch: 2\nsteps: 10\nlr: " +
          std::to_string(lr) + "\n",
      "optim.yaml");
}

sf::train::Batch fixed_batch() {
  auto gen = at::detail::createCPUGenerator(5);
  sf::train::Batch b;
  b.ids = torch::randint(3, 64, {2, 12}, gen, torch::kInt64);
  b.mask = torch::ones({2, 12}, torch::kInt64);
  b.labels = b.ids.clone();
  b.labels.index_put_({0, torch::indexing::Slice(0, 4)}, sf::train::kIgnoreLabel);
  return b;
}

double loss_of(const sf::model::CausalLM& m, const sf::train::Batch& b) {
  torch::NoGradGuard no_grad;
  return sf::train::token_loss_sum(m.forward(b.ids, b.mask).logits, b.labels).item<double>() /
         static_cast<double>(sf::train::count_targets(b.labels));
}

TEST(Training, OneStepLowersTheLossOnAFixedBatch) {
  const auto model = sf::model::CausalLM::random(tiny_config(), 11);
  const auto batch = fixed_batch();
  auto opt = sf::train::make_optimizer(model, optim_config(1e-2));
  const double before = loss_of(model, batch);
  EXPECT_NEAR(before, std::log(64.0), 0.2);  // near-uniform at init
  opt->zero_grad();
  const auto loss = sf::train::token_loss_sum(model.forward(batch.ids, batch.mask).logits, batch.labels) /
                    static_cast<double>(sf::train::count_targets(batch.labels));
  EXPECT_NEAR(loss.item<double>(), before, 1e-5);
  loss.backward();
  for (const auto& [name, p] : model.named_parameters()) EXPECT_TRUE(p.grad().defined()) << name;
  opt->step();
  EXPECT_LT(loss_of(model, batch), before - 0.05);
}

TEST(Training, LossIgnoresMaskedLabels) {
  const auto logits = torch::randn({1, 4, 8});
  auto labels = torch::tensor({{5, 1, 2, 3}}, torch::kInt64);
  const auto full = sf::train::token_loss_sum(logits, labels);
  labels[0][2] = sf::train::kIgnoreLabel;
  const auto part = sf::train::token_loss_sum(logits, labels);
  const auto lp = torch::log_softmax(logits[0][1], -1);
  EXPECT_NEAR(full.item<double>() - part.item<double>(), -lp[2].item<double>(), 1e-5);
  EXPECT_EQ(sf::train::count_targets(labels), 2);
}

TEST(Training, SavedModelReloadsToIdenticalLogits) {
  sf::test::TempDir dir("train-save");
  const auto model = sf::model::CausalLM::random(tiny_config(), 12);
  const auto batch = fixed_batch();
  auto opt = sf::train::make_optimizer(model, optim_config(1e-2));
  opt->zero_grad();
  sf::train::token_loss_sum(model.forward(batch.ids, batch.mask).logits, batch.labels).backward();
  opt->step();
  model.save(dir.path());
  const auto reloaded = sf::model::CausalLM::load(dir.path());
  torch::NoGradGuard no_grad;
  // The same kernels for both: weights that need gradients never take the decoding kernel.
  for (auto& [name, p] : model.named_parameters()) p.requires_grad_(false);
  EXPECT_TRUE(
      torch::equal(model.forward(batch.ids, batch.mask).logits, reloaded.forward(batch.ids, batch.mask).logits));
}

// A tiny pretraining run on a real tokenizer (Llama-2's) and a few lines of text.
struct TinyRun {
  sf::test::TempDir dir{"train-run"};
  fs::path config_file;
  TinyRun() {
    std::string text;
    for (int i = 0; i < 40; ++i) {
      text += "Line " + std::to_string(i) + ": the quick brown fox jumps over " + std::to_string(i * 7 % 13) +
              " lazy dogs.\n";
    }
    sf::test::write_file(dir / "text.txt", text);
    const auto tok = sf::test::shared_dir() / "models" / "meta-llama--Llama-2-7b-hf";
    config_file = dir / "tiny.yaml";
    sf::test::write_file(config_file, "recipe: pretrain\nout: " + (dir / "out").string() +
                                          "\ndata_root: " + dir.path().string() +
                                          "\nseed: 5\n"
                                          "model: {arch: llama, tokenizer: " +
                                          tok.string() +
                                          ", bos_token: '<s>', eos_token: '</s>', layers: 1, hidden: 32, heads: 4, "
                                          "kv_heads: 2, intermediate: 64}\n"
                                          "data: [{file: text.txt, format: lines, text: '{text}'}]\n"
                                          "seq_len: 16\nbatch: 4\nsteps: 6\nlr: 1.0e-2\nmin_lr: 1.0e-3\nwarmup: 2\n"
                                          "weight_decay: 0.1\nclip: 1.0\nthreads: 1\n");
  }
  sf::train::TrainConfig config(std::vector<std::string> overrides) const {
    return sf::train::TrainConfig::load(config_file, overrides);
  }
};

std::vector<double> read_losses(const fs::path& csv) {
  std::istringstream in(sf::test::read_file(csv));
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "step,loss,lr,grad_norm,tokens,seconds");
  std::vector<double> out;
  int64_t expect_step = 1;
  while (std::getline(in, line)) {
    EXPECT_EQ(std::stoll(line.substr(0, line.find(','))), expect_step++);
    const auto a = line.find(',') + 1;
    out.push_back(std::stod(line.substr(a, line.find(',', a) - a)));
  }
  return out;
}

TEST(Training, ResumeContinuesTheSameLossCurve) {
  TinyRun run;
  const auto a_out = run.dir / "a";
  const auto b_out = run.dir / "b";
  const auto a = sf::train::run_training(run.config({"out=" + a_out.string()}));
  EXPECT_TRUE(a.complete);
  EXPECT_TRUE(fs::exists(a_out / "COMPLETE"));
  EXPECT_TRUE(fs::exists(a_out / "tokenizer.json"));
  EXPECT_FALSE(fs::exists(a_out / "checkpoints"));

  const auto b1 = sf::train::run_training(run.config({"out=" + b_out.string(), "stop_after=3"}));
  EXPECT_FALSE(b1.complete);
  EXPECT_EQ(b1.last_step, 3);
  const auto ckpt = b_out / "checkpoints" / "step-000003";
  ASSERT_TRUE(fs::exists(ckpt / "optimizer.pt"));
  EXPECT_EQ(sf::model::CausalLM::load(ckpt).config().hidden_size, 32);  // HF layout, loadable
  // A checkpoint made from another config is refused.
  EXPECT_THROW(sf::train::run_training(run.config({"out=" + b_out.string(), "lr=2.0e-2"})), sf::ConfigError);

  const auto b2 = sf::train::run_training(run.config({"out=" + b_out.string()}));
  EXPECT_EQ(b2.resumed_from, 3);
  EXPECT_TRUE(b2.complete);
  const auto la = read_losses(a_out / "loss.csv");
  const auto lb = read_losses(b_out / "loss.csv");
  ASSERT_EQ(la.size(), 6u);
  ASSERT_EQ(lb.size(), 6u);
  for (size_t i = 0; i < la.size(); ++i) EXPECT_NEAR(la[i], lb[i], 1e-6 * la[i]) << "step " << i + 1;
  EXPECT_LT(la.back(), la.front());

  const auto ma = sf::model::CausalLM::load(a_out);
  const auto mb = sf::model::CausalLM::load(b_out);
  const auto ids = torch::tensor({{1, 450, 4996, 17354}}, torch::kInt64);
  const auto mask = torch::ones_like(ids);
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::allclose(ma.forward(ids, mask).logits, mb.forward(ids, mask).logits, 1e-5, 1e-5));

  // Finished: a second call returns at once; a different config on the same folder is an error.
  EXPECT_TRUE(sf::train::run_training(run.config({"out=" + a_out.string()})).cached);
  EXPECT_THROW(sf::train::run_training(run.config({"out=" + a_out.string(), "steps=7"})), sf::ConfigError);
}

// The same global batch over two MPI ranks, or in two accumulation steps, gives the same curve.
TEST(Training, DataParallelAndAccumulationMatchOneRank) {
  TinyRun run;
  const std::string cli = sf::test::cli_path().string() + " train " + run.config_file.string() + " --set out=";
  const auto single = sf::test::run_command(cli + (run.dir / "single").string());
  ASSERT_EQ(single.exit_code, 0) << single.output;
  const auto accum = sf::test::run_command(cli + (run.dir / "accum").string() + " --set accum=2");
  ASSERT_EQ(accum.exit_code, 0) << accum.output;
  const auto dp = sf::test::run_command("OMP_NUM_THREADS=1 mpirun --allow-run-as-root --oversubscribe -np 2 " + cli +
                                        (run.dir / "dp").string());
  ASSERT_EQ(dp.exit_code, 0) << dp.output;
  const auto ls = read_losses(run.dir / "single" / "loss.csv");
  const auto la = read_losses(run.dir / "accum" / "loss.csv");
  const auto ld = read_losses(run.dir / "dp" / "loss.csv");
  ASSERT_EQ(ls.size(), 6u);
  ASSERT_EQ(la.size(), 6u);
  ASSERT_EQ(ld.size(), 6u);
  for (size_t i = 0; i < ls.size(); ++i) {
    EXPECT_NEAR(la[i], ls[i], 1e-4 * ls[i]) << "accum, step " << i + 1;
    EXPECT_NEAR(ld[i], ls[i], 1e-4 * ls[i]) << "2 ranks, step " << i + 1;
  }
  // Unknown keys and bad batch splits fail with one line naming the file.
  const auto bad = sf::test::run_command(cli + (run.dir / "bad").string() + " --set batch=3 --set accum=2");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.output.find("tiny.yaml: batch 3 is not a multiple"), std::string::npos) << bad.output;
}

}  // namespace

namespace {

// response_logits_only: a left-padded batch with the lm_head run on the loss window only gives the
// same loss and gradients as the full right-padded forward.
TEST(Training, ResponseWindowGivesTheSameLossAndGradients) {
  const auto model = sf::model::CausalLM::random(tiny_config(), 13);
  std::vector<sf::train::Sequence> rows = {sf::train::make_sft_sequence({5, 6, 7, 8, 9, 10, 11}, {12}, 2, 32),
                                           sf::train::make_sft_sequence({5, 6, 7}, {13, 14, 15}, 2, 32),
                                           sf::train::make_sft_sequence({20, 21, 22, 23, 24}, {30}, 2, 32)};
  std::vector<const sf::train::Sequence*> ptrs;
  for (const auto& r : rows) ptrs.push_back(&r);
  auto loss_and_grads = [&](bool window) {
    for (const auto& [name, p] : model.named_parameters()) {
      p.requires_grad_(true);
      if (p.grad().defined()) p.grad().zero_();
    }
    const auto b = sf::train::collate(ptrs, 0, window);
    const int64_t w = window ? sf::train::loss_window(b.labels) : 0;
    if (window) {
      EXPECT_EQ(w, 5);  // the second row: 3 response tokens + EOS, predicted from the 4 positions before
    }
    const auto logits = model.forward(b.ids, b.mask, nullptr, w).logits;
    const auto labels = w > 0 ? b.labels.narrow(1, b.labels.size(1) - w, w) : b.labels;
    const auto loss = sf::train::token_loss_sum(logits, labels);
    loss.backward();
    std::vector<torch::Tensor> grads;
    for (const auto& [name, p] : model.named_parameters()) grads.push_back(p.grad().clone());
    return std::make_pair(loss.item<double>(), grads);
  };
  const auto full = loss_and_grads(false);
  const auto win = loss_and_grads(true);
  EXPECT_NEAR(full.first, win.first, 1e-4);
  for (size_t i = 0; i < full.second.size(); ++i)
    EXPECT_LE((full.second[i] - win.second[i]).abs().max().item<double>(), 1e-5) << i;
  EXPECT_THROW(sf::train::TrainConfig::parse(
                   "recipe: pretrain\nout: o\nmodel: {init_from: m}\ndata: [{file: a, format: lines, text: '{text}'}]\n"
                   "seq_len: 16\nbatch: 2\nsteps: 10\nlr: 1.0e-3\nresponse_logits_only: true\n",
                   "p.yaml"),
               sf::ConfigError);
}

}  // namespace
