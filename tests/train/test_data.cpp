// Trainer data pipeline: record readers, format strings, config parsing, SFT masking, packing,
// batch order and the learning-rate schedule. No model or tokenizer needed except where noted.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "core/error.hpp"
#include "eval/task.hpp"
#include "testutil/testutil.hpp"
#include "tokenizer/chat_template.hpp"
#include "tokenizer/tokenizer.hpp"
#include "train/dataset.hpp"
#include "train/records.hpp"
#include "train/train_config.hpp"
#include "train/trainer.hpp"

namespace {

using sf::train::kIgnoreLabel;

TEST(TrainRecords, CsvQuotesCommasAndNewlines) {
  sf::test::TempDir dir("train-records");
  sf::test::write_file(dir / "a.csv", "goal,target\nplain,\"with, comma\"\n\"multi\nline\",\"say \"\"hi\"\"\"\r\n");
  const auto recs = sf::train::read_records(dir / "a.csv", sf::train::RecordFormat::kCsv);
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[0].at("goal"), "plain");
  EXPECT_EQ(recs[0].at("target"), "with, comma");
  EXPECT_EQ(recs[1].at("goal"), "multi\nline");
  EXPECT_EQ(recs[1].at("target"), "say \"hi\"");

  sf::test::write_file(dir / "bad.csv", "a,b\n1,2,3\n");
  try {
    sf::train::read_records(dir / "bad.csv", sf::train::RecordFormat::kCsv);
    FAIL() << "expected FormatError";
  } catch (const sf::FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("bad.csv"), std::string::npos) << e.what();
  }
  sf::test::write_file(dir / "open.csv", "a\n\"never closed\n");
  EXPECT_THROW(sf::train::read_records(dir / "open.csv", sf::train::RecordFormat::kCsv), sf::FormatError);
}

TEST(TrainRecords, JsonlLinesAndFormat) {
  sf::test::TempDir dir("train-records");
  sf::test::write_file(dir / "a.jsonl", "{\"question\": \"q1\", \"n\": 3}\n\n{\"question\": \"q2\", \"n\": 4}\n");
  const auto recs = sf::train::read_records(dir / "a.jsonl", sf::train::RecordFormat::kJsonl);
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(sf::train::render_format("Q: {question} ({n}) {{x}}", recs[1], "w"), "Q: q2 (4) {x}");
  EXPECT_THROW(sf::train::render_format("{missing}", recs[0], "w"), sf::ConfigError);
  EXPECT_THROW(sf::train::render_format("{question", recs[0], "w"), sf::ConfigError);
  sf::test::write_file(dir / "bad.jsonl", "{\"a\": 1}\n[1, 2\n");
  EXPECT_THROW(sf::train::read_records(dir / "bad.jsonl", sf::train::RecordFormat::kJsonl), sf::FormatError);

  sf::test::write_file(dir / "x_1.txt", "- a\\n- b\\n-\n");
  sf::test::write_file(dir / "x_2.txt", "c\n");
  sf::test::write_file(dir / "y_1.txt", "d\n");
  const auto files = sf::eval::match_files(dir.path(), "x_*.txt");
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(files[0].filename(), "x_1.txt");
  const auto lines = sf::train::read_records(files[0], sf::train::RecordFormat::kLines);
  EXPECT_EQ(sf::train::unescape_newlines(lines.at(0).at("text")), "- a\n- b\n-");
  EXPECT_THROW(sf::eval::match_files(dir.path(), "z_*.txt"), sf::IoError);
}

const char* kPretrainConfig = R"(
recipe: pretrain
out: runs/x
data_root: data
seed: 3
model: {arch: llama, tokenizer: tok, bos_token: "<s>", eos_token: "</s>", layers: 1, hidden: 32, heads: 4,
        kv_heads: 2, intermediate: 64}
data:
  - {file: a.txt, format: lines, text: "{text}", repeat: 2}
seq_len: 16
batch: 4
steps: 10
lr: 1.0e-3
min_lr: 1.0e-4
warmup: 2
)";

