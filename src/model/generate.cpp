#include "model/generate.hpp"

#include <algorithm>
#include <numeric>

#include "core/error.hpp"

namespace sf::model {

namespace {

void check_ids(const std::vector<int32_t>& seq, size_t index, int64_t vocab, const char* what) {
  for (size_t t = 0; t < seq.size(); ++t) {
    if (seq[t] < 0 || seq[t] >= vocab) {
      throw ShapeError(std::string(what) + " " + std::to_string(index) + ": token " + std::to_string(seq[t]) +
                       " at position " + std::to_string(t) + " is outside the vocabulary [0, " + std::to_string(vocab) +
                       ")");
    }
  }
}

// splitmix64: decorrelates per-row seeds derived from one user seed.
uint64_t mix_seed(uint64_t seed, uint64_t row) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ull * (row + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// One sampled id from logits [V] float32 (CPU): temperature, then nucleus (top-p) filtering as in
// transformers (keep the smallest prefix of the sorted distribution whose mass reaches top_p).
int64_t sample(const torch::Tensor& logits, double temperature, double top_p, at::Generator& gen) {
  torch::Tensor probs = torch::softmax(logits / temperature, -1);  // [V]
  if (top_p < 1.0) {
    auto sorted = probs.sort(/*dim=*/-1, /*descending=*/true);
    torch::Tensor sp = std::get<0>(sorted), si = std::get<1>(sorted);
    torch::Tensor mass_before = sp.cumsum(-1) - sp;  // [V]
    torch::Tensor keep = mass_before < top_p;
    keep[0].fill_(true);
    torch::Tensor filtered = torch::zeros_like(probs);
    filtered.index_put_({si.masked_select(keep)}, sp.masked_select(keep));
    probs = filtered;
  }
  return torch::multinomial(probs, 1, /*replacement=*/false, gen).item<int64_t>();
}

// Rows `rows` of `seqs` as [B,T] ids and mask, padded on the left (generation) or the right.
std::pair<torch::Tensor, torch::Tensor> pad(const std::vector<std::vector<int32_t>>& seqs,
                                            const std::vector<size_t>& rows, bool left) {
  const auto B = static_cast<int64_t>(rows.size());
  int64_t T = 0;
  for (size_t i : rows) T = std::max<int64_t>(T, static_cast<int64_t>(seqs[i].size()));
  torch::Tensor ids = torch::zeros({B, T}, torch::kInt64);
  torch::Tensor mask = torch::zeros({B, T}, torch::kInt64);
  auto ia = ids.accessor<int64_t, 2>();
  auto ma = mask.accessor<int64_t, 2>();
  for (int64_t b = 0; b < B; ++b) {
    const auto& p = seqs[rows[static_cast<size_t>(b)]];
    const int64_t off = left ? T - static_cast<int64_t>(p.size()) : 0;
    for (size_t t = 0; t < p.size(); ++t) {
      ia[b][off + static_cast<int64_t>(t)] = p[t];
      ma[b][off + static_cast<int64_t>(t)] = 1;
    }
  }
  return {ids, mask};
}

std::vector<size_t> range(size_t start, size_t end) {
  std::vector<size_t> r(end - start);
  std::iota(r.begin(), r.end(), start);
  return r;
}

}  // namespace

ScoreOutput score(const CausalLM& model, const std::vector<std::vector<int32_t>>& sequences, const ScoreOptions& opts) {
  torch::InferenceMode guard;
  const int64_t V = model.config().vocab_size;
  const VocabParallel& vocab = model.vocab();
  if (opts.batch_size <= 0) throw ShapeError("score: batch_size must be positive");
  if (opts.top_k < 0 || opts.top_k > V) throw ShapeError("score: top_k must be in [0, vocab_size]");
  for (size_t i = 0; i < sequences.size(); ++i) check_ids(sequences[i], i, V, "sequence");
  const size_t N = sequences.size();
  ScoreOutput out;
  out.token_logprobs.resize(N);
  if (opts.top_k > 0) {
    out.topk_logits.resize(N);
    out.topk_ids.resize(N);
  }
  if (opts.hidden) out.hidden.resize(N);

  // Longest first, so that each batch pads little. Right padding.
  std::vector<size_t> order(N);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return sequences[a].size() > sequences[b].size(); });
  const auto cpu = torch::TensorOptions().dtype(torch::kFloat32);
  for (size_t start = 0; start < N; start += static_cast<size_t>(opts.batch_size)) {
    const size_t end = std::min(N, start + static_cast<size_t>(opts.batch_size));
    const int64_t B = static_cast<int64_t>(end - start);
    const int64_t T = static_cast<int64_t>(sequences[order[start]].size());
    if (T == 0) {  // only empty sequences are left
      for (size_t r = start; r < end; ++r) {
        const size_t i = order[r];
        out.token_logprobs[i] = torch::zeros({0}, cpu);
        if (opts.top_k > 0) {
          out.topk_logits[i] = torch::zeros({0, opts.top_k}, cpu);
          out.topk_ids[i] = torch::zeros({0, opts.top_k}, torch::kInt64);
        }
        if (opts.hidden) out.hidden[i] = torch::zeros({0, model.config().hidden_size}, cpu);
      }
      continue;
    }
    const std::vector<size_t> rows(order.begin() + static_cast<std::ptrdiff_t>(start),
                                   order.begin() + static_cast<std::ptrdiff_t>(end));
    const auto [ids, mask] = pad(sequences, rows, /*left=*/false);
    ForwardOutput f = model.forward(ids, mask);
    const torch::Tensor& logits = f.logits;             // [B,T,V] (this rank's V when split)
    const torch::Tensor lse = vocab.logsumexp(logits);  // [B,T]
    const torch::Tensor targets = ids.to(logits.device());
    // lp[b,t] = log p(x_{t+1} | x_<=t), t < T-1
    torch::Tensor lp = vocab.pick(logits.narrow(1, 0, T - 1), targets.narrow(1, 1, T - 1)) - lse.narrow(1, 0, T - 1);
    lp = torch::cat({torch::zeros({B, 1}, lp.options()), lp}, 1).cpu();  // [B,T]
    torch::Tensor tk_v, tk_i;
    if (opts.top_k > 0) {
      const TopK tk = vocab.topk(logits, opts.top_k);
      tk_v = tk.values.cpu();
      tk_i = tk.ids.cpu();
    }
    torch::Tensor hid = opts.hidden ? f.hidden.cpu() : torch::Tensor();
    for (int64_t b = 0; b < B; ++b) {
      const size_t i = order[start + static_cast<size_t>(b)];
      const int64_t n = static_cast<int64_t>(sequences[i].size());
      out.token_logprobs[i] = lp[b].narrow(0, 0, n).clone();
      if (opts.top_k > 0) {
        out.topk_logits[i] = tk_v[b].narrow(0, 0, n).clone();
        out.topk_ids[i] = tk_i[b].narrow(0, 0, n).clone();
      }
      if (opts.hidden) out.hidden[i] = hid[b].narrow(0, 0, n).clone();
    }
  }
  return out;
}

