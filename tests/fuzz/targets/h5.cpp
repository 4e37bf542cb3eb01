// HDF5 result files from other runs: `validate` (schema check, virtual sources), then the reader of
// the file's schema: logit datasets (examples, token rows, training rows), results rows, judgments
// (rows, held-out verdicts and their consistency checks).
#include "io/h5.hpp"

#include "eval/results.hpp"
#include "extract/logit_dataset.hpp"
#include "fuzz/targets/targets.hpp"
#include "judge/judgments.hpp"

namespace sf::fuzz {

void h5(const uint8_t* data, size_t size) {
  const std::filesystem::path file = scratch_file("input.h5", data, size);
  (void)h5::validate_file(file);
  std::string schema;
  {
    const h5::File f = h5::File::open(file);
    if (!f.has_attr("schema")) return;
    schema = f.attr_string("schema");
  }
  if (schema == "logits") {
    const extract::LogitDataset d = extract::LogitDataset::open(file);
    for (int64_t row = 0; row < std::min<int64_t>(d.num_examples(), 4); ++row) {
      (void)d.example(row);
      (void)d.example_task(row);
      if (d.example_tokens(row) > 0) {
        (void)d.tokens(d.token_offset(row), d.example_tokens(row));
        (void)d.training_rows(d.token_offset(row), d.example_tokens(row));
      }
    }
  } else if (schema == "results") {
    (void)eval::read_rows(file);
  } else if (schema == "judgments") {
    (void)judge::check_judgments(file);
    (void)judge::read_judgments(file);
  }
}

}  // namespace sf::fuzz
