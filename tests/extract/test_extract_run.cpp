// The extract stage end to end on a tiny random pair (sharing SmolLM2's real tokenizer): an
// uninterrupted run, a run killed with SIGKILL and resumed under mpirun -np 2 (same data), SIGTERM
// (exit 3, nothing half-written), validation and inspection of the output, and the one prompt path
// (extract and evaluate give the same example the same token ids).
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <chrono>
#include <thread>

#include "core/text.hpp"
#include "eval/results.hpp"
#include "extract/logit_dataset.hpp"
#include "io/h5.hpp"
#include "model/causal_lm.hpp"
#include "model/config.hpp"
#include "model/flops.hpp"
#include "model/generate.hpp"
#include "model/model_files.hpp"
#include "testutil/testutil.hpp"

extern char** environ;

namespace {

namespace fs = std::filesystem;
using sf::test::run_command;

const char* kEnv = "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 ";

fs::path make_pair(const fs::path& dir) {
  const nlohmann::json cfg = {{"model_type", "llama"},
                              {"vocab_size", 49152},
                              {"hidden_size", 32},
                              {"intermediate_size", 64},
                              {"num_hidden_layers", 2},
                              {"num_attention_heads", 4},
                              {"num_key_value_heads", 2},
                              {"max_position_embeddings", 1024},
                              {"rms_norm_eps", 1e-5},
                              {"rope_theta", 10000.0},
                              {"tie_word_embeddings", true},
                              {"bos_token_id", 1},
                              {"eos_token_id", 2}};
  const auto config = sf::model::ModelConfig::from_json(cfg, "tiny");
  for (const auto& [role, seed] : std::vector<std::pair<std::string, uint64_t>>{{"base", 1}, {"aligned", 2}}) {
    sf::model::CausalLM::random(config, seed).save(dir / role);
    fs::create_symlink(sf::test::shared_dir() / "models/HuggingFaceTB--SmolLM2-135M-Instruct/tokenizer.json",
                       dir / role / "tokenizer.json");
  }
  return dir;
}

// A job over two tasks with prompts of different lengths; `extra` is appended to the extract section.
fs::path write_job(const fs::path& dir, const fs::path& models) {
  const fs::path tasks = sf::test::source_dir() / "configs/tasks";
  sf::test::write_file(dir / "job.yaml", "run_dir: " + (dir / "run").string() + "\nseed: 1\nthreads: 1\ndata_root: " +
                                             (sf::test::shared_dir() / "data").string() +
                                             "\nmodels:\n  base: {path: " + (models / "base").string() +
                                             ", template: plain}\n  aligned: {path: " + (models / "aligned").string() +
                                             ", template: chatml}\ntasks: [" + (tasks / "advbench.yaml").string() +
                                             ", " + (tasks / "gsm8k.yaml").string() +
                                             "]\nextract:\n  max_examples: 10\n  max_new_tokens: 12\n  top_k: 50\n"
                                             "  batch_size: 2\n  chunk_examples: 1\n"
                                             "heads:\n  from: {base: base, aligned: aligned}\n"
                                             "  variants: [{name: hidden, type: hidden}]\n");
  return dir / "job.yaml";
}

std::string extract_cmd(const fs::path& job, const fs::path& run_dir) {
  return sf::test::cli_path().string() + " extract " + job.string() + " --set run_dir=" + run_dir.string();
}

// Starts the CLI in the background; returns its pid.
pid_t spawn(const fs::path& job, const fs::path& run_dir) {
  const std::string cli = sf::test::cli_path().string(), j = job.string(), set = "run_dir=" + run_dir.string();
  std::vector<char*> argv = {const_cast<char*>(cli.c_str()), const_cast<char*>("--log-level"),
                             const_cast<char*>("warn"),      const_cast<char*>("extract"),
                             const_cast<char*>(j.c_str()),   const_cast<char*>("--set"),
                             const_cast<char*>(set.c_str()), nullptr};
  pid_t pid = 0;
  EXPECT_EQ(posix_spawn(&pid, cli.c_str(), nullptr, nullptr, argv.data(), environ), 0);
  return pid;
}

// Waits until `n` finished shards exist (or the process ended); returns how many there are.
size_t wait_for_shards(const fs::path& shards, size_t n, pid_t pid) {
  for (int i = 0; i < 6000; ++i) {
    size_t count = 0;
    if (fs::exists(shards))
      for (const auto& e : fs::directory_iterator(shards)) count += e.path().extension() == ".h5";
    if (count >= n || waitpid(pid, nullptr, WNOHANG) == pid) return count;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return 0;
}

void expect_same_data(const fs::path& a, const fs::path& b) {
  const auto x = sf::extract::LogitDataset::open(a), y = sf::extract::LogitDataset::open(b);
  ASSERT_EQ(x.num_examples(), y.num_examples());
  ASSERT_EQ(x.num_tokens(), y.num_tokens());
  for (int64_t r = 0; r < x.num_examples(); ++r) {
    const auto p = x.example(r), q = y.example(r);
    EXPECT_EQ(p.item, q.item);
    EXPECT_EQ(p.response_ids, q.response_ids) << "row " << r;
    EXPECT_EQ(p.base_prompt_ids, q.base_prompt_ids);
    EXPECT_TRUE(p.aligned_topk_logits.equal(q.aligned_topk_logits)) << "row " << r;
    EXPECT_TRUE(p.base_topk_ids.equal(q.base_topk_ids)) << "row " << r;
    EXPECT_TRUE(p.base_hidden.equal(q.base_hidden)) << "row " << r;
  }
}

class ExtractRun : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    setenv("SUPERFICIAL_SCHEMA_DIR", (sf::test::source_dir() / "results-schema").c_str(), 1);
    setenv("OMP_NUM_THREADS", "1", 1);
    dir_ = new sf::test::TempDir("extract-run");
    job_ = write_job(dir_->path(), make_pair(dir_->path() / "models"));
    const auto r = run_command(extract_cmd(job_, dir_->path() / "reference"));
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  static void TearDownTestSuite() { delete dir_; }
  static fs::path reference() { return dir_->path() / "reference/extract/base__aligned/logits.h5"; }
  static sf::test::TempDir* dir_;
  static fs::path job_;
};
sf::test::TempDir* ExtractRun::dir_ = nullptr;
fs::path ExtractRun::job_;

TEST_F(ExtractRun, OutputValidatesAndIsComplete) {
  const auto d = sf::extract::LogitDataset::open(reference());
  EXPECT_EQ(d.num_examples(), 20);
  EXPECT_EQ(d.top_k(), 50);
  EXPECT_EQ(d.hidden_size(), 32);
  for (int64_t r = 0; r < d.num_examples(); ++r) {
    const auto ex = d.example(r);
    EXPECT_EQ(ex.item, r);
    EXPECT_EQ(ex.task, r < 10 ? "advbench" : "gsm8k");
    EXPECT_GE(ex.response_ids.size(), 1u);
    EXPECT_LE(ex.response_ids.size(), 12u);
    // Greedy answers: the aligned model's top-1 at position j is response token j.
    EXPECT_TRUE(ex.aligned_topk_ids.select(1, 0).equal(
        torch::tensor(std::vector<int64_t>(ex.response_ids.begin(), ex.response_ids.end()))))
        << "row " << r;
  }
  const auto v = run_command(sf::test::cli_path().string() + " validate " + reference().string());
  EXPECT_EQ(v.exit_code, 0) << v.output;
  const auto i = run_command(sf::test::cli_path().string() + " inspect " + reference().string());
  EXPECT_EQ(i.exit_code, 0) << i.output;
  EXPECT_NE(i.output.find("examples 20"), std::string::npos) << i.output;
  const auto h = run_command("h5dump -H " + reference().string());
  EXPECT_EQ(h.exit_code, 0) << h.output;
  // A second run finds everything done.
  const auto again = run_command(extract_cmd(job_, dir_->path() / "reference"));
  EXPECT_EQ(again.exit_code, 0) << again.output;
  EXPECT_NE(again.output.find("is complete, skipped"), std::string::npos) << again.output;
}

// What the file holds, recomputed without the stage: the aligned top-k recorded while generating
// equals the aligned model teacher-forced on prompt + answer, and the base rows equal the base model
// teacher-forced on its prompt + the same answer, at the answer positions (up to float order).
TEST_F(ExtractRun, StoredLogitsAreTheModelsTeacherForcedOnTheAnswer) {
  const auto d = sf::extract::LogitDataset::open(reference());
  const fs::path models = dir_->path() / "models";
  const auto aligned = sf::model::CausalLM::load(models / "aligned"), base = sf::model::CausalLM::load(models / "base");
  std::vector<std::vector<int32_t>> seq_a, seq_b;
  std::vector<sf::extract::ExtractedExample> rows;
  for (int64_t r = 0; r < d.num_examples(); ++r) {
    rows.push_back(d.example(r));
    const auto& ex = rows.back();
    seq_a.push_back(ex.aligned_prompt_ids);
    seq_a.back().insert(seq_a.back().end(), ex.response_ids.begin(), ex.response_ids.end());
    seq_b.push_back(ex.base_prompt_ids);
    seq_b.back().insert(seq_b.back().end(), ex.response_ids.begin(), ex.response_ids.end());
  }
  sf::model::ScoreOptions opts;
  opts.top_k = 50;
  opts.hidden = true;
  const auto sa = sf::model::score(aligned, seq_a, opts), sb = sf::model::score(base, seq_b, opts);
  for (size_t r = 0; r < rows.size(); ++r) {
    const auto& ex = rows[r];
    const int64_t n = static_cast<int64_t>(ex.response_ids.size());
    const int64_t pa = static_cast<int64_t>(ex.aligned_prompt_ids.size()) - 1;
    const int64_t pb = static_cast<int64_t>(ex.base_prompt_ids.size()) - 1;
    EXPECT_TRUE(torch::allclose(ex.aligned_topk_logits, sa.topk_logits[r].narrow(0, pa, n), 1e-4, 1e-4)) << r;
    EXPECT_TRUE(ex.aligned_topk_ids.select(1, 0).equal(sa.topk_ids[r].narrow(0, pa, n).select(1, 0))) << r;
    EXPECT_TRUE(torch::allclose(ex.base_topk_logits, sb.topk_logits[r].narrow(0, pb, n), 1e-4, 1e-4)) << r;
    EXPECT_TRUE(ex.base_topk_ids.select(1, 0).equal(sb.topk_ids[r].narrow(0, pb, n).select(1, 0))) << r;
    // Stored as float16.
    EXPECT_TRUE(torch::allclose(ex.base_hidden, sb.hidden[r].narrow(0, pb, n), 2e-3, 2e-3)) << r;
  }
}

// The last line of a command's output as JSON (bench prints one object).
nlohmann::json last_json_line(const std::string& output) {
  const auto lines = sf::split(output, "\n");
  for (auto it = lines.rbegin(); it != lines.rend(); ++it)
    if (!it->empty()) return nlohmann::json::parse(*it);
  return {};
}

// `bench extract` counts the products the stage needs from what it answered (the same answers as
// the reference run: greedy, same job) and puts them beside the GEMM peak it measured; with a bf16
// model there is no float32 floor, and it says so with nulls.
TEST_F(ExtractRun, BenchCountsTheProductsOfWhatItAnswered) {
  const std::string bench = sf::test::cli_path().string() + " --log-level warn bench extract " + job_.string() +
                            " --set run_dir=" + (dir_->path() / "bench").string();
  auto r = run_command(bench);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json j = last_json_line(r.output);
  const auto d = sf::extract::LogitDataset::open(reference());
  const auto c = sf::model::load_model_config(dir_->path() / "models/base");  // both models' config
  const double layer = sf::model::layer_product_flops(c), head = sf::model::lm_head_flops(c);
  EXPECT_DOUBLE_EQ(layer, 2.0 * 2 * (32 * 32 * 2 + 32 * 16 * 2 + 3 * 32 * 64));  // q,o + k,v (2 KV heads of 8) + MLP
  EXPECT_DOUBLE_EQ(head, 2.0 * 32 * 49152);
  double expected = 0;
  for (int64_t e = 0; e < d.num_examples(); ++e) {
    const auto ex = d.example(e);
    const double n = static_cast<double>(ex.response_ids.size());
    for (size_t prompt : {ex.aligned_prompt_ids.size(), ex.base_prompt_ids.size()})
      expected += layer * (static_cast<double>(prompt) + n - 1) + head * n;
  }
  EXPECT_EQ(j.at("tokens").get<int64_t>(), d.num_tokens());
  EXPECT_NEAR(j.at("product_gflop").get<double>(), expected / 1e9, 1e-12 * expected);
  const double peak = j.at("per_rank").at(0).at("gemm_peak_gflops").get<double>();
  const double floor_s = j.at("floor_s").get<double>();
  EXPECT_GT(peak, 0.0);
  EXPECT_NEAR(floor_s, expected / (peak * 1e9), 1e-9 * floor_s);
  EXPECT_LT(floor_s, j.at("wall_s").get<double>());
  EXPECT_NEAR(j.at("wall_vs_floor").get<double>(), j.at("wall_s").get<double>() / floor_s, 1e-9);

  r = run_command(bench + " --set models.base.dtype=bfloat16");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json b = last_json_line(r.output);
  EXPECT_TRUE(b.at("floor_s").is_null()) << b.dump();
  EXPECT_TRUE(b.at("wall_vs_floor").is_null());
  EXPECT_TRUE(b.at("per_rank").at(0).at("gemm_peak_gflops").is_null());
  EXPECT_GT(b.at("product_gflop").get<double>(), 0.0);
}

TEST_F(ExtractRun, ResumeAfterSigkillIsExact) {
  const fs::path run = dir_->path() / "killed";
  const pid_t pid = spawn(job_, run);
  const size_t before = wait_for_shards(run / "extract/base__aligned/shards", 3, pid);
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  ASSERT_GE(before, 3u);
  ASSERT_LT(before, 20u) << "the run ended before it could be killed";
  EXPECT_FALSE(fs::exists(run / "extract/base__aligned/logits.h5"));
  const auto r = run_command(std::string(kEnv) + "mpirun --oversubscribe -np 2 " + extract_cmd(job_, run));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("chunks resumed"), std::string::npos) << r.output;
  expect_same_data(reference(), run / "extract/base__aligned/logits.h5");
  for (const auto& e : fs::directory_iterator(run / "extract/base__aligned/shards"))
    EXPECT_EQ(e.path().extension(), ".h5");
}