Ensemble Ensemble::of(const CausalLM& model, LogitsTransform transform) {
  return {{{&model, 1.0}}, std::move(transform)};
}

void Ensemble::check() const {
  if (members.empty() || !members[0].model) throw ShapeError("ensemble: no models");
  const CausalLM& main = *members[0].model;
  for (size_t m = 1; m < members.size(); ++m) {
    const CausalLM& other = *members[m].model;
    if (other.config().vocab_size != main.config().vocab_size)
      throw ShapeError("ensemble: member " + std::to_string(m) + " has vocabulary " +
                       std::to_string(other.config().vocab_size) + ", the main model " +
                       std::to_string(main.config().vocab_size));
    if (other.device() != main.device())
      throw ShapeError("ensemble: member " + std::to_string(m) + " is on " + other.device().str() +
                       ", the main model on " + main.device().str());
    if (other.vocab().group().size() != main.vocab().group().size())
      throw ShapeError("ensemble: member " + std::to_string(m) + " is split over " +
                       std::to_string(other.vocab().group().size()) + " ranks, the main model over " +
                       std::to_string(main.vocab().group().size()));
  }
}

torch::Tensor Ensemble::combine(const std::vector<torch::Tensor>& logits, const torch::Tensor& hidden) const {
  torch::Tensor out = transform ? transform(logits[0], hidden) : logits[0];  // [N,V]
  if (members.size() == 1 && members[0].weight == 1.0) return out;
  out = out * members[0].weight;
  for (size_t m = 1; m < members.size(); ++m) out = out + logits[m] * members[m].weight;
  return out;
}

namespace {

void check_prompts(const Ensemble& e, const MemberPrompts& prompts, const char* what) {
  e.check();
  if (prompts.size() != e.members.size())
    throw ShapeError(std::string(what) + ": " + std::to_string(prompts.size()) + " prompt lists for " +
                     std::to_string(e.members.size()) + " models");
  for (size_t m = 0; m < prompts.size(); ++m) {
    if (prompts[m].size() != prompts[0].size())
      throw ShapeError(std::string(what) + ": model " + std::to_string(m) + " has " +
                       std::to_string(prompts[m].size()) + " prompts, model 0 has " +
                       std::to_string(prompts[0].size()));
    for (size_t i = 0; i < prompts[m].size(); ++i) {
      if (prompts[m][i].empty()) throw ShapeError(std::string(what) + ": prompt " + std::to_string(i) + " is empty");
      check_ids(prompts[m][i], i, e.members[m].model->config().vocab_size, "prompt");
    }
  }
}

}  // namespace

