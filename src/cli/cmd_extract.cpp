// `superficial extract JOB`, `superficial validate FILE...`, `superficial inspect FILE...` and
// `superficial bench extract JOB`.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "cli/bench_probe.hpp"
#include "cli/command.hpp"
#include "core/error.hpp"
#include "core/files.hpp"
#include "core/job.hpp"
#include "core/log.hpp"
#include "dist/comm.hpp"
#include "dist/run_lock.hpp"
#include "extract/extract.hpp"
#include "extract/logit_dataset.hpp"
#include "io/h5.hpp"
#include "judge/judgments.hpp"
#include "model/flops.hpp"
#include "model/model_files.hpp"
#include "study/study.hpp"

namespace {

struct JobArgs {
  std::string file;
  std::vector<std::string> overrides;
};

void add_job_args(CLI::App* cmd, JobArgs& a) {
  cmd->add_option("job", a.file, "Job file (jobs/*.yaml)")->required();
  cmd->add_option("--set", a.overrides, "Override a job key: --set extract.top_k=100 (repeatable)");
}

void print_line(const std::string& s) { std::printf("%s\n", s.c_str()); }

double idle_max(const sf::extract::ExtractSummary& s) {
  double m = 0;
  for (const auto& r : s.ranks) m = std::max(m, r.idle_fraction());
  return m;
}

void log_summary(const sf::extract::ExtractSummary& s) {
  for (const auto& r : s.ranks)
    spdlog::info("extract: rank {}: {} chunks, {} examples, {} tokens, busy {:.1f} s of {:.1f} s (idle {:.1f}%)",
                 r.rank, r.chunks, r.examples, r.tokens, r.busy_s, r.wall_s, 100.0 * r.idle_fraction());
  spdlog::info("extract: {} examples, {} tokens ({} of {} chunks resumed), {:.0f} bytes/token -> {}", s.num_items,
               s.num_tokens, s.chunks_resumed, s.chunks_total,
               s.num_tokens > 0 ? static_cast<double>(s.bytes) / static_cast<double>(s.num_tokens) : 0.0,
               s.output.string());
}

void run_extract_command(const JobArgs& a) {
  const sf::Job job = sf::Job::load(a.file, a.overrides);
  const sf::study::Study study = sf::study::Study::from_job(job);
  if (study.pairs().empty()) throw sf::ConfigError(a.file + ": heads: no head is trained here, so no pair to extract");
  const auto& comm = sf::dist::Comm::world();
  const auto lock = sf::dist::lock_run_folder(job, "extract " + a.file, comm);
  for (const auto& pair : study.pairs()) {
    const auto s = sf::extract::run_extract(job, study, pair, comm);
    if (comm.is_root()) log_summary(s);
  }
}

void validate_command(const std::vector<std::string>& files) {
  int bad = 0;
  for (const auto& f : files) {
    auto problems = sf::h5::validate_file(f);
    // Beyond the schema: offsets, judges and probabilities of a judgments file.
    if (problems.empty() && sf::h5::File::open(f).attr_string("schema") == "judgments")
      problems = sf::judge::check_judgments(f);
    if (problems.empty()) {
      const auto file = sf::h5::File::open(f);
      print_line(f + ": ok (schema " + file.attr_string("schema") + " v" +
                 std::to_string(file.attr_int("schema_version")) + ")");
      continue;
    }
    ++bad;
    for (const auto& p : problems) print_line(p);
  }
  std::fflush(stdout);
  if (bad) throw sf::FormatError(std::to_string(bad) + " of " + std::to_string(files.size()) + " file(s) invalid");
}

void inspect_command(const std::vector<std::string>& files) {
  for (const auto& f : files) {
    const auto file = sf::h5::File::open(f);
    const std::string schema = file.has_attr("schema") ? file.attr_string("schema") : "?";
    if (schema != "logits") {
      print_line(f + ": schema " + schema);
      const nlohmann::json attrs = sf::h5::read_attrs(file);
      for (const auto& [name, v] : attrs.items())
        if (!v.is_string() || v.get<std::string>().size() < 80) print_line("  " + name + " = " + v.dump());
      continue;
    }
    const auto d = sf::extract::LogitDataset::open(f);
    const auto& at = d.attributes();
    print_line(f + ": logits v" + std::to_string(at.at("schema_version").get<int64_t>()) + " (" +
               at.at("kind").get<std::string>() + ")");
    print_line("  examples " + std::to_string(d.num_examples()) + ", tokens " + std::to_string(d.num_tokens()) +
               ", top_k " + std::to_string(d.top_k()) + ", hidden " + std::to_string(d.hidden_size()) + " (" +
               at.at("hidden_dtype").get<std::string>() + ")");
    const nlohmann::json models =
        sf::parse_json_text<sf::FormatError>(at.at("models").get<std::string>(), f + ": attribute 'models'");
    for (const auto& [role, m] : models.items())
      print_line("  " + role + ": " + m.at("path").get<std::string>() + " (template " +
                 m.at("template").get<std::string>() + ", model fingerprint " +
                 m.at("model_fingerprint").get<std::string>().substr(0, 12) + ")");
    print_line("  tasks " + at.at("tasks").get<std::string>());
    print_line("  written by superficial " + at.at("tool_version").get<std::string>() + " (" +
               at.at("git_sha").get<std::string>() + ") at " + at.at("created").get<std::string>());
  }
}

// This rank's float32 GEMM peak on the pair's product shapes (cli/bench_probe.hpp), measured by
// every rank at once after the stage; -1 where the floor is not defined here: on a GPU, or with a
// model that does not compute in float32 (a bf16 product's peak depends on the CPU's bf16 support).
double rank_gemm_peak(const sf::Job& job, const sf::study::Pair& pair) {
  const sf::ModelRef &aligned = job.model(pair.aligned), &base = job.model(pair.base);
  if (job.device() != "cpu" || aligned.dtype != "float32" || base.dtype != "float32") return -1;
  std::vector<std::pair<int64_t, int64_t>> shapes;
  for (const sf::ModelRef* m : {&aligned, &base}) {
    const auto s = sf::model::product_shapes(sf::model::load_model_config(m->path), job.tensor_parallel());
    shapes.insert(shapes.end(), s.begin(), s.end());
  }
  return sf::cli::gemm_peak_gflops(shapes, 2048, 3);
}

// Runs the stage into <run_dir>/bench-extract (removed before and after) and prints per-rank speed,
// with each rank's floor: the time its products (RankStats::product_flops) would take at its float32
// GEMM peak, nothing else costing time.
void bench_extract_command(const JobArgs& a) {
  const sf::Job probe = sf::Job::load(a.file, a.overrides);
  std::vector<std::string> overrides = a.overrides;
  const std::filesystem::path dir = probe.run_dir() / "bench-extract";
  overrides.push_back("run_dir=" + dir.string());
  const sf::Job job = sf::Job::load(a.file, overrides);
  const auto& comm = sf::dist::Comm::world();
  if (comm.is_root()) std::filesystem::remove_all(dir);
  comm.barrier();
  const sf::study::Study study = sf::study::Study::from_job(job);
  if (study.pairs().empty()) throw sf::ConfigError(a.file + ": heads: no head is trained here, so no pair to extract");
  const auto s = sf::extract::run_extract(job, study, study.pairs().front(), comm);
  comm.barrier();
  const std::vector<std::string> peaks = comm.gather(std::to_string(rank_gemm_peak(job, study.pairs().front())));
  if (!comm.is_root()) return;
  std::filesystem::remove_all(dir);
  nlohmann::json ranks = nlohmann::json::array();
  const nlohmann::json none;
  double wall = 0, product_flops = 0, floor_s = 0;
  bool measured = true;
  for (const auto& r : s.ranks) {
    wall = std::max(wall, r.wall_s);
    product_flops += r.product_flops;
    const double peak = std::stod(peaks.at(static_cast<size_t>(r.rank)));
    measured = measured && peak > 0;
    const double rank_floor = peak > 0 ? r.product_flops / (peak * 1e9) : 0.0;
    floor_s = std::max(floor_s, rank_floor);
    ranks.push_back({{"rank", r.rank},
                     {"examples", r.examples},
                     {"tokens", r.tokens},
                     {"busy_s", r.busy_s},
                     {"tokens_per_s", r.busy_s > 0 ? static_cast<double>(r.tokens) / r.busy_s : 0.0},
                     {"idle_fraction", r.idle_fraction()},
                     {"product_gflop", r.product_flops / 1e9},
                     {"gemm_peak_gflops", peak > 0 ? nlohmann::json(peak) : none},
                     {"floor_s", peak > 0 ? nlohmann::json(rank_floor) : none}});
  }
  const nlohmann::json out = {
      {"bench", "extract"},
      {"ranks", comm.size()},
      {"examples", s.num_items},
      {"tokens", s.num_tokens},
      {"wall_s", wall},
      {"tokens_per_s", wall > 0 ? static_cast<double>(s.num_tokens) / wall : 0.0},
      {"bytes_per_token", s.num_tokens > 0 ? static_cast<double>(s.bytes) / static_cast<double>(s.num_tokens) : 0.0},
      {"idle_fraction_max", idle_max(s)},
      {"product_gflop", product_flops / 1e9},
      // The slowest rank's floor (null unless on CPU with float32 models), and how far above it the
      // stage ran.
      {"floor_s", measured ? nlohmann::json(floor_s) : none},
      {"wall_vs_floor", measured && floor_s > 0 ? nlohmann::json(wall / floor_s) : none},
      {"per_rank", ranks}};
  print_line(out.dump());
}

void setup(CLI::App& app) {
  auto extract_args = std::make_shared<JobArgs>();
  auto* extract = app.add_subcommand(
      "extract", "Answer the tasks' training prompts with the aligned model and record both models' top-k logits");
  add_job_args(extract, *extract_args);
  extract->callback([extract_args] { run_extract_command(*extract_args); });

  auto files = std::make_shared<std::vector<std::string>>();
  auto* validate = app.add_subcommand("validate", "Check result files (HDF5) against their schema version");
  validate->add_option("files", *files, "HDF5 files")->required();
  validate->callback([files] { validate_command(*files); });

  auto inspect_files = std::make_shared<std::vector<std::string>>();
  auto* inspect = app.add_subcommand("inspect", "Summarise result files (examples, tokens, models, k)");
  inspect->add_option("files", *inspect_files, "HDF5 files")->required();
  inspect->callback([inspect_files] { inspect_command(*inspect_files); });

  auto bench_args = std::make_shared<JobArgs>();
  auto* bench =
      sf::cli::bench_group(app).add_subcommand("extract",
                                               "Extraction tokens/s per rank, idle fraction and floor at the GEMM peak "
                                               "(runs the job's extract stage in a scratch folder)");
  add_job_args(bench, *bench_args);
  bench->callback([bench_args] { bench_extract_command(*bench_args); });
}

}  // namespace

SF_COMMAND(setup);
