#pragma once
// Writing logit datasets (results-schema/logits-v1): one shard file per chunk of examples, and the
// merged file that presents all shards as single datasets.
//
// A shard is written to `<name>.part`, one batch of examples at a time (each batch flushed), and
// renamed to its final name only after it is complete and synced, so a file under its final name
// is always whole; a killed writer leaves at most a `.part` file, which resume deletes.
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "extract/logit_dataset.hpp"

namespace sf::extract {

struct ShardLayout {
  int64_t top_k = 0;
  int64_t hidden_size = 0;
  std::string hidden_dtype = "float16";  // float16 | bfloat16
  int64_t chunk_rows = 64;               // token rows per HDF5 chunk
  int gzip_level = 4;                    // 0: no compression
};

class ShardWriter {
 public:
  // `attributes`: root attributes (see h5::write_attrs); schema, schema_version, kind and created
  // are added here. IoError naming the file when it cannot be created.
  ShardWriter(std::filesystem::path final_path, const nlohmann::json& attributes, const ShardLayout& layout);
  ~ShardWriter();  // an unfinished shard is discarded
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;

  // Appends examples (tensors as in ExtractedExample; ShapeError on a k/H mismatch) and flushes.
  void append(const std::vector<ExtractedExample>& batch);
  // Closes, syncs and renames the file into place.
  void finish();
  // Removes the partial file.
  void discard();

  struct Files;

 private:
  std::filesystem::path final_path_;
  std::filesystem::path part_path_;
  ShardLayout layout_;
  std::unique_ptr<Files> files_;
  int64_t tokens_ = 0;
  int64_t aligned_prompt_tokens_ = 0;
  int64_t base_prompt_tokens_ = 0;
};

// Writes `out` (kind=merged): examples/* and prompts/* copied from the shards (which must be in
// item order), tokens/* as virtual datasets over the shards (paths stored relative to `out`'s
// folder, so the folder can move as a whole). Root attributes are the first shard's, minus the
// shard-only ones, plus `extra`. Written as `<out>.part` and renamed.
void merge_shards(const std::vector<std::filesystem::path>& shards, const std::filesystem::path& out,
                  const nlohmann::json& extra = nlohmann::json::object());

}  // namespace sf::extract
