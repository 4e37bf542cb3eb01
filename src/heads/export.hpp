#pragma once
// `superficial export-merged`: folds a hidden head into its base model's lm_head, giving a standard
// Hugging Face model folder whose logits equal base logits + head correction.
#include <filesystem>

namespace sf::heads {

// Writes `out` (which must not exist or be empty): the base's config.json with
// tie_word_embeddings = false, every non-weight file of the base copied (tokenizer, generation
// config, ...), and the weights with lm_head.weight = W + ΔW stored as F32 (ΔW is usually far below
// bf16 resolution of W). A single-file base gives one model.safetensors; a sharded base keeps its
// shards (the one holding lm_head.weight rewritten without it), adds lm_head.safetensors and an
// updated index. A tied base is untied: its embeddings stay, lm_head.weight is added.
// ConfigError for bb and bias heads (no lm_head bias in these architectures) and when the head was
// trained on another base (metadata base_model_hash differs from model_fingerprint(base)).
void export_merged(const std::filesystem::path& base, const std::filesystem::path& head_file,
                   const std::filesystem::path& out);

}  // namespace sf::heads
