#include "train/dataset.hpp"

#include <algorithm>
#include <random>
#include <set>

#include "core/error.hpp"
#include "core/hash.hpp"
#include "core/text.hpp"
#include "eval/task.hpp"

namespace sf::train {
namespace {

struct SourceRecords {
  std::vector<Record> records;
  std::string name;
};

const std::string& field_of(const Record& r, const std::string& field, const std::string& where) {
  auto it = r.find(field);
  if (it == r.end()) throw ConfigError(where + ": the records have no field '" + field + "'");
  return it->second;
}

SourceRecords read_source(const TextSource& s, const std::filesystem::path& data_root) {
  SourceRecords out;
  out.name = s.where + " " + s.file;
  for (const auto& file : eval::match_files(data_root, s.file)) {
    auto recs = read_records(file, s.format);
    if (s.limit > 0 && static_cast<int64_t>(recs.size()) > s.limit) recs.resize(static_cast<size_t>(s.limit));
    for (auto& r : recs) {
      if (s.unescape) {
        for (auto& [k, v] : r) v = unescape_newlines(v);
      }
      out.records.push_back(std::move(r));
    }
  }
  if (s.split) {
    std::vector<Record> pieces;
    for (const auto& r : out.records) {
      for (auto& piece :
           split_trimmed(field_of(r, s.split->field, s.where + ".split.field"), s.split->separator, s.split->strip)) {
        Record copy = r;
        copy[s.split->field] = std::move(piece);
        pieces.push_back(std::move(copy));
      }
    }
    out.records = std::move(pieces);
  }
  if (s.unique) {
    std::set<Record> seen;
    std::vector<Record> kept;
    for (auto& r : out.records) {
      if (seen.insert(r).second) kept.push_back(std::move(r));
    }
    out.records = std::move(kept);
  }
  return out;
}

}  // namespace

double holdout_draw(const std::string& key) {
  const std::string h = sha256_hex(key);
  return static_cast<double>(std::stoull(h.substr(0, 13), nullptr, 16)) / static_cast<double>(uint64_t{1} << 52);
}

Sequence make_sft_sequence(const std::vector<int32_t>& prompt_ids, const std::vector<int32_t>& response_ids,
                           int32_t eos_id, int64_t seq_len) {
  Sequence s;
  s.ids = prompt_ids;
  s.labels.assign(prompt_ids.size(), kIgnoreLabel);
  for (int32_t id : response_ids) {
    s.ids.push_back(id);
    s.labels.push_back(id);
  }
  s.ids.push_back(eos_id);
  s.labels.push_back(eos_id);
  if (static_cast<int64_t>(s.ids.size()) > seq_len) {
    s.ids.resize(static_cast<size_t>(seq_len));
    s.labels.resize(static_cast<size_t>(seq_len));
  }
  return s;
}

std::vector<Sequence> pack_documents(const std::vector<std::vector<int32_t>>& documents, int64_t seq_len) {
  std::vector<Sequence> rows;
  Sequence cur;
  for (const auto& doc : documents) {
    for (int32_t id : doc) {
      cur.ids.push_back(id);
      cur.labels.push_back(id);
      if (static_cast<int64_t>(cur.ids.size()) == seq_len) {
        rows.push_back(std::move(cur));
        cur = Sequence{};
      }
    }
  }
  return rows;
}

BuiltRows build_rows(const TrainConfig& config, const tok::Tokenizer& tokenizer, int32_t eos_id) {
  BuiltRows out;
  if (config.recipe == Recipe::kPretrain) {
    std::vector<std::string> texts;
    for (const auto& s : config.data) {
      const auto src = read_source(s, config.data_root);
      for (int64_t r = 0; r < s.repeat; ++r) {
        for (const auto& rec : src.records) texts.push_back(render_format(s.text, rec, s.where + ".text"));
      }
      out.records_per_source[src.name] = static_cast<int64_t>(src.records.size()) * s.repeat;
    }
    std::vector<std::vector<int32_t>> docs;
    docs.reserve(texts.size());
    for (int64_t i : seeded_permutation(static_cast<int64_t>(texts.size()), config.seed)) {
      auto ids = tokenizer.encode(texts[static_cast<size_t>(i)], /*add_special=*/true);
      ids.push_back(eos_id);
      docs.push_back(std::move(ids));
    }
    out.rows = pack_documents(docs, config.seq_len);
  } else {
    const tok::ChatTemplate& tmpl = *config.chat_template;
    for (const auto& s : config.data) {
      const auto src = read_source(s, config.data_root);
      const int64_t n_resp = static_cast<int64_t>(s.responses.size());
      std::vector<bool> held(src.records.size(), false);
      if (s.holdout) {
        for (size_t i = 0; i < src.records.size(); ++i) {
          const auto& rec = src.records[i];
          if (holdout_draw(render_format(s.holdout->key, rec, s.where + ".holdout.key")) >= s.holdout->fraction)
            continue;
          held[i] = true;
          Record row;
          for (const auto& [name, format] : s.holdout->fields)
            row[name] = render_format(format, rec, s.where + ".holdout.fields." + name);
          row["label"] = render_format(s.responses[i % s.responses.size()], rec, s.where + ".response");
          out.heldout[s.holdout->file].push_back(std::move(row));
        }
      }
      int64_t trained = 0;
      for (int64_t r = 0; r < s.repeat; ++r) {
        for (size_t i = 0; i < src.records.size(); ++i) {
          if (held[i]) continue;
          if (r == 0) ++trained;
          const auto& rec = src.records[i];
          const auto prompt = tmpl.prompt(render_format(s.prompt, rec, s.where + ".prompt"),
                                          render_format(s.system, rec, s.where + ".system"));
          const auto& resp_fmt = s.responses[static_cast<size_t>((static_cast<int64_t>(i) + r) % n_resp)];
          const auto prompt_ids = tokenizer.encode(
              prompt.text + render_format(s.answer_prefix, rec, s.where + ".answer_prefix"), prompt.add_special_tokens);
          if (static_cast<int64_t>(prompt_ids.size()) >= config.seq_len) {
            ++out.skipped;
            continue;
          }
          const auto response_ids = tokenizer.encode(render_format(resp_fmt, rec, s.where + ".response"), false);
          out.rows.push_back(make_sft_sequence(prompt_ids, response_ids, eos_id, config.seq_len));
        }
      }
      out.records_per_source[src.name] = trained * s.repeat;
    }
  }
  for (const auto& r : out.rows) out.tokens += static_cast<int64_t>(r.ids.size());
  if (out.rows.empty()) throw ConfigError(config.source + ": data: the sources give no training row of seq_len");
  return out;
}

Batch collate(const std::vector<const Sequence*>& rows, int32_t pad_id, bool left_pad) {
  if (rows.empty()) throw ShapeError("collate: empty batch");
  size_t T = 0;
  for (const auto* r : rows) T = std::max(T, r->ids.size());
  const auto B = static_cast<int64_t>(rows.size());
  Batch b;
  b.ids = torch::full({B, static_cast<int64_t>(T)}, static_cast<int64_t>(pad_id), torch::kInt64);
  b.mask = torch::zeros({B, static_cast<int64_t>(T)}, torch::kInt64);
  b.labels = torch::full({B, static_cast<int64_t>(T)}, kIgnoreLabel, torch::kInt64);
  auto ids = b.ids.accessor<int64_t, 2>();
  auto mask = b.mask.accessor<int64_t, 2>();
  auto labels = b.labels.accessor<int64_t, 2>();
  for (int64_t i = 0; i < B; ++i) {
    const Sequence& s = *rows[static_cast<size_t>(i)];
    const auto off = static_cast<int64_t>(left_pad ? T - s.ids.size() : 0);
    for (size_t t = 0; t < s.ids.size(); ++t) {
      ids[i][off + static_cast<int64_t>(t)] = s.ids[t];
      mask[i][off + static_cast<int64_t>(t)] = 1;
      labels[i][off + static_cast<int64_t>(t)] = s.labels[t];
    }
  }
  return b;
}

std::vector<int64_t> seeded_permutation(int64_t n, uint64_t seed) {
  std::vector<int64_t> p(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) p[static_cast<size_t>(i)] = i;
  std::mt19937_64 rng(seed);
  for (int64_t i = n - 1; i > 0; --i) {
    // Modulo draw: a negligible bias, and identical everywhere (std::uniform_int_distribution is not).
    const auto j = static_cast<int64_t>(rng() % static_cast<uint64_t>(i + 1));
    std::swap(p[static_cast<size_t>(i)], p[static_cast<size_t>(j)]);
  }
  return p;
}

RowSampler::RowSampler(int64_t num_rows, uint64_t seed) : num_rows_(num_rows), seed_(seed) {
  if (num_rows <= 0) throw ShapeError("RowSampler: no rows");
}

const std::vector<int64_t>& RowSampler::permutation(int64_t epoch) const {
  if (epoch != cached_epoch_) {
    // A distinct, reproducible order per epoch.
    cached_ = seeded_permutation(num_rows_, seed_ * 1000003ULL + static_cast<uint64_t>(epoch) + 1);
    cached_epoch_ = epoch;
  }
  return cached_;
}

std::vector<int64_t> RowSampler::batch(int64_t step, int64_t batch_size) const {
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(batch_size));
  for (int64_t i = 0; i < batch_size; ++i) {
    const int64_t p = step * batch_size + i;
    out.push_back(permutation(p / num_rows_)[static_cast<size_t>(p % num_rows_)]);
  }
  return out;
}

}  // namespace sf::train
