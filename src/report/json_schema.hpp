#pragma once
// A small JSON Schema checker for the project's own JSON outputs (results-schema/summary-v1.json).
// Supported keywords: type (a name or a list; "integer" and "number" as in JSON Schema), enum,
// const, required, properties, additionalProperties (false or a schema), items, minItems,
// minimum, maximum, $ref to "#/definitions/NAME". Any other keyword is a FormatError, so a schema
// never silently checks less than it says.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace sf::report {

// Every problem found, one line each ("$.tasks[0].metric: expected string"); empty when valid.
std::vector<std::string> check_json(const nlohmann::json& doc, const nlohmann::json& schema);

}  // namespace sf::report
