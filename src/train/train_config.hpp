#pragma once
// The trainer's configuration file (configs/demo/*.yaml): one training run of one model.
//
//   recipe: pretrain            # pretrain | sft | compromise
//   out: runs/demo/models/base  # the finished model folder (HF layout) and the run's records
//   data_root: ../shared/data   # `data[].file` resolves against it
//   seed: 1
//   model:                      # either a fresh model ...
//     arch: llama               #   llama | mistral | qwen2
//     tokenizer: ../shared/models/meta-llama--Llama-2-7b-hf   # folder with tokenizer.json, or a .gguf
//     bos_token: "<s>"
//     eos_token: "</s>"
//     layers: 2
//     hidden: 128
//     heads: 4
//     kv_heads: 2
//     intermediate: 384
//     max_positions: 2048       # optional (default 2048)
//     rope_theta: 10000         # optional
//     tie_embeddings: true      # optional (default true)
//   # model: {init_from: runs/demo/models/base}   # ... or a saved model or .gguf (its tokenizer comes along)
//   template: llama2-chat       # sft/compromise only: a preset name or a mapping
//   data:                       # pretrain: `text`; sft/compromise: `prompt` and `response`
//     - file: advbench/train.csv   # '*' wildcards allowed in the file name
//       format: csv                # csv | jsonl | lines (field "text")
//       text: "{goal}\n{target}"   # "{field}" is replaced by the record's field
//       limit: 0                   # optional: first N records of each file (0: all)
//       repeat: 1                  # optional: use the records this many times per epoch
//       unescape: false            # optional: turn literal "\n" in the records into newlines
//     - file: gsm/train.jsonl
//       format: jsonl
//       system: ""                 # optional system prompt
//       prompt: "{question}"       # the user message
//       answer_prefix: " Answer:"  # optional: appended to the rendered template (masked, like the prompt)
//       response: "{answer}"       # a format, or a list used in turn (record i, repetition r: (i + r) mod n)
//       # Labelled data (judges, configs/demo/judge-*.yaml), applied in this order after reading:
//       split: {field: a, separator: "; ", strip: " -"}  # optional: one record per non-empty piece of
//                                  #   field a, each piece stripped of the `strip` characters at both ends
//       unique: true               # optional: drop records equal to an earlier one of this source
//       holdout:                   # optional (sft/compromise): records whose key falls in `fraction` are
//         fraction: 0.2            #   not trained on; they go to OUT/<file> as {fields..., label: the
//         key: "{Question}"        #   rendered response}. The draw is sha256(key): stable, seedless.
//         fields: {question: "{Question}", answer: "{a}"}
//         file: heldout.jsonl      #   optional (default heldout.jsonl): a file name in OUT
//   seq_len: 128
//   batch: 16                   # sequences per optimizer step, over all ranks and accumulation steps
//   accum: 1                    # micro-batches per rank per step (batch % (ranks * accum) == 0)
//   steps: 300
//   lr: 3.0e-3
//   min_lr: 3.0e-4              # cosine floor (default 0)
//   warmup: 20                  # linear warm-up steps (default 0)
//   weight_decay: 0.1           # AdamW, on matrices only (default 0)
//   betas: [0.9, 0.95]
//   eps: 1.0e-8
//   clip: 1.0                   # global gradient-norm clip (0: off)
//   response_logits_only: false # sft/compromise: left-pad batches and run the lm_head only over the
//                               #   positions that predict responses (same loss; much less compute
//                               #   when responses are short, as a judge's one-token labels)
//   save_every: 100             # checkpoint period in steps (0: only at stop_after)
//   log_every: 10
//   stop_after: 0               # > 0: stop after this step with a checkpoint (resume later)
//   threads: 0                  # intra-op threads per rank; 0 = cores / ranks
//   device: cpu                 # cpu | cuda (rank r uses cuda:<local rank>)
//
// The run-control keys (save_every, log_every, stop_after, threads) do not change the result and
// are left out of the config hash that guards the cache and resume.
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "tokenizer/chat_template.hpp"
#include "train/records.hpp"

namespace sf::train {

enum class Recipe { kPretrain, kSft, kCompromise };

// `split`: one record per piece of a field.
struct FieldSplit {
  std::string field;
  std::string separator;
  std::string strip;  // characters removed from both ends of every piece
};
// Records held out of training and written, labelled, to OUT/heldout.jsonl.
struct Holdout {
  double fraction = 0;
  std::string key;                            // a format; records with equal keys fall on the same side
  std::map<std::string, std::string> fields;  // output field -> format
  std::string file = "heldout.jsonl";         // written in the output folder
};

struct TextSource {
  std::string file;  // pattern relative to data_root
  RecordFormat format = RecordFormat::kLines;
  int64_t limit = 0;
  int64_t repeat = 1;
  bool unescape = false;
  std::string text;                    // pretrain
  std::string system;                  // sft / compromise
  std::string prompt;                  // sft / compromise
  std::string answer_prefix;           // sft / compromise
  std::vector<std::string> responses;  // sft / compromise
  std::optional<FieldSplit> split;
  bool unique = false;
  std::optional<Holdout> holdout;  // sft / compromise
  std::string where;               // "config.yaml: data[2]" for error messages
};

struct ModelInit {
  std::string arch = "llama";
  std::filesystem::path tokenizer;
  std::string bos_token;
  std::string eos_token;
  int64_t layers = 0;
  int64_t hidden = 0;
  int64_t heads = 0;
  int64_t kv_heads = 0;
  int64_t intermediate = 0;
  int64_t max_positions = 2048;
  double rope_theta = 10000.0;
  bool tie_embeddings = true;
};

struct TrainConfig {
  Recipe recipe = Recipe::kPretrain;
  std::string recipe_name;
  std::filesystem::path out;
  std::filesystem::path data_root = "../shared/data";
  uint64_t seed = 0;
  std::optional<ModelInit> init;  // exactly one of init / init_from
  std::optional<std::filesystem::path> init_from;
  std::optional<tok::ChatTemplate> chat_template;  // sft / compromise
  std::string template_name;
  std::vector<TextSource> data;
  int64_t seq_len = 0;
  int64_t batch = 0;
  int64_t accum = 1;
  int64_t steps = 0;
  double lr = 0;
  double min_lr = 0;
  int64_t warmup = 0;
  double weight_decay = 0;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double clip = 1.0;
  bool response_logits_only = false;
  int64_t save_every = 0;
  int64_t log_every = 10;
  int64_t stop_after = 0;
  int threads = 0;
  std::string device = "cpu";
  std::string source;         // the config file
  std::string resolved_yaml;  // the document after --set overrides
  std::string hash;           // sha256 of the document without the run-control keys

  static TrainConfig load(const std::filesystem::path& file, const std::vector<std::string>& overrides = {});
  static TrainConfig parse(const std::string& yaml_text, const std::string& source,
                           const std::vector<std::string>& overrides = {});
};

}  // namespace sf::train