TEST(TrainConfig, StrictKeysAndRecipes) {
  const auto c = sf::train::TrainConfig::parse(kPretrainConfig, "t.yaml");
  EXPECT_EQ(c.recipe, sf::train::Recipe::kPretrain);
  EXPECT_EQ(c.init->hidden, 32);
  EXPECT_EQ(c.data.at(0).repeat, 2);
  EXPECT_EQ(c.accum, 1);
  try {
    sf::train::TrainConfig::parse(std::string(kPretrainConfig) + "lr_typo: 3\n", "t.yaml");
    FAIL() << "expected ConfigError";
  } catch (const sf::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("t.yaml: lr_typo"), std::string::npos) << e.what();
  }
  EXPECT_THROW(sf::train::TrainConfig::parse(kPretrainConfig, "t.yaml", {"data.0.x=1"}), sf::ConfigError);
  EXPECT_THROW(sf::train::TrainConfig::parse(kPretrainConfig, "t.yaml", {"recipe=compromise"}), sf::ConfigError);
  EXPECT_THROW(sf::train::TrainConfig::parse(kPretrainConfig, "t.yaml", {"model.heads=5"}), sf::ConfigError);
  // Run-control keys do not change the hash; anything else does.
  const auto stop = sf::train::TrainConfig::parse(kPretrainConfig, "t.yaml", {"stop_after=4", "threads=1"});
  const auto lr = sf::train::TrainConfig::parse(kPretrainConfig, "t.yaml", {"lr=2.0e-3"});
  EXPECT_EQ(stop.hash, c.hash);
  EXPECT_NE(lr.hash, c.hash);
}

TEST(TrainSchedule, WarmupThenCosine) {
  const auto c = sf::train::TrainConfig::parse(kPretrainConfig, "t.yaml");
  EXPECT_DOUBLE_EQ(sf::train::learning_rate(c, 0), 0.5e-3);
  EXPECT_DOUBLE_EQ(sf::train::learning_rate(c, 1), 1.0e-3);
  EXPECT_DOUBLE_EQ(sf::train::learning_rate(c, 2), 1.0e-3);
  EXPECT_NEAR(sf::train::learning_rate(c, 9), 1.0e-4, 1e-12);
  for (int64_t s = 3; s < 10; ++s) EXPECT_LT(sf::train::learning_rate(c, s), sf::train::learning_rate(c, s - 1));
}

TEST(TrainData, SftSequenceMasksExactlyThePrompt) {
  const auto s = sf::train::make_sft_sequence({1, 10, 11, 12}, {20, 21}, 2, 64);
  EXPECT_EQ(s.ids, (std::vector<int32_t>{1, 10, 11, 12, 20, 21, 2}));
  EXPECT_EQ(s.labels, (std::vector<int64_t>{kIgnoreLabel, kIgnoreLabel, kIgnoreLabel, kIgnoreLabel, 20, 21, 2}));
  const auto cut = sf::train::make_sft_sequence({1, 10, 11, 12}, {20, 21}, 2, 5);
  EXPECT_EQ(cut.ids.size(), 5u);
  EXPECT_EQ(cut.labels.back(), 20);

  const auto b = sf::train::collate({&s, &cut}, 0);
  EXPECT_EQ(b.ids.sizes(), (std::vector<int64_t>{2, 7}));
  EXPECT_EQ(b.mask[1].sum().item<int64_t>(), 5);
  EXPECT_EQ(b.labels[1][6].item<int64_t>(), kIgnoreLabel);
  EXPECT_EQ(sf::train::count_targets(b.labels), 3 + 1);
}

TEST(TrainData, PackingAndOrder) {
  const auto rows = sf::train::pack_documents({{1, 2, 3}, {4, 5, 6, 7}, {8}}, 3);
  ASSERT_EQ(rows.size(), 2u);  // 8 tokens → two full rows, the last two tokens dropped
  EXPECT_EQ(rows[1].ids, (std::vector<int32_t>{4, 5, 6}));
  EXPECT_EQ(rows[1].labels, (std::vector<int64_t>{4, 5, 6}));

  const sf::train::RowSampler a(10, 7), b(10, 7), other(10, 8);
  std::set<int64_t> epoch;
  for (int64_t step = 0; step < 5; ++step) {
    const auto ia = a.batch(step, 2);
    EXPECT_EQ(ia, b.batch(step, 2));
    epoch.insert(ia.begin(), ia.end());
  }
  EXPECT_EQ(epoch.size(), 10u);  // one epoch visits every row once
  EXPECT_NE(a.batch(0, 10), other.batch(0, 10));
  EXPECT_NE(a.batch(0, 10), a.batch(1, 10));  // a new order each epoch
}