TEST_F(ExtractRun, SigtermStopsCleanlyWithExitCode3) {
  const fs::path run = dir_->path() / "terminated";
  const pid_t pid = spawn(job_, run);
  wait_for_shards(run / "extract/base__aligned/shards", 2, pid);
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 3);
  for (const auto& e : fs::directory_iterator(run / "extract/base__aligned/shards"))
    EXPECT_EQ(e.path().extension(), ".h5");
  EXPECT_FALSE(fs::exists(run / "extract/base__aligned/logits.h5"));
  const auto r = run_command(extract_cmd(job_, run));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_same_data(reference(), run / "extract/base__aligned/logits.h5");
}

TEST_F(ExtractRun, ErrorsAreOneLineAndLeaveNoOutput) {
  const fs::path run = dir_->path() / "errors";
  auto r = run_command(extract_cmd(job_, run) + " --set extract.top_k=0");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("extract.top_k: must be >= 1"), std::string::npos) << r.output;
  r = run_command(extract_cmd(job_, run) + " --set extract.colour=red");
  EXPECT_NE(r.output.find("colour"), std::string::npos) << r.output;
  r = run_command(extract_cmd(job_, run) + " --set data_root=/nonexistent");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  r = run_command(extract_cmd(job_, run) +
                  " --set models.base.path=" + (sf::test::shared_dir() / "models/meta-llama--Llama-2-7b-hf").string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("tokenizer vocab sizes differ"), std::string::npos) << r.output;
  // An unwritable output folder.
  fs::create_directories(run);
  sf::test::write_file(run / "extract", "a file where the folder should be");
  r = run_command(extract_cmd(job_, run));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("cannot create folder"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(run / "extract/base__aligned/logits.h5"));
}

