#include "extract/logit_dataset.hpp"

#include <map>

#include "core/error.hpp"
#include "io/h5.hpp"

namespace sf::extract {
namespace {

constexpr int64_t kReadsVersion = 1;

// What this reader needs: dataset → allowed dtypes and the dimension of its rows
// (E examples, N tokens, PA/PB prompt tokens) and of its second dimension (K, H, or none).
struct Need {
  std::vector<std::string> dtypes;
  std::string rows;
  std::string cols;
};

const std::map<std::string, Need>& needs() {
  static const std::map<std::string, Need> n = {{"examples/item", {{"int64"}, "E", ""}},
                                                {"examples/task", {{"string"}, "E", ""}},
                                                {"examples/example_id", {{"int64"}, "E", ""}},
                                                {"examples/prompt", {{"string"}, "E", ""}},
                                                {"examples/response", {{"string"}, "E", ""}},
                                                {"examples/finish_reason", {{"string"}, "E", ""}},
                                                {"examples/token_offset", {{"int64"}, "E", ""}},
                                                {"examples/num_tokens", {{"int64"}, "E", ""}},
                                                {"examples/aligned_prompt_offset", {{"int64"}, "E", ""}},
                                                {"examples/aligned_prompt_length", {{"int64"}, "E", ""}},
                                                {"examples/base_prompt_offset", {{"int64"}, "E", ""}},
                                                {"examples/base_prompt_length", {{"int64"}, "E", ""}},
                                                {"prompts/aligned_ids", {{"int32"}, "PA", ""}},
                                                {"prompts/base_ids", {{"int32"}, "PB", ""}},
                                                {"tokens/item", {{"int64"}, "N", ""}},
                                                {"tokens/position", {{"int32"}, "N", ""}},
                                                {"tokens/token_id", {{"int32"}, "N", ""}},
                                                {"tokens/is_eos", {{"uint8"}, "N", ""}},
                                                {"tokens/aligned_topk_logits", {{"float32"}, "N", "K"}},
                                                {"tokens/aligned_topk_ids", {{"int32"}, "N", "K"}},
                                                {"tokens/base_topk_logits", {{"float32"}, "N", "K"}},
                                                {"tokens/base_topk_ids", {{"int32"}, "N", "K"}},
                                                {"tokens/base_hidden", {{"float16", "bfloat16"}, "N", "H"}}};
  return n;
}

std::vector<int32_t> to_ids(const torch::Tensor& t) {
  const torch::Tensor c = t.to(torch::kInt32).contiguous();
  return std::vector<int32_t>(c.data_ptr<int32_t>(), c.data_ptr<int32_t>() + c.numel());
}

}  // namespace

struct LogitDataset::Impl {
  Impl(std::filesystem::path p, h5::File f) : path(std::move(p)), file(std::move(f)) {}
  std::filesystem::path path;
  h5::File file;
  nlohmann::json attrs;
  std::map<std::string, h5::Dataset> ds;
  int64_t top_k = 0, hidden = 0, num_examples = 0, num_tokens = 0;
  // The example index, in memory.
  std::vector<int64_t> item, example_id, token_offset, length, ap_off, ap_len, bp_off, bp_len;
  std::vector<std::string> task;