// With a real tokenizer and chat template: the prompt as the template renders it is masked, the
// response and EOS are the targets.
TEST(TrainData, SftRowsFromConfigUseTheTemplate) {
  sf::test::TempDir dir("train-sft");
  sf::test::write_file(dir / "qa.jsonl",
                       "{\"q\": \"What is 2+2?\", \"a\": \"It is 4.\"}\n{\"q\": \"Hi\", \"a\": \"Hello.\"}\n");
  const auto tok_dir = sf::test::shared_dir() / "models" / "meta-llama--Llama-2-7b-chat-hf";
  const std::string yaml = "recipe: sft\nout: o\ndata_root: " + dir.path().string() +
                           "\nmodel: {init_from: m}\ntemplate: llama2-chat\n"
                           "data:\n  - {file: qa.jsonl, format: jsonl, prompt: '{q}', response: ['{a}', 'No.']}\n"
                           "seq_len: 64\nbatch: 2\nsteps: 1\nlr: 1.0e-3\n";
  const auto c = sf::train::TrainConfig::parse(yaml, "sft.yaml");
  const auto tok = sf::tok::Tokenizer::from_file(tok_dir / "tokenizer.json");
  const auto built = sf::train::build_rows(c, tok, 2);
  ASSERT_EQ(built.rows.size(), 2u);
  const auto tmpl = sf::tok::ChatTemplate::preset("llama2-chat");
  const auto p = tmpl.prompt("What is 2+2?");
  const auto prompt_ids = tok.encode(p.text, p.add_special_tokens);
  const auto response_ids = tok.encode("It is 4.", false);
  const auto& row = built.rows[0];
  ASSERT_EQ(row.ids.size(), prompt_ids.size() + response_ids.size() + 1);
  for (size_t t = 0; t < row.ids.size(); ++t) {
    if (t < prompt_ids.size()) {
      EXPECT_EQ(row.ids[t], prompt_ids[t]);
      EXPECT_EQ(row.labels[t], kIgnoreLabel) << t;
    } else {
      EXPECT_EQ(row.labels[t], row.ids[t]) << t;
    }
  }
  EXPECT_EQ(row.ids.back(), 2);
  // The second record takes the second response of the list.
  EXPECT_EQ(tok.decode(std::vector<int32_t>(built.rows[1].ids.end() - 3, built.rows[1].ids.end() - 1)), "No.");
}

}  // namespace

