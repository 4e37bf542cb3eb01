#include "model/finite.hpp"

#include <cmath>

#include "core/error.hpp"

namespace sf::model {

std::optional<NonFinite> first_non_finite(const torch::Tensor& t) {
  if (!t.defined() || t.numel() == 0 || !t.is_floating_point()) return std::nullopt;
  // Fast path: the sum of finite values is finite unless it overflows, which only sends us to
  // the exact search below.
  const torch::Tensor sum = t.scalar_type() == torch::kFloat64 ? t.sum() : t.sum(torch::kFloat32);
  if (std::isfinite(sum.item<double>())) return std::nullopt;
  const torch::Tensor bad = torch::logical_not(torch::isfinite(t)).reshape({-1});
  const torch::Tensor first = bad.nonzero();
  if (first.size(0) == 0) return std::nullopt;
  const int64_t flat = first[0][0].item<int64_t>();
  const int64_t columns = t.dim() >= 2 ? t.numel() / t.size(0) : 1;
  NonFinite out;
  out.row = flat / columns;
  out.column = flat % columns;
  out.value = t.reshape({-1})[flat].item<double>();
  return out;
}

std::string non_finite_text(double v) {
  if (std::isnan(v)) return "nan";
  return v > 0 ? "inf" : "-inf";
}

void require_finite(const torch::Tensor& t, const FiniteCheck& check) {
  const std::optional<NonFinite> bad = first_non_finite(t);
  if (!bad) return;
  std::string entry = t.dim() >= 2 ? "entry " + std::to_string(bad->column) : "value";
  if (check.ids.defined() && check.ids.dim() == 2 && bad->row < check.ids.size(0) && bad->column < check.ids.size(1))
    entry += " (token " + std::to_string(check.ids[bad->row][bad->column].item<int64_t>()) + ")";
  throw NumericError(check.what + ", position " + std::to_string(check.first_position + bad->row) + ": " + check.name +
                     ": " + entry + " = " + non_finite_text(bad->value) +
                     "; non-finite values are never stored or used (check the model's weights and dtype)");
}

}  // namespace sf::model