  const h5::Dataset& operator[](const std::string& p) const { return ds.at(p); }
  void check_row(int64_t row) const {
    if (row < 0 || row >= num_examples)
      throw ShapeError(path.string() + ": example row " + std::to_string(row) + " out of range (" +
                       std::to_string(num_examples) + " examples)");
  }
};

namespace {

std::vector<int64_t> read_int64(const h5::Dataset& d) {
  const torch::Tensor t = d.read_all().contiguous();
  return std::vector<int64_t>(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel());
}

}  // namespace

LogitDataset LogitDataset::open(const std::filesystem::path& file) {
  auto impl = std::make_shared<Impl>(file, h5::File::open(file));
  Impl& m = *impl;
  const std::string where = file.string();
  if (!m.file.has_attr("schema") || !m.file.has_attr("schema_version"))
    throw FormatError(where + ": not a logit dataset (no schema/schema_version attributes)");
  const std::string schema = m.file.attr_string("schema");
  const int64_t version = m.file.attr_int("schema_version");
  if (schema != "logits")
    throw FormatError(where + ": is a '" + schema + "' file, not a logit dataset (schema 'logits')");
  if (version != kReadsVersion)
    throw FormatError(where + ": schema logits v" + std::to_string(version) + ", this build reads v" +
                      std::to_string(kReadsVersion) +
                      "; re-run `superficial extract` with this build, or read it with the superficial version "
                      "named in its tool_version attribute");
  m.attrs = h5::read_attrs(m.file);
  m.top_k = m.file.attr_int("top_k");
  m.hidden = m.file.attr_int("hidden_size");
  std::map<std::string, int64_t> dims = {{"K", m.top_k}, {"H", m.hidden}};
  for (const auto& [p, need] : needs()) {
    h5::Dataset d = m.file.dataset(p);
    const std::string dt = d.dtype();
    if (std::find(need.dtypes.begin(), need.dtypes.end(), dt) == need.dtypes.end())
      throw FormatError(d.where() + ": dtype " + dt + " unexpected for schema logits v1");
    const std::vector<int64_t> shape = d.shape();
    const size_t rank = need.cols.empty() ? 1 : 2;
    if (shape.size() != rank) throw FormatError(d.where() + ": has " + std::to_string(shape.size()) + " dimensions");
    auto [it, fresh] = dims.emplace(need.rows, shape[0]);
    if (!fresh && it->second != shape[0])
      throw FormatError(d.where() + ": " + std::to_string(shape[0]) + " rows, expected " + std::to_string(it->second));
    if (rank == 2 && shape[1] != dims.at(need.cols))
      throw FormatError(d.where() + ": second dimension " + std::to_string(shape[1]) + ", expected " + need.cols +
                        " = " + std::to_string(dims.at(need.cols)));
    m.ds.emplace(p, std::move(d));
  }
  m.num_examples = dims.at("E");
  m.num_tokens = dims.at("N");
  m.item = read_int64(m["examples/item"]);
  m.example_id = read_int64(m["examples/example_id"]);
  m.token_offset = read_int64(m["examples/token_offset"]);
  m.length = read_int64(m["examples/num_tokens"]);
  m.ap_off = read_int64(m["examples/aligned_prompt_offset"]);
  m.ap_len = read_int64(m["examples/aligned_prompt_length"]);
  m.bp_off = read_int64(m["examples/base_prompt_offset"]);
  m.bp_len = read_int64(m["examples/base_prompt_length"]);
  m.task = m["examples/task"].read_all_strings();
  for (int64_t r = 0; r < m.num_examples; ++r) {
    const size_t i = static_cast<size_t>(r);
    const bool ok = m.length[i] >= 0 && m.token_offset[i] >= 0 && m.token_offset[i] + m.length[i] <= m.num_tokens &&
                    m.ap_off[i] >= 0 && m.ap_len[i] >= 0 && m.ap_off[i] + m.ap_len[i] <= dims.at("PA") &&
                    m.bp_off[i] >= 0 && m.bp_len[i] >= 0 && m.bp_off[i] + m.bp_len[i] <= dims.at("PB");
    if (!ok) throw FormatError(where + ": examples row " + std::to_string(r) + ": offsets/lengths out of range");
  }
  LogitDataset out;
  out.impl_ = std::move(impl);
  return out;
}

int64_t LogitDataset::num_examples() const { return impl_->num_examples; }
int64_t LogitDataset::num_tokens() const { return impl_->num_tokens; }
int64_t LogitDataset::top_k() const { return impl_->top_k; }
int64_t LogitDataset::hidden_size() const { return impl_->hidden; }
const nlohmann::json& LogitDataset::attributes() const { return impl_->attrs; }
const std::filesystem::path& LogitDataset::path() const { return impl_->path; }

int64_t LogitDataset::token_offset(int64_t row) const {
  impl_->check_row(row);
  return impl_->token_offset[static_cast<size_t>(row)];
}

int64_t LogitDataset::example_tokens(int64_t row) const {
  impl_->check_row(row);
  return impl_->length[static_cast<size_t>(row)];
}

TokenRows LogitDataset::tokens(int64_t begin, int64_t count) const {
  const Impl& m = *impl_;
  TokenRows r;
  r.item = m["tokens/item"].read(begin, count);
  r.position = m["tokens/position"].read(begin, count).to(torch::kInt64);
  r.token_id = m["tokens/token_id"].read(begin, count).to(torch::kInt64);
  r.is_eos = m["tokens/is_eos"].read(begin, count).to(torch::kBool);
  r.aligned_topk_logits = m["tokens/aligned_topk_logits"].read(begin, count);
  r.aligned_topk_ids = m["tokens/aligned_topk_ids"].read(begin, count).to(torch::kInt64);
  r.base_topk_logits = m["tokens/base_topk_logits"].read(begin, count);
  r.base_topk_ids = m["tokens/base_topk_ids"].read(begin, count).to(torch::kInt64);
  r.base_hidden = m["tokens/base_hidden"].read(begin, count).to(torch::kFloat32);
  return r;
}

TrainingRows LogitDataset::training_rows(int64_t begin, int64_t count) const {
  const Impl& m = *impl_;
  return {m["tokens/aligned_topk_logits"].read(begin, count), m["tokens/aligned_topk_ids"].read(begin, count),
          m["tokens/base_hidden"].read(begin, count)};
}

const std::string& LogitDataset::example_task(int64_t row) const {
  impl_->check_row(row);
  return impl_->task[static_cast<size_t>(row)];
}

ExtractedExample LogitDataset::example(int64_t row) const {
  const Impl& m = *impl_;
  m.check_row(row);
  const size_t i = static_cast<size_t>(row);
  ExtractedExample ex;
  ex.item = m.item[i];
  ex.example_id = m.example_id[i];
  ex.task = m.task[i];
  ex.prompt = m["examples/prompt"].read_strings(row, 1).at(0);
  ex.response = m["examples/response"].read_strings(row, 1).at(0);
  ex.finish_reason = m["examples/finish_reason"].read_strings(row, 1).at(0);
  ex.aligned_prompt_ids = to_ids(m["prompts/aligned_ids"].read(m.ap_off[i], m.ap_len[i]));
  ex.base_prompt_ids = to_ids(m["prompts/base_ids"].read(m.bp_off[i], m.bp_len[i]));
  TokenRows t = tokens(m.token_offset[i], m.length[i]);
  if (m.length[i] > 0 &&
      ((t.item != ex.item).any().item<bool>() || !t.position.equal(torch::arange(m.length[i], torch::kInt64))))
    throw FormatError(m.path.string() + ": tokens of example row " + std::to_string(row) + " do not belong to item " +
                      std::to_string(ex.item) + " (damaged index or missing shard)");
  ex.response_ids = to_ids(t.token_id);
  ex.aligned_topk_logits = t.aligned_topk_logits;
  ex.aligned_topk_ids = t.aligned_topk_ids;
  ex.base_topk_logits = t.base_topk_logits;
  ex.base_topk_ids = t.base_topk_ids;
  ex.base_hidden = t.base_hidden;
  ex.is_eos = t.is_eos;
  return ex;
}

}  // namespace sf::extract
