#include "report/summary.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace sf::report {
namespace {

using nlohmann::json;

json interval(const Interval& i) { return json::array({i.lo, i.hi}); }

std::string fixed(double v, int digits = 3) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, v);
  return buf;
}

std::string with_ci(const MeanEstimate& e) {
  return fixed(e.mean) + " [" + fixed(e.ci.lo) + ", " + fixed(e.ci.hi) + "]";
}

std::string portion_text(const PortionEstimate& p) {
  if (!p.defined) return "n/a";
  return fixed(p.value, 2) + " [" + fixed(p.ci.lo, 2) + ", " + fixed(p.ci.hi, 2) + "]";
}

// The metric's label: its name, and for judged metrics the judge and its held-out accuracy.
std::string metric_label(const MetricRow& m) {
  if (m.judge.empty()) return m.metric;
  std::string l = m.metric + " (judge " + m.judge;
  if (m.judge_accuracy) l += ", held-out accuracy " + fixed(*m.judge_accuracy, 2);
  return l + ")";
}

std::string value_cell(const MetricRow& m, const std::string& system) {
  if (!m.scored) return "unscored";
  auto it = m.systems.find(system);
  return it == m.systems.end() ? "-" : with_ci(it->second);
}

const MetricRow* find_metric(const Summary& s, const std::string& task, const std::string& metric) {
  for (const auto& m : s.metrics)
    if (m.task == task && m.metric == metric) return &m;
  return nullptr;
}

std::string estimator_text(const EstimateSettings& e, bool html) {
  const std::string minus = html ? " &minus; " : " - ";
  return "Values are means over examples with " + fixed(e.confidence * 100, 0) +
         "% intervals: exact Clopper-Pearson for binary scores, percentile bootstrap (" + std::to_string(e.resamples) +
         " resamples, seed " + std::to_string(e.seed) + ") otherwise. Superficial portion = (S" + minus + "B)/(A" +
         minus +
         "B) with a paired Bayesian bootstrap (Jeffreys pseudo-examples at the corners of [0,1]^3); n/a "
         "when the interval of A" +
         minus + "B contains 0.";
}