std::vector<double> continuation_logprobs(const Ensemble& e, const MemberPrompts& prompts,
                                          const std::vector<std::vector<int32_t>>& continuations, int64_t batch_size) {
  torch::InferenceMode guard;
  check_prompts(e, prompts, "continuation_logprobs");
  if (batch_size <= 0) throw ShapeError("continuation_logprobs: batch_size must be positive");
  const size_t n = continuations.size();
  if (!prompts.empty() && prompts[0].size() != n)
    throw ShapeError("continuation_logprobs: " + std::to_string(n) + " continuations for " +
                     std::to_string(prompts[0].size()) + " prompts");
  const int64_t V = e.members[0].model->config().vocab_size;
  const VocabParallel& vocab = e.members[0].model->vocab();
  for (size_t i = 0; i < n; ++i) check_ids(continuations[i], i, V, "continuation");
  std::vector<double> out(n, 0.0);
  const torch::Device device = e.members[0].model->device();
  for (size_t start = 0; start < n; start += static_cast<size_t>(batch_size)) {
    const size_t end = std::min(n, start + static_cast<size_t>(batch_size));
    std::vector<ForwardOutput> f;
    for (size_t m = 0; m < e.members.size(); ++m) {
      std::vector<std::vector<int32_t>> seqs(n);
      for (size_t i = start; i < end; ++i) {
        seqs[i] = prompts[m][i];
        seqs[i].insert(seqs[i].end(), continuations[i].begin(), continuations[i].end());
      }
      const auto [ids, mask] = pad(seqs, range(start, end), /*left=*/false);
      f.push_back(e.members[m].model->forward(ids, mask));  // [B,T,V]
    }
    for (size_t i = start; i < end; ++i) {
      const auto len = static_cast<int64_t>(continuations[i].size());
      if (len == 0) continue;
      const auto b = static_cast<int64_t>(i - start);
      // Row p-1 of member m predicts the first continuation token (p = its prompt length).
      std::vector<torch::Tensor> rows;
      for (size_t m = 0; m < e.members.size(); ++m) {
        const auto p = static_cast<int64_t>(prompts[m][i].size());
        rows.push_back(f[m].logits[b].narrow(0, p - 1, len));  // [len,V]
      }
      const auto p0 = static_cast<int64_t>(prompts[0][i].size());
      const torch::Tensor hidden = f[0].hidden[b].narrow(0, p0 - 1, len);  // [len,H]
      const torch::Tensor z = e.combine(rows, hidden);                     // [len,V] (V_local when split)
      const torch::Tensor targets =
          torch::tensor(std::vector<int64_t>(continuations[i].begin(), continuations[i].end()), torch::kInt64)
              .to(device);
      out[i] = (vocab.pick(z, targets) - vocab.logsumexp(z)).sum().item<double>();
    }
  }
  return out;
}

