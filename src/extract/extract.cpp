#include "extract/extract.hpp"

#include <algorithm>
#include <regex>
#include <set>

#include "core/build_info.hpp"
#include "core/clock.hpp"
#include "core/error.hpp"
#include "core/hash.hpp"
#include "core/log.hpp"
#include "core/stop.hpp"
#include "dist/layout.hpp"
#include "eval/prompt.hpp"
#include "eval/task.hpp"
#include "extract/logit_dataset.hpp"
#include "extract/shard_writer.hpp"
#include "heads/base_model.hpp"
#include "io/h5.hpp"
#include "model/causal_lm.hpp"
#include "model/finite.hpp"
#include "model/flops.hpp"
#include "model/generate.hpp"
#include "model/model_files.hpp"
#include "study/model_set.hpp"
#include "tokenizer/tokenizer.hpp"

namespace sf::extract {
namespace {

// ---- Prompts -----------------------------------------------------------------------------------

struct Item {
  size_t task;  // index into the loaded tasks
  eval::Example example;
};

struct Prompts {
  std::vector<eval::Task> tasks;
  std::vector<Item> items;  // tasks in job order, examples in the task's order
};

Prompts load_prompts(const Job& job, const ExtractOptions& o) {
  if (job.tasks().empty()) throw ConfigError(job.source() + ": tasks: the extract stage needs at least one task");
  const eval::Split split = o.split == "train" ? eval::Split::kTrain : eval::Split::kTest;
  Prompts p;
  for (const auto& name : job.tasks()) {
    p.tasks.push_back(eval::Task::load(name));
    for (auto& ex : p.tasks.back().examples(split, job.data_root(), o.max_examples_for(name)))
      p.items.push_back({p.tasks.size() - 1, std::move(ex)});
  }
  if (p.items.empty()) throw ConfigError(job.source() + ": tasks: no prompts in the " + o.split + " split");
  return p;
}

// ---- Models ------------------------------------------------------------------------------------

// Both models must share one tokenizer: the answer's ids are fed to the base model as they are.
void check_same_tokenizer(const tok::Tokenizer& a, const tok::Tokenizer& b, const study::Pair& pair) {
  const std::string where = "pair " + pair.base + " → " + pair.aligned;
  if (a.vocab_size() != b.vocab_size())
    throw ConfigError(where + ": tokenizer vocab sizes differ (" + std::to_string(b.vocab_size()) + " vs " +
                      std::to_string(a.vocab_size()) + ")");
  const std::string probe = "The quick brown fox, 1234 times: naïve café 日本 <|endoftext|>\n  done.";
  if (a.encode(probe, true) != b.encode(probe, true))
    throw ConfigError(where + ": tokenizers encode a probe text differently");
  if (a.content_hash() != b.content_hash())
    throw ConfigError(where + ": tokenizer.json files differ (sha256 " + b.content_hash() + " vs " + a.content_hash() +
                      ")");
}

struct Models {
  std::unique_ptr<study::LoadedModel> aligned;
  std::unique_ptr<study::LoadedModel> base;
  std::set<int64_t> eos;  // the aligned model's
};

// ---- One chunk ---------------------------------------------------------------------------------

// Items [begin, end): the aligned model answers them all by continuous batching (o.batch_size rows
// decode together; a finished row's slot takes the next prompt at once). Its top-k at each answer
// position is recorded while it generates: the distribution of the step that chose the token, as in
// the reference's lock-step loop. The base model is then teacher-forced on prompt + answer, its
// lm_head and top-k run only on the answer positions.
std::vector<ExtractedExample> process_chunk(const Models& m, const Prompts& p, int64_t begin, int64_t end,
                                            const ExtractOptions& o) {
  std::vector<ExtractedExample> out(static_cast<size_t>(end - begin));
  std::vector<std::vector<int32_t>> aligned_prompts;
  // Room for the answer (generated, then teacher-forced) in each model's context.
  const eval::ContextLimit aligned_limit{m.aligned->name, m.aligned->lm.config().max_position_embeddings,
                                         o.max_new_tokens};
  const eval::ContextLimit base_limit{m.base->name, m.base->lm.config().max_position_embeddings, o.max_new_tokens};
  for (int64_t i = begin; i < end; ++i) {
    const Item& it = p.items[static_cast<size_t>(i)];
    const eval::Task& task = p.tasks[it.task];
    ExtractedExample& ex = out[static_cast<size_t>(i - begin)];
    ex.item = i;
    ex.example_id = it.example.id;
    ex.task = task.name();
    ex.prompt = it.example.input;
    ex.aligned_prompt_ids =
        eval::render_prompt(task, it.example, m.aligned->tokenizer, m.aligned->chat, aligned_limit).ids;
    ex.base_prompt_ids = eval::render_prompt(task, it.example, m.base->tokenizer, m.base->chat, base_limit).ids;
    aligned_prompts.push_back(ex.aligned_prompt_ids);
  }

  model::GenerateOptions g;
  g.max_new_tokens = o.max_new_tokens;
  g.greedy = true;
  g.eos_ids.assign(m.eos.begin(), m.eos.end());
  g.batch_size = o.batch_size;
  g.record_top_k = o.top_k;
  g.stop = [&](size_t row, const std::vector<int32_t>& generated) {
    const eval::GenerationSpec& gen = p.tasks[p.items[static_cast<size_t>(begin) + row].task].generation();
    if (gen.stop.empty() && gen.extract_stop.empty()) return false;
    const std::string text = m.aligned->tokenizer.decode(generated, true);
    auto found = [&](const std::string& s) { return text.find(s) != std::string::npos; };
    return std::any_of(gen.stop.begin(), gen.stop.end(), found) ||
           std::any_of(gen.extract_stop.begin(), gen.extract_stop.end(), found);
  };
  const std::vector<model::Generation> gens = model::generate(m.aligned->lm, aligned_prompts, g);
  // Every logit row kept (top-k, hidden states) is finite.
  auto where = [&](size_t r, const study::LoadedModel& model) {
    return "extract: model " + model.name + ", task " + out[r].task + ", example " + std::to_string(out[r].example_id);
  };

  std::vector<std::vector<int32_t>> seq_base;
  model::ScoreOptions sb;
  sb.top_k = o.top_k;
  sb.batch_size = o.batch_size;
  sb.hidden = true;
  for (size_t r = 0; r < out.size(); ++r) {
    ExtractedExample& ex = out[r];
    ex.response_ids = gens[r].tokens;
    ex.finish_reason = gens[r].finish_reason;
    ex.response = m.aligned->tokenizer.decode(gens[r].tokens, true);
    ex.aligned_topk_logits = gens[r].topk_logits;  // [n,k]
    ex.aligned_topk_ids = gens[r].topk_ids;        // [n,k]
    model::require_finite(ex.aligned_topk_logits, {where(r, *m.aligned), "greedy step logits", 0, ex.aligned_topk_ids});
    std::vector<int32_t> b = ex.base_prompt_ids;
    b.insert(b.end(), gens[r].tokens.begin(), gens[r].tokens.end());
    seq_base.push_back(std::move(b));
    // Row t of a scored sequence predicts token t+1: response token j is predicted at prompt_len - 1 + j.
    sb.from.push_back(static_cast<int64_t>(ex.base_prompt_ids.size()) - 1);
  }
  const model::ScoreOutput base = model::score(m.base->lm, seq_base, sb);

  for (size_t r = 0; r < out.size(); ++r) {
    ExtractedExample& ex = out[r];
    const int64_t n = static_cast<int64_t>(ex.response_ids.size());
    ex.base_topk_logits = base.topk_logits[r].narrow(0, 0, n);            // [n,k]
    ex.base_topk_ids = base.topk_ids[r].narrow(0, 0, n);                  // [n,k]
    ex.base_hidden = base.hidden[r].narrow(0, 0, n).to(torch::kFloat32);  // [n,H]
    ex.is_eos = torch::zeros({n}, torch::kBool);                          // [n]
    model::require_finite(ex.base_topk_logits, {where(r, *m.base), "top-k logits", 0, ex.base_topk_ids});
    model::require_finite(ex.base_hidden, {where(r, *m.base), "final hidden state", 0, {}});
    for (int64_t j = 0; j < n; ++j)
      if (m.eos.count(ex.response_ids[static_cast<size_t>(j)])) ex.is_eos[j] = true;
  }
  return out;
}

// The products one example needs at the least (RankStats::product_flops), whole models.
double product_flops(const Models& m, const ExtractedExample& ex) {
  const auto n = static_cast<double>(ex.response_ids.size());
  auto side = [n](const model::ModelConfig& c, size_t prompt) {
    return model::layer_product_flops(c) * (static_cast<double>(prompt) + n - 1) + model::lm_head_flops(c) * n;
  };
  return side(m.aligned->lm.config(), ex.aligned_prompt_ids.size()) +
         side(m.base->lm.config(), ex.base_prompt_ids.size());
}

// ---- Shards and resume -------------------------------------------------------------------------

std::filesystem::path shard_path(const std::filesystem::path& dir, int64_t chunk) {
  char name[32];
  std::snprintf(name, sizeof(name), "chunk-%06lld.h5", static_cast<long long>(chunk));
  return dir / "shards" / name;
}

// Finished shards of this job (rank 0): leftovers of killed writers (.part) are deleted; a shard
// written for other settings stops the run.
std::vector<int64_t> finished_chunks(const std::filesystem::path& dir, int64_t num_chunks,
                                     const std::string& fingerprint) {
  std::vector<int64_t> done;
  const std::regex finished(R"(chunk-(\d{6})\.h5)");
  for (const auto& e : std::filesystem::directory_iterator(dir / "shards")) {
    const std::string name = e.path().filename().string();
    if (e.path().extension() == ".part") {
      std::filesystem::remove(e.path());
      continue;
    }
    std::smatch m;
    if (!std::regex_match(name, m, finished)) continue;
    const int64_t c = std::stoll(m[1]);
    const h5::File f = h5::File::open(e.path());
    const std::string fp = f.has_attr("job_fingerprint") ? f.attr_string("job_fingerprint") : "";
    if (fp != fingerprint || c >= num_chunks)
      throw ConfigError(e.path().string() +
                        ": was written by a run with other models, tasks or extract settings; use another "
                        "run_dir or delete " +
                        (dir / "shards").string());
    done.push_back(c);
  }
  std::sort(done.begin(), done.end());
  return done;
}

// The merged file exists and was made from this job's shards (checked on rank 0).
bool complete_output(const std::filesystem::path& file, const std::string& fingerprint) {
  if (!std::filesystem::exists(file)) return false;
  const h5::File f = h5::File::open(file);
  return f.has_attr("job_fingerprint") && f.attr_string("job_fingerprint") == fingerprint;
}

nlohmann::json model_info(const ModelRef& m) {
  return {{"path", m.path.string()},
          {"template", m.template_name},
          {"dtype", m.dtype},
          {"model_fingerprint", heads::model_fingerprint(m.path)},
          {"tokenizer_sha256", heads::tokenizer_fingerprint(m.path)}};
}

std::string to_json_text(const std::vector<RankStats>& s) {
  nlohmann::json j = nlohmann::json::array();
  for (const auto& r : s)
    j.push_back({{"rank", r.rank},
                 {"chunks", r.chunks},
                 {"examples", r.examples},
                 {"tokens", r.tokens},
                 {"product_flops", r.product_flops},
                 {"busy_s", r.busy_s},
                 {"wall_s", r.wall_s}});
  return j.dump();
}

}  // namespace

int64_t ExtractOptions::max_examples_for(const std::string& task) const {
  auto it = max_examples_by_task.find(task);
  return it != max_examples_by_task.end() ? it->second : max_examples;
}

ExtractOptions ExtractOptions::from_job(const Job& job) {
  const ConfigNode s = job.section("extract");
  ExtractOptions o;
  o.split = s.get<std::string>("split", o.split);
  if (o.split != "train" && o.split != "test") throw ConfigError(s.where("split") + ": expected train or test");
  auto check_count = [&](int64_t n, const std::string& key) {
    if (n < -1 || n == 0) throw ConfigError(s.where(key) + ": expected -1 (all) or a positive count");
  };
  if (s.has("max_examples") && s.yaml()["max_examples"].IsMap()) {
    const ConfigNode per_task = s.child("max_examples");
    for (const auto& task : per_task.keys()) {
      if (std::find(job.tasks().begin(), job.tasks().end(), task) == job.tasks().end())
        throw ConfigError(per_task.where(task) + ": '" + task + "' is not one of the job's tasks");
      o.max_examples_by_task[task] = per_task.get<int64_t>(task);
      check_count(o.max_examples_by_task[task], "max_examples." + task);
    }
  } else {
    o.max_examples = s.get<int64_t>("max_examples", o.max_examples);
    check_count(o.max_examples, "max_examples");
  }
  o.max_new_tokens = s.get<int64_t>("max_new_tokens", o.max_new_tokens);
  if (o.max_new_tokens < 1) throw ConfigError(s.where("max_new_tokens") + ": must be >= 1");
  o.top_k = s.get<int64_t>("top_k", o.top_k);
  if (o.top_k < 1) throw ConfigError(s.where("top_k") + ": must be >= 1");
  o.batch_size = s.get<int64_t>("batch_size", o.batch_size);
  if (o.batch_size < 1) throw ConfigError(s.where("batch_size") + ": must be >= 1");
  o.hidden_dtype = s.get<std::string>("hidden_dtype", o.hidden_dtype);
  if (o.hidden_dtype != "float16" && o.hidden_dtype != "bfloat16")
    throw ConfigError(s.where("hidden_dtype") + ": expected float16 or bfloat16");
  const std::string comp = s.get<std::string>("compression", "gzip");
  const int level = s.get<int>("compression_level", 4);
  if (comp == "lzf")
    throw ConfigError(s.where("compression") +
                      ": lzf needs an HDF5 filter plugin that h5dump and C readers lack; use gzip or none");
  if (comp != "gzip" && comp != "none") throw ConfigError(s.where("compression") + ": expected gzip or none");
  if (level < 1 || level > 9) throw ConfigError(s.where("compression_level") + ": expected 1..9");
  o.gzip_level = comp == "gzip" ? level : 0;
  o.chunk_examples = s.get<int64_t>("chunk_examples", o.chunk_examples);
  if (o.chunk_examples < 1) throw ConfigError(s.where("chunk_examples") + ": must be >= 1");
  o.chunk_rows = s.get<int64_t>("chunk_rows", o.chunk_rows);
  if (o.chunk_rows < 1) throw ConfigError(s.where("chunk_rows") + ": must be >= 1");
  s.finish();
  return o;
}

ExtractSummary run_extract(const Job& job, const study::Study& study, const study::Pair& pair, const dist::Comm& comm) {
  const ExtractOptions o = ExtractOptions::from_job(job);
  const Prompts prompts = load_prompts(job, o);
  const int64_t num_items = static_cast<int64_t>(prompts.items.size());
  const int64_t num_chunks = (num_items + o.chunk_examples - 1) / o.chunk_examples;

  // Tokenizers first: a mismatch stops the run before any weights are read.
  const ModelRef& aligned_ref = job.model(pair.aligned);
  const ModelRef& base_ref = job.model(pair.base);
  const tok::Tokenizer tokenizer = model::load_tokenizer(aligned_ref.path);
  check_same_tokenizer(tokenizer, model::load_tokenizer(base_ref.path), pair);
  if (o.top_k > tokenizer.vocab_size())
    throw ConfigError(job.source() + ": extract.top_k " + std::to_string(o.top_k) + " exceeds the vocabulary (" +
                      std::to_string(tokenizer.vocab_size()) + ")");

  // What determines the data; shards of another fingerprint are never mixed in.
  nlohmann::json tasks_info = nlohmann::json::array();
  for (const auto& t : prompts.tasks)
    tasks_info.push_back({{"name", t.name()}, {"version", t.version()}, {"file", t.source()}});
  const nlohmann::json models = {{"aligned", model_info(aligned_ref)}, {"base", model_info(base_ref)}};
  nlohmann::json defining = {{"models", models},
                             {"tasks", tasks_info},
                             {"data_root", job.data_root().string()},
                             {"seed", job.seed()},
                             {"extract", YAML::Dump(job.section("extract").yaml())},
                             {"num_items", num_items}};
  for (const auto& t : prompts.tasks) defining["task_definitions"].push_back(t.definition_yaml());
  const std::string fingerprint = sha256_hex(defining.dump());

  const std::filesystem::path dir = study.extract_dir(job, pair);
  ExtractSummary summary;
  summary.output = dir / "logits.h5";
  summary.num_items = num_items;
  summary.chunks_total = num_chunks;
  std::string skip_text;
  if (comm.is_root()) {
    std::error_code ec;
    std::filesystem::create_directories(dir / "shards", ec);
    if (ec) throw IoError((dir / "shards").string() + ": cannot create folder: " + ec.message());
    skip_text = nlohmann::json(finished_chunks(dir, num_chunks, fingerprint)).dump();
  }
  const std::vector<int64_t> skip = nlohmann::json::parse(comm.broadcast(skip_text)).get<std::vector<int64_t>>();
  summary.chunks_resumed = static_cast<int64_t>(skip.size());
  // Everything done in an earlier run: nothing to compute (the merged file is rewritten below only
  // when it is missing or belongs to other settings).
  if (static_cast<int64_t>(skip.size()) == num_chunks &&
      comm.broadcast(comm.is_root() && complete_output(summary.output, fingerprint) ? "1" : "0") == "1") {
    if (comm.is_root()) spdlog::info("extract {}: {} is complete, skipped", pair.id(), summary.output.string());
    summary.num_tokens = LogitDataset::open(summary.output).num_tokens();
    return summary;
  }

  at::set_num_threads(comm.threads_per_rank(job.threads()));
  const torch::Device device = study::rank_device(job, comm);
  // Tensor groups of parallel.tensor ranks each hold both models split; the groups share the chunks.
  const dist::ParallelLayout par = dist::ParallelLayout::make(comm, job.tensor_parallel());
  Models m{study::load_model(aligned_ref, device, par.tensor), study::load_model(base_ref, device, par.tensor), {}};
  for (int64_t e : m.aligned->eos_ids) m.eos.insert(e);
  if (m.base->lm.config().vocab_size != m.aligned->lm.config().vocab_size)
    throw ConfigError("pair " + pair.base + " → " + pair.aligned + ": different vocab_size in their configs");

  ShardLayout layout;
  layout.top_k = o.top_k;
  layout.hidden_size = m.base->lm.config().hidden_size;
  layout.hidden_dtype = o.hidden_dtype;
  layout.chunk_rows = o.chunk_rows;
  layout.gzip_level = o.gzip_level;
  const nlohmann::json attrs = {{"tool_version", build::kVersion},
                                {"git_sha", build::kGitSha},
                                {"job_config", job.resolved_yaml()},
                                {"job_fingerprint", fingerprint},
                                {"models", models},
                                {"pair", {{"base", pair.base}, {"aligned", pair.aligned}}},
                                {"tasks", tasks_info},
                                {"tokenizer_sha256", tokenizer.content_hash()},
                                {"vocab_size", static_cast<int64_t>(tokenizer.vocab_size())},
                                {"seed", static_cast<int64_t>(job.seed())},
                                {"max_new_tokens", o.max_new_tokens},
                                {"num_items", num_items},
                                {"chunk_examples", o.chunk_examples}};

  RankStats mine;
  mine.rank = comm.rank();
  install_stop_handlers();
  torch::InferenceMode guard;
  comm.barrier();  // the shard folder exists and leftovers are gone before anyone writes
  const Stopwatch wall;
  {
    dist::WorkQueue queue(par, num_items, o.chunk_examples, skip);
    while (auto chunk = queue.next()) {
      const Stopwatch busy;
      nlohmann::json a = attrs;
      a["chunk_index"] = chunk->index;
      a["item_begin"] = chunk->begin;
      a["item_end"] = chunk->end;
      a["rank"] = comm.rank();
      // The group stops together (its first rank decides), so no rank is left in a collective.
      if (par.tensor.broadcast(static_cast<int64_t>(stop_requested())) != 0)
        throw Interrupted("extract: stopped by a signal on rank " + std::to_string(comm.rank()) +
                          "; finished chunks are kept in " + (dir / "shards").string() +
                          ", re-run the same command to continue");
      // Every rank of a tensor group computes the chunk (the split models need all of them); its
      // first rank writes the shard.
      const std::vector<ExtractedExample> examples = process_chunk(m, prompts, chunk->begin, chunk->end, o);
      for (const auto& ex : examples) {
        mine.tokens += static_cast<int64_t>(ex.response_ids.size());
        mine.product_flops += product_flops(m, ex) / static_cast<double>(par.tensor.size());
      }
      mine.examples += static_cast<int64_t>(examples.size());
      if (par.leader()) {
        ShardWriter writer(shard_path(dir, chunk->index), a, layout);
        writer.append(examples);
        writer.finish();
      }
      ++mine.chunks;
      mine.busy_s += busy.seconds();
    }
  }
  comm.barrier();
  mine.wall_s = wall.seconds();

  const std::vector<std::string> all = comm.gather(to_json_text({mine}));
  if (!comm.is_root()) {
    summary.ranks = {mine};
    return summary;
  }
  for (const auto& s : all) {
    for (const auto& r : nlohmann::json::parse(s)) {
      RankStats st;
      st.rank = r.at("rank");
      st.chunks = r.at("chunks");
      st.examples = r.at("examples");
      st.tokens = r.at("tokens");
      st.product_flops = r.at("product_flops");
      st.busy_s = r.at("busy_s");
      st.wall_s = r.at("wall_s");
      summary.ranks.push_back(st);
    }
  }
  std::vector<std::filesystem::path> shards;
  for (int64_t c = 0; c < num_chunks; ++c) {
    shards.push_back(shard_path(dir, c));
    if (!std::filesystem::exists(shards.back()))
      throw IoError(shards.back().string() + ": shard missing after all ranks finished");
    summary.bytes += static_cast<int64_t>(std::filesystem::file_size(shards.back()));
  }
  merge_shards(shards, summary.output);
  const LogitDataset merged = LogitDataset::open(summary.output);
  if (merged.num_examples() != num_items)
    throw FormatError(summary.output.string() + ": holds " + std::to_string(merged.num_examples()) +
                      " examples, expected " + std::to_string(num_items));
  summary.num_tokens = merged.num_tokens();
  return summary;
}

}  // namespace sf::extract