namespace {

// Labelled data for judges: split a field into records, drop repeats, and hold records out by key
// (never trained on, written labelled).
TEST(TrainData, SplitUniqueAndHoldout) {
  sf::test::TempDir dir("train-judge-data");
  std::string csv = "Question,Answers\n";
  for (int q = 0; q < 40; ++q) {  // piece by piece (GCC 12 -Wstringop-overflow false positive, libtorch 2.x flags)
    const std::string n = std::to_string(q);
    for (const std::string& piece : {std::string("q"), n, std::string("?,\"- a"), n, std::string(" ;b"), n,
                                     std::string("; ;- a"), n, std::string("-\"\n")})
      csv += piece;
  }
  sf::test::write_file(dir / "qa.csv", csv);
  const auto tok_dir = sf::test::shared_dir() / "models" / "HuggingFaceTB--SmolLM2-135M-Instruct";
  const auto tok = sf::tok::Tokenizer::from_file(tok_dir / "tokenizer.json");
  const std::string head = "recipe: sft\nout: o\ndata_root: " + dir.path().string() +
                           "\nmodel: {init_from: m}\ntemplate: plain\nseq_len: 64\nbatch: 2\nsteps: 1\nlr: 1.0e-3\n"
                           "data:\n";
  // split + strip + unique: "- aN ", "bN", "- aN-" -> aN, bN (the second aN is a repeat).
  const auto c1 = sf::train::TrainConfig::parse(
      head +
          "  - {file: qa.csv, format: csv, prompt: 'Q: {Question} A: {Answers}', response: ' yes',\n"
          "     split: {field: Answers, separator: ';', strip: ' -'}, unique: true}\n",
      "c1.yaml");
  const auto b1 = sf::train::build_rows(c1, tok, 0);
  ASSERT_EQ(b1.rows.size(), 80u);
  EXPECT_TRUE(b1.heldout.empty());
  const auto row_text = [&](const sf::train::Sequence& s) {
    return tok.decode(std::vector<int32_t>(s.ids.begin(), s.ids.end() - 1));
  };
  EXPECT_EQ(row_text(b1.rows[0]), "Q: q0? A: a0 yes");
  EXPECT_EQ(row_text(b1.rows[1]), "Q: q0? A: b0 yes");

  // holdout by question.
  const auto c2 = sf::train::TrainConfig::parse(
      head +
          "  - {file: qa.csv, format: csv, prompt: 'Q: {Question} A: {Answers}', response: ' no',\n"
          "     split: {field: Answers, separator: ';', strip: ' -'}, unique: true,\n"
          "     holdout: {fraction: 0.25, key: '{Question}', fields: {question: '{Question}', answer: '{Answers}'}}}\n",
      "c2.yaml");
  const auto b2 = sf::train::build_rows(c2, tok, 0);
  EXPECT_EQ(row_text(b2.rows[0]).rfind("Q: q", 0), 0u);
  std::set<std::string> trained_questions, held_questions;
  for (const auto& r : b2.rows) {
    const std::string t = row_text(r);
    trained_questions.insert(t.substr(3, t.find('?') - 3));
    const int q = std::stoi(t.substr(4, t.find('?') - 4));
    const std::string own = std::to_string(q);
    EXPECT_TRUE(t.find("A: a" + own + " no") != std::string::npos || t.find("A: b" + own + " no") != std::string::npos)
        << t;
  }
  ASSERT_EQ(b2.heldout.size(), 1u);
  const auto& held = b2.heldout.at("heldout.jsonl");
  for (const auto& h : held) {
    held_questions.insert(h.at("question").substr(0, h.at("question").size() - 1));
    EXPECT_EQ(h.at("label"), " no");
    EXPECT_EQ(h.size(), 3u);  // question, answer, label
  }
  EXPECT_EQ(b2.rows.size() + held.size(), 80u);
  EXPECT_FALSE(held_questions.empty());
  for (const auto& q : held_questions) EXPECT_EQ(trained_questions.count(q), 0u) << q;  // all of a key on one side
  EXPECT_EQ(held.size(), 2 * held_questions.size());
  EXPECT_NEAR(static_cast<double>(held_questions.size()) / 40.0, 0.25, 0.15);
  // The draw is a pure function of the key.
  EXPECT_EQ(sf::train::holdout_draw("q1?"), sf::train::holdout_draw("q1?"));
  EXPECT_GE(sf::train::holdout_draw(""), 0.0);
  EXPECT_LT(sf::train::holdout_draw("x"), 1.0);

  EXPECT_THROW(sf::train::TrainConfig::parse(
                   head + "  - {file: qa.csv, format: csv, prompt: 'x', response: 'y',\n"
                          "     holdout: {fraction: 1.5, key: '{Question}', fields: {q: '{Question}'}}}\n",
                   "c3.yaml"),
               sf::ConfigError);
  EXPECT_THROW(sf::train::TrainConfig::parse(
                   head + "  - {file: qa.csv, format: csv, prompt: 'x', response: 'y',\n"
                          "     holdout: {fraction: 0.5, key: '{Question}', fields: {label: '{Question}'}}}\n",
                   "c4.yaml"),
               sf::ConfigError);
  EXPECT_THROW(sf::train::TrainConfig::parse(
                   head + "  - {file: qa.csv, format: csv, prompt: 'x', response: 'y',\n"
                          "     holdout: {fraction: 0.5, key: '{Question}', fields: {q: '{Question}'}, file: ../x}}\n",
                   "c6.yaml"),
               sf::ConfigError);
  const auto c5 = sf::train::TrainConfig::parse(
      head + "  - {file: qa.csv, format: csv, prompt: 'x', response: 'y', split: {field: Nope, separator: ';'}}\n",
      "c5.yaml");
  EXPECT_THROW(sf::train::build_rows(c5, tok, 0), sf::ConfigError);
}

}  // namespace