// The head is trained on the prompts extract renders and evaluated on the prompts evaluate renders:
// both must be the same ids for the same example (one prompt function serves every stage).
TEST_F(ExtractRun, ExtractAndEvaluateRenderIdenticalPromptIds) {
  const fs::path run = dir_->path() / "same-prompts";
  const std::string set = " --set run_dir=" + run.string() + " --set extract.split=test";
  auto r = run_command(sf::test::cli_path().string() + " extract " + job_.string() + set);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_command(sf::test::cli_path().string() + " evaluate " + job_.string() + set +
                  " --set evaluate.max_examples=10 --set evaluate.max_new_tokens=2" +
                  " --set 'systems={plain-base: {model: base}, chat: {model: aligned}}'");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto ds = sf::extract::LogitDataset::open(run / "extract/base__aligned/logits.h5");
  const auto rows = sf::eval::read_rows(run / "evaluate/results.h5");
  int compared = 0;
  for (int64_t i = 0; i < ds.num_examples(); ++i) {
    const auto ex = ds.example(i);
    for (const auto& row : rows) {
      if (row.task != ex.task || row.example_id != ex.example_id) continue;
      const auto& expected = row.system == "chat" ? ex.aligned_prompt_ids : ex.base_prompt_ids;
      EXPECT_EQ(row.prompt_ids, expected) << ex.task << " example " << ex.example_id << " system " << row.system;
      ++compared;
    }
  }
  EXPECT_EQ(compared, 2 * 20);  // two tasks × 10 examples × two systems
}

}  // namespace