std::string escape_html(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// Markdown table cells must not contain '|' or newlines.
std::string escape_md(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '|') {
      out += "\\|";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

const char* kColors[] = {"#7f7f7f", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"};
const char* color(size_t i) { return kColors[i % (sizeof(kColors) / sizeof(kColors[0]))]; }

// Bars with CI whiskers for one metric, values on a 0..1 axis.
std::string bar_chart(const MetricRow& m) {
  const int w = 80 + 90 * static_cast<int>(m.systems.size()), h = 220, top = 20, bottom = 180, left = 50;
  auto y = [&](double v) { return bottom - (bottom - top) * std::clamp(v, 0.0, 1.0); };
  std::ostringstream o;
  o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << w << "\" height=\"" << h << "\" role=\"img\">";
  o << "<title>" << escape_html(m.task + " " + metric_label(m)) << "</title>";
  for (double t : {0.0, 0.25, 0.5, 0.75, 1.0}) {
    o << "<line x1=\"" << left << "\" x2=\"" << w - 10 << "\" y1=\"" << y(t) << "\" y2=\"" << y(t)
      << "\" stroke=\"#ddd\"/><text x=\"" << left - 6 << "\" y=\"" << y(t) + 4
      << "\" font-size=\"11\" text-anchor=\"end\">" << fixed(t, 2) << "</text>";
  }
  size_t i = 0;
  for (const auto& [system, e] : m.systems) {
    const double x = left + 20 + 90 * static_cast<double>(i);
    o << "<rect x=\"" << x << "\" y=\"" << y(e.mean) << "\" width=\"50\" height=\"" << bottom - y(e.mean)
      << "\" fill=\"" << color(i) << "\"><title>" << escape_html(system) << ": " << with_ci(e) << "</title></rect>";
    ++i;
    const double cx = x + 25;
    o << "<line x1=\"" << cx << "\" x2=\"" << cx << "\" y1=\"" << y(e.ci.lo) << "\" y2=\"" << y(e.ci.hi)
      << "\" stroke=\"#000\"/>";
    for (double v : {e.ci.lo, e.ci.hi}) {
      o << "<line x1=\"" << cx - 8 << "\" x2=\"" << cx + 8 << "\" y1=\"" << y(v) << "\" y2=\"" << y(v)
        << "\" stroke=\"#000\"/>";
    }
    o << "<text x=\"" << cx << "\" y=\"" << bottom + 16 << "\" font-size=\"11\" text-anchor=\"middle\">"
      << escape_html(system) << "</text>";
  }
  o << "</svg>";
  return o.str();
}

// Per-position KL curves.
std::string kl_chart(const KlCurve& k) {
  const int w = 640, h = 260, left = 60, right = 620, top = 20, bottom = 220;
  double ymax = 0;
  for (size_t j = 0; j < k.count.size(); ++j) ymax = std::max({ymax, k.aligned_base[j], k.aligned_head[j]});
  if (ymax <= 0) ymax = 1;
  const double xmax = std::max<double>(1.0, static_cast<double>(k.count.size()) - 1);
  auto x = [&](size_t j) { return left + (right - left) * static_cast<double>(j) / xmax; };
  auto y = [&](double v) { return bottom - (bottom - top) * v / ymax; };
  std::ostringstream o;
  o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << w << "\" height=\"" << h << "\" role=\"img\">";
  o << "<title>Per-position KL divergence</title>";
  for (int t = 0; t <= 4; ++t) {
    const double v = ymax * t / 4.0;
    o << "<line x1=\"" << left << "\" x2=\"" << right << "\" y1=\"" << y(v) << "\" y2=\"" << y(v)
      << "\" stroke=\"#ddd\"/><text x=\"" << left - 6 << "\" y=\"" << y(v) + 4
      << "\" font-size=\"11\" text-anchor=\"end\">" << fixed(v, 2) << "</text>";
  }
  const std::pair<const std::vector<double>*, std::string> lines[] = {
      {&k.aligned_base, "KL(aligned || base)"}, {&k.aligned_head, "KL(aligned || base + " + k.head + ")"}};
  for (size_t l = 0; l < 2; ++l) {
    o << "<polyline fill=\"none\" stroke=\"" << color(l + 1) << "\" stroke-width=\"2\" points=\"";
    for (size_t j = 0; j < k.count.size(); ++j) o << x(j) << "," << y((*lines[l].first)[j]) << " ";
    o << "\"/><text x=\"" << right - 200 << "\" y=\"" << top + 14 + 16 * l << "\" font-size=\"12\" fill=\""
      << color(l + 1) << "\">" << escape_html(lines[l].second) << "</text>";
  }
  o << "<text x=\"" << (left + right) / 2 << "\" y=\"" << h - 8
    << "\" font-size=\"12\" text-anchor=\"middle\">response position</text></svg>";
  return o.str();
}

// Training loss against step.
std::string loss_chart(const TrainingCurve& c) {
  const int w = 640, h = 220, left = 60, right = 620, top = 20, bottom = 180;
  double ymax = 0;
  for (double v : c.loss) ymax = std::max(ymax, v);
  if (ymax <= 0) ymax = 1;
  const double xmax = std::max<double>(1.0, static_cast<double>(c.step.empty() ? 1 : c.step.back()));
  auto x = [&](int64_t step) { return left + (right - left) * static_cast<double>(step) / xmax; };
  auto y = [&](double v) { return bottom - (bottom - top) * v / ymax; };
  std::ostringstream o;
  o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << w << "\" height=\"" << h << "\" role=\"img\">";
  o << "<title>Training loss of " << escape_html(c.model) << "</title>";
  for (int t = 0; t <= 4; ++t) {
    const double v = ymax * t / 4.0;
    o << "<line x1=\"" << left << "\" x2=\"" << right << "\" y1=\"" << y(v) << "\" y2=\"" << y(v)
      << "\" stroke=\"#ddd\"/><text x=\"" << left - 6 << "\" y=\"" << y(v) + 4
      << "\" font-size=\"11\" text-anchor=\"end\">" << fixed(v, 2) << "</text>";
  }
  o << "<polyline fill=\"none\" stroke=\"" << color(0) << "\" stroke-width=\"2\" points=\"";
  for (size_t i = 0; i < c.step.size(); ++i) o << x(c.step[i]) << "," << y(c.loss[i]) << " ";
  o << "\"/><text x=\"" << (left + right) / 2 << "\" y=\"" << h - 8
    << "\" font-size=\"12\" text-anchor=\"middle\">step (last " << xmax << ")</text></svg>";
  return o.str();
}

json estimate_json(const MeanEstimate& e) {
  return {{"value", e.mean}, {"ci", interval(e.ci)}, {"n", e.n}, {"method", e.method}};
}

}  // namespace

json to_json(const Summary& s) {
  json j;
  j["schema"] = "summary";
  j["schema_version"] = kSummarySchemaVersion;
  j["provenance"] = s.provenance;
  j["estimate"] = {{"resamples", s.estimate.resamples},
                   {"confidence", s.estimate.confidence},
                   {"seed", s.estimate.seed},
                   {"mean_binary", "clopper-pearson"},
                   {"mean_other", "bootstrap-percentile"},
                   {"portion", "paired-bayesian-bootstrap-jeffreys"}};
  j["systems"] = json::array();
  for (const auto& sys : s.systems)
    j["systems"].push_back({{"name", sys.name}, {"model", sys.model}, {"description", sys.description}});
  j["metrics"] = json::array();
  for (const auto& m : s.metrics) {
    json jm = {{"task", m.task},
               {"metric", m.metric},
               {"status", m.scored ? "scored" : "unscored"},
               {"examples", m.examples},
               {"systems", json::object()}};
    if (!m.judge.empty()) jm["judge"] = m.judge;
    if (m.judge_accuracy) jm["judge_accuracy"] = *m.judge_accuracy;
    for (const auto& [name, e] : m.systems) jm["systems"][name] = estimate_json(e);
    j["metrics"].push_back(std::move(jm));
  }
  j["comparisons"] = json::array();
  for (const auto& c : s.comparisons) {
    json rows = json::array();
    for (const auto& r : c.rows) {
      json portions = json::array();
      for (const auto& p : r.portions) {
        portions.push_back({{"system", p.system},
                            {"status", p.estimate.defined ? "ok" : "n/a"},
                            {"value", p.estimate.defined ? json(p.estimate.value) : json(nullptr)},
                            {"ci", p.estimate.defined ? interval(p.estimate.ci) : json(nullptr)},
                            {"reason", p.estimate.reason}});
      }
      rows.push_back({{"task", r.task},
                      {"metric", r.metric},
                      {"aligned_minus_base", r.diff},
                      {"aligned_minus_base_ci", interval(r.diff_ci)},
                      {"portions", portions}});
    }
    j["comparisons"].push_back(
        {{"name", c.name}, {"base", c.base}, {"aligned", c.aligned}, {"systems", c.systems}, {"rows", rows}});
  }
  j["kl"] = json::array();
  for (const auto& k : s.kl) {
    json positions = json::array();
    for (size_t p = 0; p < k.count.size(); ++p) {
      positions.push_back({{"position", static_cast<int64_t>(p)},
                           {"count", k.count[p]},
                           {"aligned_base", k.aligned_base[p]},
                           {"aligned_head", k.aligned_head[p]}});
    }
    j["kl"].push_back({{"head", k.head},
                       {"pair", {{"base", k.pair_base}, {"aligned", k.pair_aligned}}},
                       {"top_k", k.top_k},
                       {"validation_examples", k.examples},
                       {"positions", positions}});
  }
  j["head_tokens"] = json::array();
  for (const auto& h : s.head_tokens) {
    auto list = [](const std::vector<TokenShift>& v) {
      json a = json::array();
      for (const auto& t : v) a.push_back({{"id", t.id}, {"token", t.token}, {"mean_delta", t.mean_delta}});
      return a;
    };
    j["head_tokens"].push_back({{"head", h.head}, {"promoted", list(h.promoted)}, {"demoted", list(h.demoted)}});
  }
  j["training"] = json::array();
  for (const auto& c : s.training) {
    j["training"].push_back(
        {{"model", c.model}, {"model_dir", c.model_dir}, {"recipe", c.recipe}, {"step", c.step}, {"loss", c.loss}});
  }
  j["notes"] = s.notes;
  return j;
}

std::string to_markdown(const Summary& s) {
  std::ostringstream o;
  o << "# Superficial alignment summary\n\n";
  if (s.provenance.contains("run_dir")) o << "Run: `" << s.provenance["run_dir"].get<std::string>() << "`";
  if (s.provenance.contains("git_sha")) o << ", git " << s.provenance["git_sha"].get<std::string>();
  o << "\n\n" << estimator_text(s.estimate, false) << "\n\n## Systems\n\n| system | what it is |\n|---|---|\n";
  for (const auto& sys : s.systems) o << "| " << escape_md(sys.name) << " | " << escape_md(sys.description) << " |\n";
  for (const auto& c : s.comparisons) {
    o << "\n## Comparison " << escape_md(c.name) << ": base `" << escape_md(c.base) << "`, aligned `"
      << escape_md(c.aligned) << "`\n\n| task | metric | n | " << escape_md(c.base) << " | " << escape_md(c.aligned)
      << " |";
    for (const auto& sys : c.systems) o << " " << escape_md(sys) << " |";
    for (const auto& sys : c.systems) o << " portion " << escape_md(sys) << " |";
    o << "\n|---|---|---|---|---|";
    for (size_t i = 0; i < 2 * c.systems.size(); ++i) o << "---|";
    o << "\n";
    for (const auto& r : c.rows) {
      const MetricRow* m = find_metric(s, r.task, r.metric);
      if (!m) continue;
      o << "| " << escape_md(r.task) << " | " << escape_md(metric_label(*m)) << " | " << m->examples << " | "
        << value_cell(*m, c.base) << " | " << value_cell(*m, c.aligned) << " |";
      for (const auto& sys : c.systems) o << " " << value_cell(*m, sys) << " |";
      for (const auto& p : r.portions) o << " " << (m->scored ? portion_text(p.estimate) : "-") << " |";
      o << "\n";
    }
  }
  o << "\n## All systems\n\n| task | metric | n |";
  for (const auto& sys : s.systems) o << " " << escape_md(sys.name) << " |";
  o << "\n|---|---|---|";
  for (size_t i = 0; i < s.systems.size(); ++i) o << "---|";
  o << "\n";
  for (const auto& m : s.metrics) {
    o << "| " << escape_md(m.task) << " | " << escape_md(metric_label(m)) << " | " << m.examples << " |";
    for (const auto& sys : s.systems) o << " " << value_cell(m, sys.name) << " |";
    o << "\n";
  }
  for (const auto& k : s.kl) {
    o << "\n## Per-position KL of head " << escape_md(k.head) << " (top-" << k.top_k << ", " << k.examples
      << " held-out validation examples of " << escape_md(k.pair_base) << " → " << escape_md(k.pair_aligned)
      << ")\n\n| position | examples | KL(aligned‖base) | KL(aligned‖base+" << escape_md(k.head)
      << ") |\n|---|---|---|---|\n";
    for (size_t p = 0; p < k.count.size(); ++p) {
      o << "| " << p << " | " << k.count[p] << " | " << fixed(k.aligned_base[p], 4) << " | "
        << fixed(k.aligned_head[p], 4) << " |\n";
    }
  }
  for (const auto& h : s.head_tokens) {
    o << "\n## Tokens head " << escape_md(h.head)
      << " moves most\n\n| promoted | mean Δlogit | demoted | mean Δlogit |\n"
      << "|---|---|---|---|\n";
    for (size_t i = 0; i < std::max(h.promoted.size(), h.demoted.size()); ++i) {
      // Appended piece by piece: GCC 12 with libtorch 2.x headers reports a false
      // -Wstringop-overflow inside `"literal" + std::string&&` here.
      auto cell = [](const std::vector<TokenShift>& v, size_t i) {
        if (i >= v.size()) return std::string(" | ");
        std::string c = "`";
        c += escape_md(v[i].token);
        c += "` | ";
        c += fixed(v[i].mean_delta);
        return c;
      };
      o << "| " << cell(h.promoted, i) << " | " << cell(h.demoted, i) << " |\n";
    }
  }
  if (!s.training.empty()) {
    o << "\n## Training of the models (superficial train)\n\n| model | folder | recipe | steps | first loss | final "
         "loss "
         "|\n|---|---|---|---|---|---|\n";
    for (const auto& c : s.training) {
      o << "| " << escape_md(c.model) << " | `" << escape_md(c.model_dir) << "` | " << escape_md(c.recipe) << " | "
        << (c.step.empty() ? 0 : c.step.back()) << " | " << (c.loss.empty() ? "-" : fixed(c.loss.front(), 4)) << " | "
        << (c.loss.empty() ? "-" : fixed(c.loss.back(), 4)) << " |\n";
    }
  }
  if (!s.notes.empty()) {
    o << "\n## Notes\n\n";
    for (const auto& n : s.notes) o << "- " << n << "\n";
  }
  return o.str();
}

std::string to_html(const Summary& s) {
  std::ostringstream o;
  o << "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Superficial alignment report</title>"
       "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse}"
       "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f4f4f4}"
       ".chart{display:inline-block;margin:1em}</style></head><body>\n";
  o << "<h1>Superficial alignment report</h1>\n<p>";
  for (auto it = s.provenance.begin(); it != s.provenance.end(); ++it) {
    o << escape_html(it.key()) << ": <code>"
      << escape_html(it.value().is_string() ? it.value().get<std::string>() : it.value().dump()) << "</code><br>";
  }
  o << estimator_text(s.estimate, true) << "</p>\n<h2>Systems</h2>\n<table><tr><th>system</th><th>what it is</th></tr>";
  for (const auto& sys : s.systems)
    o << "<tr><td>" << escape_html(sys.name) << "</td><td>" << escape_html(sys.description) << "</td></tr>";
  o << "</table>\n";
  for (const auto& c : s.comparisons) {
    o << "<h2>Comparison " << escape_html(c.name) << ": base <code>" << escape_html(c.base) << "</code>, aligned <code>"
      << escape_html(c.aligned) << "</code></h2>\n<table><tr><th>task</th><th>metric</th><th>n</th><th>"
      << escape_html(c.base) << "</th><th>" << escape_html(c.aligned) << "</th>";
    for (const auto& sys : c.systems) o << "<th>" << escape_html(sys) << "</th>";
    for (const auto& sys : c.systems) o << "<th>portion " << escape_html(sys) << "</th>";
    o << "</tr>\n";
    for (const auto& r : c.rows) {
      const MetricRow* m = find_metric(s, r.task, r.metric);
      if (!m) continue;
      o << "<tr><td>" << escape_html(r.task) << "</td><td>" << escape_html(metric_label(*m)) << "</td><td>"
        << m->examples << "</td><td>" << value_cell(*m, c.base) << "</td><td>" << value_cell(*m, c.aligned) << "</td>";
      for (const auto& sys : c.systems) o << "<td>" << value_cell(*m, sys) << "</td>";
      for (const auto& p : r.portions) {
        o << "<td>" << (m->scored ? portion_text(p.estimate) : "-");
        if (m->scored && !p.estimate.defined) o << " <small>(" << escape_html(p.estimate.reason) << ")</small>";
        o << "</td>";
      }
      o << "</tr>\n";
    }
    o << "</table>\n";
  }
  for (const auto& m : s.metrics) {
    if (m.scored && !m.systems.empty())
      o << "<div class=\"chart\"><h3>" << escape_html(m.task + " / " + metric_label(m)) << "</h3>" << bar_chart(m)
        << "</div>\n";
  }
  for (const auto& k : s.kl) {
    o << "<h2>Per-position KL divergence, head " << escape_html(k.head) << " (top-" << k.top_k << ", " << k.examples
      << " held-out validation examples)</h2>\n"
      << kl_chart(k) << "\n";
  }
  for (const auto& h : s.head_tokens) {
    o << "<h2>Tokens head " << escape_html(h.head)
      << " moves most</h2>\n<table><tr><th>promoted</th><th>mean &Delta;logit</th>"
      << "<th>demoted</th><th>mean &Delta;logit</th></tr>\n";
    for (size_t i = 0; i < std::max(h.promoted.size(), h.demoted.size()); ++i) {
      auto cells = [](const std::vector<TokenShift>& v, size_t i) {
        return i < v.size()
                   ? "<td><code>" + escape_html(v[i].token) + "</code></td><td>" + fixed(v[i].mean_delta) + "</td>"
                   : std::string("<td></td><td></td>");
      };
      o << "<tr>" << cells(h.promoted, i) << cells(h.demoted, i) << "</tr>\n";
    }
    o << "</table>\n";
  }
  for (const auto& c : s.training) {
    o << "<h2>Training loss: " << escape_html(c.model) << " (" << escape_html(c.recipe) << ", <code>"
      << escape_html(c.model_dir) << "</code>)</h2>\n"
      << loss_chart(c) << "\n";
  }
  if (!s.notes.empty()) {
    o << "<h2>Notes</h2><ul>";
    for (const auto& n : s.notes) o << "<li>" << escape_html(n) << "</li>";
    o << "</ul>\n";
  }
  o << "</body></html>\n";
  return o.str();
}

}  // namespace sf::report
