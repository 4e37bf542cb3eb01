#include "extract/shard_writer.hpp"

#include <ctime>
#include <map>

#include "core/atomic_file.hpp"
#include "core/clock.hpp"
#include "core/error.hpp"
#include "io/h5.hpp"

namespace sf::extract {
namespace {

constexpr int64_t kExampleChunkRows = 256;
constexpr const char* kSchema = "logits";
constexpr int64_t kSchemaVersion = 1;

// Datasets of one example row each, with their types.
const std::vector<std::pair<std::string, std::string>> kExampleDatasets = {{"item", "int64"},
                                                                           {"task", "string"},
                                                                           {"example_id", "int64"},
                                                                           {"prompt", "string"},
                                                                           {"response", "string"},
                                                                           {"finish_reason", "string"},
                                                                           {"token_offset", "int64"},
                                                                           {"num_tokens", "int64"},
                                                                           {"aligned_prompt_offset", "int64"},
                                                                           {"aligned_prompt_length", "int64"},
                                                                           {"base_prompt_offset", "int64"},
                                                                           {"base_prompt_length", "int64"}};

const std::vector<std::string> kShardOnlyAttributes = {"chunk_index", "item_begin", "item_end",
                                                       "rank",        "kind",       "created"};

torch::Tensor ids_of(const std::vector<int32_t>& v) {
  return torch::from_blob(const_cast<int32_t*>(v.data()), {static_cast<int64_t>(v.size())}, torch::kInt32).clone();
}

torch::Tensor scalar_rows(const std::vector<int64_t>& v) { return torch::tensor(v, torch::kInt64); }

}  // namespace

struct ShardWriter::Files {
  h5::File file;
  std::map<std::string, h5::Dataset> ds;  // by path: examples/item, tokens/base_hidden, ...
  const h5::Dataset& operator[](const std::string& path) const { return ds.at(path); }
};

ShardWriter::ShardWriter(std::filesystem::path final_path, const nlohmann::json& attributes, const ShardLayout& layout)
    : final_path_(std::move(final_path)), part_path_(final_path_.string() + ".part"), layout_(layout) {
  if (layout.hidden_dtype != "float16" && layout.hidden_dtype != "bfloat16")
    throw ConfigError(final_path_.string() + ": hidden dtype '" + layout.hidden_dtype +
                      "' unsupported (float16 or bfloat16)");
  files_ = std::make_unique<Files>(Files{h5::File::create(part_path_), {}});
  const h5::File& f = files_->file;
  nlohmann::json attrs = attributes;
  attrs["schema"] = kSchema;
  attrs["schema_version"] = kSchemaVersion;
  attrs["kind"] = "shard";
  attrs["created"] = utc_now_iso8601();
  attrs["top_k"] = layout.top_k;
  attrs["hidden_size"] = layout.hidden_size;
  attrs["hidden_dtype"] = layout.hidden_dtype;
  h5::write_attrs(f, attrs);

  const int gz = layout.gzip_level;
  const h5::Group examples = f.create_group("examples");
  for (const auto& [name, dtype] : kExampleDatasets)
    files_->ds.emplace("examples/" + name, examples.create_dataset(name, {dtype, {}, kExampleChunkRows, gz}));
  const h5::Group prompts = f.create_group("prompts");
  for (const char* name : {"aligned_ids", "base_ids"})
    files_->ds.emplace(std::string("prompts/") + name, prompts.create_dataset(name, {"int32", {}, 4096, gz}));
  const h5::Group tokens = f.create_group("tokens");
  const int64_t rows = layout.chunk_rows, k = layout.top_k, h = layout.hidden_size;
  const std::vector<std::pair<std::string, h5::Layout>> token_sets = {
      {"item", {"int64", {}, 4096, gz}},
      {"position", {"int32", {}, 4096, gz}},
      {"token_id", {"int32", {}, 4096, gz}},
      {"is_eos", {"uint8", {}, 4096, gz}},
      {"aligned_topk_logits", {"float32", {k}, rows, gz}},
      {"aligned_topk_ids", {"int32", {k}, rows, gz}},
      {"base_topk_logits", {"float32", {k}, rows, gz}},
      {"base_topk_ids", {"int32", {k}, rows, gz}},
      {"base_hidden", {layout.hidden_dtype, {h}, rows, gz}}};
  for (const auto& [name, l] : token_sets) files_->ds.emplace("tokens/" + name, tokens.create_dataset(name, l));
}

ShardWriter::~ShardWriter() {
  if (files_) discard();
}

void ShardWriter::append(const std::vector<ExtractedExample>& batch) {
  if (!files_) throw IoError(part_path_.string() + ": append after finish/discard");
  const Files& d = *files_;
  const torch::Dtype hidden_type = layout_.hidden_dtype == "float16" ? torch::kFloat16 : torch::kBFloat16;
  std::vector<int64_t> item, example_id, token_offset, num_tokens, ap_off, ap_len, bp_off, bp_len;
  std::vector<std::string> task, prompt, response, finish;
  std::vector<torch::Tensor> aligned_ids, base_ids, t_item, t_pos, t_tok, t_eos, al, ai, bl, bi, bh;
  for (const auto& ex : batch) {
    const int64_t n = static_cast<int64_t>(ex.response_ids.size());
    const std::string what = part_path_.string() + ": example " + std::to_string(ex.item);
    auto expect = [&](const torch::Tensor& t, std::vector<int64_t> shape, const char* name) {
      if (!t.defined() || t.sizes() != c10::IntArrayRef(shape))
        throw ShapeError(what + ": " + name + " has shape " + (t.defined() ? c10::str(t.sizes()) : "undefined") +
                         ", expected " + c10::str(c10::IntArrayRef(shape)));
    };
    expect(ex.aligned_topk_logits, {n, layout_.top_k}, "aligned_topk_logits");
    expect(ex.aligned_topk_ids, {n, layout_.top_k}, "aligned_topk_ids");
    expect(ex.base_topk_logits, {n, layout_.top_k}, "base_topk_logits");
    expect(ex.base_topk_ids, {n, layout_.top_k}, "base_topk_ids");
    expect(ex.base_hidden, {n, layout_.hidden_size}, "base_hidden");
    expect(ex.is_eos, {n}, "is_eos");
    item.push_back(ex.item);
    example_id.push_back(ex.example_id);
    task.push_back(ex.task);
    prompt.push_back(ex.prompt);
    response.push_back(ex.response);
    finish.push_back(ex.finish_reason);
    token_offset.push_back(tokens_);
    num_tokens.push_back(n);
    ap_off.push_back(aligned_prompt_tokens_);
    ap_len.push_back(static_cast<int64_t>(ex.aligned_prompt_ids.size()));
    bp_off.push_back(base_prompt_tokens_);
    bp_len.push_back(static_cast<int64_t>(ex.base_prompt_ids.size()));
    tokens_ += n;
    aligned_prompt_tokens_ += ap_len.back();
    base_prompt_tokens_ += bp_len.back();
    aligned_ids.push_back(ids_of(ex.aligned_prompt_ids));
    base_ids.push_back(ids_of(ex.base_prompt_ids));
    t_item.push_back(torch::full({n}, ex.item, torch::kInt64));
    t_pos.push_back(torch::arange(n, torch::kInt32));
    t_tok.push_back(ids_of(ex.response_ids));
    t_eos.push_back(ex.is_eos.to(torch::kUInt8));
    al.push_back(ex.aligned_topk_logits.to(torch::kCPU, torch::kFloat32));
    ai.push_back(ex.aligned_topk_ids.to(torch::kCPU, torch::kInt32));
    bl.push_back(ex.base_topk_logits.to(torch::kCPU, torch::kFloat32));
    bi.push_back(ex.base_topk_ids.to(torch::kCPU, torch::kInt32));
    bh.push_back(ex.base_hidden.to(torch::kCPU, hidden_type));
  }
  if (batch.empty()) return;
  d["examples/item"].append(scalar_rows(item));
  d["examples/task"].append_strings(task);
  d["examples/example_id"].append(scalar_rows(example_id));
  d["examples/prompt"].append_strings(prompt);
  d["examples/response"].append_strings(response);
  d["examples/finish_reason"].append_strings(finish);
  d["examples/token_offset"].append(scalar_rows(token_offset));
  d["examples/num_tokens"].append(scalar_rows(num_tokens));
  d["examples/aligned_prompt_offset"].append(scalar_rows(ap_off));
  d["examples/aligned_prompt_length"].append(scalar_rows(ap_len));
  d["examples/base_prompt_offset"].append(scalar_rows(bp_off));
  d["examples/base_prompt_length"].append(scalar_rows(bp_len));
  d["prompts/aligned_ids"].append(torch::cat(aligned_ids));
  d["prompts/base_ids"].append(torch::cat(base_ids));
  d["tokens/item"].append(torch::cat(t_item));
  d["tokens/position"].append(torch::cat(t_pos));
  d["tokens/token_id"].append(torch::cat(t_tok));
  d["tokens/is_eos"].append(torch::cat(t_eos));
  d["tokens/aligned_topk_logits"].append(torch::cat(al));
  d["tokens/aligned_topk_ids"].append(torch::cat(ai));
  d["tokens/base_topk_logits"].append(torch::cat(bl));
  d["tokens/base_topk_ids"].append(torch::cat(bi));
  d["tokens/base_hidden"].append(torch::cat(bh));
  d.file.flush();
}

void ShardWriter::finish() {
  if (!files_) throw IoError(part_path_.string() + ": finish after discard");
  files_->ds.clear();
  files_->file.close();
  files_.reset();
  commit_file(part_path_, final_path_);
}

void ShardWriter::discard() {
  files_.reset();  // closing may fail on a full disk; the file is removed either way
  std::error_code ec;
  std::filesystem::remove(part_path_, ec);
}

// ---- Merging -----------------------------------------------------------------------------------

void merge_shards(const std::vector<std::filesystem::path>& shards, const std::filesystem::path& out,
                  const nlohmann::json& extra) {
  if (shards.empty()) throw ShapeError(out.string() + ": no shards to merge");
  const std::filesystem::path part = out.string() + ".part";
  nlohmann::json attrs;
  std::map<std::string, std::vector<torch::Tensor>> numeric;
  std::map<std::string, std::vector<std::string>> strings;
  std::map<std::string, std::vector<h5::VirtualSource>> sources;
  std::map<std::string, std::pair<std::string, std::vector<int64_t>>> token_types;  // dtype, row shape
  int64_t token_base = 0, ap_base = 0, bp_base = 0, last_item = -1;
  for (const auto& shard : shards) {
    const h5::File f = h5::File::open(shard);
    if (attrs.is_null()) {
      attrs = h5::read_attrs(f);
      for (const auto& k : kShardOnlyAttributes) attrs.erase(k);
    }
    const h5::Group ex = f.group("examples");
    for (const auto& [name, dtype] : kExampleDatasets) {
      if (dtype == "string") {
        auto v = ex.dataset(name).read_all_strings();
        auto& dst = strings[name];
        dst.insert(dst.end(), v.begin(), v.end());
        continue;
      }
      torch::Tensor t = ex.dataset(name).read_all();
      if (name == "token_offset") t = t + token_base;
      if (name == "aligned_prompt_offset") t = t + ap_base;
      if (name == "base_prompt_offset") t = t + bp_base;
      numeric[name].push_back(t);
    }
    const torch::Tensor items = numeric["item"].back();
    if (items.numel() > 0 && (items[0].item<int64_t>() <= last_item || (items.diff() <= 0).any().item<bool>()))
      throw FormatError(shard.string() + ": items out of order for merging");
    if (items.numel() > 0) last_item = items[-1].item<int64_t>();
    const torch::Tensor ap = f.dataset("prompts/aligned_ids").read_all();
    const torch::Tensor bp = f.dataset("prompts/base_ids").read_all();
    numeric["prompts/aligned_ids"].push_back(ap);
    numeric["prompts/base_ids"].push_back(bp);
    ap_base += ap.size(0);
    bp_base += bp.size(0);
    const h5::Group tokens = f.group("tokens");
    const std::string rel = std::filesystem::relative(shard, out.parent_path()).string();
    int64_t rows = -1;
    for (const auto& name : tokens.members()) {
      const h5::Dataset d = tokens.dataset(name);
      const std::vector<int64_t> shape = d.shape();
      if (rows >= 0 && shape[0] != rows) throw FormatError(d.where() + ": row count differs from the other tokens/*");
      rows = shape[0];
      const std::vector<int64_t> row_shape(shape.begin() + 1, shape.end());
      auto [it, fresh] = token_types.emplace(name, std::make_pair(d.dtype(), row_shape));
      if (!fresh && it->second != std::make_pair(d.dtype(), row_shape))
        throw FormatError(d.where() + ": type or shape differs from the first shard's");
      sources[name].push_back({rel, "tokens/" + name, shape[0]});
    }
    token_base += std::max<int64_t>(rows, 0);
  }

  {
    h5::File f = h5::File::create(part);
    attrs.update(extra);
    attrs["kind"] = "merged";
    attrs["created"] = utc_now_iso8601();
    attrs["num_shards"] = static_cast<int64_t>(shards.size());
    h5::write_attrs(f, attrs);
    {  // groups close before the file so that close errors surface in f.close()
      const h5::Group ex = f.create_group("examples");
      for (const auto& [name, dtype] : kExampleDatasets) {
        const h5::Layout l{dtype, {}, kExampleChunkRows, 4};
        if (dtype == "string") {
          ex.write_strings(name, strings[name], l);
        } else {
          ex.write_dataset(name, torch::cat(numeric[name]), l);
        }
      }
      const h5::Group prompts = f.create_group("prompts");
      prompts.write_dataset("aligned_ids", torch::cat(numeric["prompts/aligned_ids"]), {"int32", {}, 4096, 4});
      prompts.write_dataset("base_ids", torch::cat(numeric["prompts/base_ids"]), {"int32", {}, 4096, 4});
      const h5::Group tokens = f.create_group("tokens");
      for (const auto& [name, type] : token_types) tokens.create_virtual(name, type.first, type.second, sources[name]);
    }
    f.close();
  }
  commit_file(part, out);
}

}  // namespace sf::extract
