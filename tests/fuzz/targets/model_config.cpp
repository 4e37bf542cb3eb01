// config.json of a model folder: every key, type and range check of model::ModelConfig.
#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "fuzz/targets/targets.hpp"
#include "model/config.hpp"

namespace sf::fuzz {

void model_config(const uint8_t* data, size_t size) {
  const nlohmann::json j = nlohmann::json::parse(data, data + size, nullptr, false);
  if (j.is_discarded()) return;  // not JSON: read_json_file refuses it before the config sees it
  const model::ModelConfig c = model::ModelConfig::from_json(j, "fuzz/config.json");
  (void)c.to_json().dump();
}

}  // namespace sf::fuzz