std::vector<Generation> generate(const Ensemble& e, const MemberPrompts& prompts, const GenerateOptions& opts) {
  torch::InferenceMode guard;
  check_prompts(e, prompts, "generate");
  const int64_t V = e.members[0].model->config().vocab_size;
  const VocabParallel& vocab = e.members[0].model->vocab();
  if (opts.batch_size <= 0) throw ShapeError("generate: batch_size must be positive");
  if (opts.max_new_tokens < 0) throw ShapeError("generate: max_new_tokens must be >= 0");
  if (opts.record_top_k < 0 || opts.record_top_k > V) throw ShapeError("generate: record_top_k must be in [0, vocab]");
  if (!opts.greedy && (opts.temperature <= 0 || opts.top_p <= 0 || opts.top_p > 1)) {
    throw ShapeError("generate: sampling needs temperature > 0 and top_p in (0, 1]");
  }
  const size_t rows = prompts[0].size();
  const size_t M = e.members.size();
  std::vector<Generation> out(rows);
  const auto is_eos = [&](int64_t id) {
    return std::find(opts.eos_ids.begin(), opts.eos_ids.end(), id) != opts.eos_ids.end();
  };
  for (size_t start = 0; start < rows; start += static_cast<size_t>(opts.batch_size)) {
    const size_t end = std::min(rows, start + static_cast<size_t>(opts.batch_size));
    const int64_t B = static_cast<int64_t>(end - start);
    std::vector<at::Generator> gens;
    if (!opts.greedy) {
      for (size_t i = start; i < end; ++i) gens.push_back(at::detail::createCPUGenerator(mix_seed(opts.seed, i)));
    }
    std::vector<bool> done(static_cast<size_t>(B), false);
    std::vector<std::vector<torch::Tensor>> rec_v(static_cast<size_t>(B)), rec_i(static_cast<size_t>(B));
    for (int64_t b = 0; b < B; ++b) out[start + static_cast<size_t>(b)].finish_reason = "length";
    if (opts.max_new_tokens == 0) continue;
    // Left padding: the last column is every row's newest token.
    std::vector<torch::Tensor> masks(M);
    std::vector<KVCache> caches(M);
    std::vector<ForwardOutput> f(M);
    for (size_t m = 0; m < M; ++m) {
      const auto [ids, mask] = pad(prompts[m], range(start, end), /*left=*/true);
      masks[m] = mask.to(e.members[m].model->device());
      caches[m].reserve(ids.size(1) + opts.max_new_tokens);
      f[m] = e.members[m].model->forward(ids, masks[m], &caches[m], /*last_n=*/1);
    }
    for (int64_t step = 0; step < opts.max_new_tokens; ++step) {
      std::vector<torch::Tensor> last(M);
      for (size_t m = 0; m < M; ++m) last[m] = f[m].logits.select(1, f[m].logits.size(1) - 1);  // [B,V]
      const torch::Tensor hidden = f[0].hidden.select(1, f[0].hidden.size(1) - 1);              // [B,H]
      const torch::Tensor logits = e.combine(last, hidden).contiguous();  // [B,V] (V_local when split)
      torch::Tensor tk_v, tk_i;
      if (opts.record_top_k > 0) {
        const TopK tk = vocab.topk(logits, opts.record_top_k);
        tk_v = tk.values.to(torch::kCPU, torch::kFloat32);
        tk_i = tk.ids.cpu();
      }
      torch::Tensor next;  // [B] int64 on the host
      if (opts.greedy) {
        next = vocab.argmax(logits).cpu();
      } else {
        // Every rank of a tensor group samples the same token from the same full logits and seed.
        const torch::Tensor lc = vocab.gather(logits).to(torch::kCPU, torch::kFloat32);
        next = torch::zeros({B}, torch::kInt64);
        for (int64_t b = 0; b < B; ++b) {
          if (!done[static_cast<size_t>(b)]) {
            next[b] = sample(lc[b], opts.temperature, opts.top_p, gens[static_cast<size_t>(b)]);
          }
        }
      }
      auto na = next.accessor<int64_t, 1>();
      bool all_done = true;
      for (int64_t b = 0; b < B; ++b) {
        const size_t r = static_cast<size_t>(b);
        if (done[r]) continue;
        Generation& g = out[start + r];
        g.tokens.push_back(static_cast<int32_t>(na[b]));
        if (opts.record_top_k > 0) {
          rec_v[r].push_back(tk_v[b]);
          rec_i[r].push_back(tk_i[b]);
        }
        if (is_eos(na[b])) {
          done[r] = true;
          g.finish_reason = "eos";
        } else if (opts.stop && opts.stop(start + r, g.tokens)) {
          done[r] = true;
          g.finish_reason = "stop";
        }
        all_done = all_done && done[r];
      }
      if (all_done || step + 1 == opts.max_new_tokens) break;
      // Finished rows stay in the batch (so row indices keep their meaning) but their outputs no
      // longer grow.
      for (size_t m = 0; m < M; ++m) {
        masks[m] = torch::cat({masks[m], torch::ones({B, 1}, masks[m].options())}, 1);
        f[m] = e.members[m].model->forward(next.unsqueeze(1), masks[m], &caches[m]);
      }
    }
    for (int64_t b = 0; b < B; ++b) {
      const size_t r = static_cast<size_t>(b);
      if (opts.record_top_k <= 0) continue;
      Generation& g = out[start + r];
      g.topk_logits = rec_v[r].empty() ? torch::zeros({0, opts.record_top_k}) : torch::stack(rec_v[r]);
      g.topk_ids = rec_i[r].empty() ? torch::zeros({0, opts.record_top_k}, torch::kInt64) : torch::stack(rec_i[r]);
    }
  }
  return out;
}

std::vector<Generation> generate(const CausalLM& model, const std::vector<std::vector<int32_t>>& prompts,
                                 const GenerateOptions& opts) {
  return generate(Ensemble::of(model), MemberPrompts{prompts}, opts);
}

}  // namespace sf::model
