#include "report/json_schema.hpp"

#include <set>

#include "core/error.hpp"

namespace sf::report {
namespace {

const std::set<std::string> kKeywords = {"$schema",    "$id",      "title",    "description", "type",
                                         "enum",       "const",    "required", "properties",  "additionalProperties",
                                         "items",      "minItems", "minimum",  "maximum",     "$ref",
                                         "definitions"};

bool has_type(const nlohmann::json& v, const std::string& type) {
  if (type == "object") return v.is_object();
  if (type == "array") return v.is_array();
  if (type == "string") return v.is_string();
  if (type == "boolean") return v.is_boolean();
  if (type == "null") return v.is_null();
  if (type == "integer")
    return v.is_number_integer() ||
           (v.is_number_float() && v.get<double>() == static_cast<double>(static_cast<int64_t>(v.get<double>())));
  if (type == "number") return v.is_number();
  throw FormatError("json schema: unknown type '" + type + "'");
}

class Checker {
 public:
  explicit Checker(const nlohmann::json& root) : root_(root) {}

  void check(const nlohmann::json& v, const nlohmann::json& s, const std::string& at) {
    if (!s.is_object()) throw FormatError("json schema: schema at " + at + " is not an object");
    for (auto it = s.begin(); it != s.end(); ++it) {
      if (!kKeywords.count(it.key())) throw FormatError("json schema: unsupported keyword '" + it.key() + "'");
    }
    if (s.contains("$ref")) {
      const std::string ref = s["$ref"].get<std::string>();
      const std::string prefix = "#/definitions/";
      if (ref.rfind(prefix, 0) != 0 || !root_.contains("definitions") ||
          !root_["definitions"].contains(ref.substr(prefix.size())))
        throw FormatError("json schema: unresolvable $ref '" + ref + "'");
      check(v, root_["definitions"][ref.substr(prefix.size())], at);
      return;
    }
    if (s.contains("type")) {
      const auto& t = s["type"];
      bool ok = false;
      std::string names;
      for (const auto& name : t.is_array() ? t : nlohmann::json::array({t})) {
        ok = ok || has_type(v, name.get<std::string>());
        names += (names.empty() ? "" : " or ") + name.get<std::string>();
      }
      if (!ok) {
        problems_.push_back(at + ": expected " + names + ", got " + v.type_name());
        return;
      }
    }
    if (s.contains("enum")) {
      bool found = false;
      for (const auto& e : s["enum"]) found = found || e == v;
      if (!found) problems_.push_back(at + ": value " + v.dump() + " is not one of " + s["enum"].dump());
    }
    if (s.contains("const") && s["const"] != v) problems_.push_back(at + ": expected " + s["const"].dump());
    if (v.is_number()) {
      if (s.contains("minimum") && v.get<double>() < s["minimum"].get<double>())
        problems_.push_back(at + ": " + v.dump() + " is below the minimum " + s["minimum"].dump());
      if (s.contains("maximum") && v.get<double>() > s["maximum"].get<double>())
        problems_.push_back(at + ": " + v.dump() + " is above the maximum " + s["maximum"].dump());
    }
    if (v.is_object()) {
      for (const auto& r : s.value("required", nlohmann::json::array())) {
        if (!v.contains(r.get<std::string>()))
          problems_.push_back(at + ": required key '" + r.get<std::string>() + "' is missing");
      }
      const auto props = s.value("properties", nlohmann::json::object());
      for (auto it = v.begin(); it != v.end(); ++it) {
        const std::string child = at + "." + it.key();
        if (props.contains(it.key())) {
          check(it.value(), props[it.key()], child);
        } else if (s.contains("additionalProperties")) {
          const auto& ap = s["additionalProperties"];
          if (ap.is_boolean()) {
            if (!ap.get<bool>()) problems_.push_back(child + ": unknown key");
          } else {
            check(it.value(), ap, child);
          }
        }
      }
    }
    if (v.is_array()) {
      if (s.contains("minItems") && v.size() < s["minItems"].get<size_t>())
        problems_.push_back(at + ": fewer than " + s["minItems"].dump() + " items");
      if (s.contains("items")) {
        for (size_t i = 0; i < v.size(); ++i) check(v[i], s["items"], at + "[" + std::to_string(i) + "]");
      }
    }
  }

  std::vector<std::string> problems_;

 private:
  const nlohmann::json& root_;
};

}  // namespace

std::vector<std::string> check_json(const nlohmann::json& doc, const nlohmann::json& schema) {
  Checker c(schema);
  c.check(doc, schema, "$");
  return c.problems_;
}

}  // namespace sf::report
