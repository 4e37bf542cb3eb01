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
  if (opts.full_logprobs) out.logprobs.resize(N);
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
        if (opts.full_logprobs) out.logprobs[i] = torch::zeros({0, vocab.local_size()}, cpu);
        if (opts.hidden) out.hidden[i] = torch::zeros({0, model.config().hidden_size}, cpu);
      }
      continue;
    }
    torch::Tensor ids = torch::zeros({B, T}, torch::kInt64);
    torch::Tensor mask = torch::zeros({B, T}, torch::kInt64);
    auto ia = ids.accessor<int64_t, 2>();
    auto ma = mask.accessor<int64_t, 2>();
    for (int64_t b = 0; b < B; ++b) {
      const auto& s = sequences[order[start + static_cast<size_t>(b)]];
      for (size_t t = 0; t < s.size(); ++t) {
        ia[b][static_cast<int64_t>(t)] = s[t];
        ma[b][static_cast<int64_t>(t)] = 1;
      }
    }
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
    torch::Tensor full = opts.full_logprobs ? vocab.log_softmax(logits).cpu() : torch::Tensor();
    torch::Tensor hid = opts.hidden ? f.hidden.cpu() : torch::Tensor();
    for (int64_t b = 0; b < B; ++b) {
      const size_t i = order[start + static_cast<size_t>(b)];
      const int64_t n = static_cast<int64_t>(sequences[i].size());
      out.token_logprobs[i] = lp[b].narrow(0, 0, n).clone();
      if (opts.top_k > 0) {
        out.topk_logits[i] = tk_v[b].narrow(0, 0, n).clone();
        out.topk_ids[i] = tk_i[b].narrow(0, 0, n).clone();
      }
      if (opts.full_logprobs) out.logprobs[i] = full[b].narrow(0, 0, n).clone();
      if (opts.hidden) out.hidden[i] = hid[b].narrow(0, 0, n).clone();
    }
  }
  return out;
}

std::vector<Generation> generate(const CausalLM& model, const std::vector<std::vector<int32_t>>& prompts,
                                 const GenerateOptions& opts) {
  torch::InferenceMode guard;
  const int64_t V = model.config().vocab_size;
  const VocabParallel& vocab = model.vocab();
  if (opts.batch_size <= 0) throw ShapeError("generate: batch_size must be positive");
  if (opts.max_new_tokens < 0) throw ShapeError("generate: max_new_tokens must be >= 0");
  if (opts.record_top_k < 0 || opts.record_top_k > V) throw ShapeError("generate: record_top_k must be in [0, vocab]");
  if (!opts.greedy && (opts.temperature <= 0 || opts.top_p <= 0 || opts.top_p > 1)) {
    throw ShapeError("generate: sampling needs temperature > 0 and top_p in (0, 1]");
  }
  for (size_t i = 0; i < prompts.size(); ++i) {
    if (prompts[i].empty()) throw ShapeError("generate: prompt " + std::to_string(i) + " is empty");
    check_ids(prompts[i], i, V, "prompt");
  }
  std::vector<Generation> out(prompts.size());
  const auto is_eos = [&](int64_t id) {
    return std::find(opts.eos_ids.begin(), opts.eos_ids.end(), id) != opts.eos_ids.end();
  };
  for (size_t start = 0; start < prompts.size(); start += static_cast<size_t>(opts.batch_size)) {
    const size_t end = std::min(prompts.size(), start + static_cast<size_t>(opts.batch_size));
    const int64_t B = static_cast<int64_t>(end - start);
    int64_t P = 0;
    for (size_t i = start; i < end; ++i) P = std::max<int64_t>(P, static_cast<int64_t>(prompts[i].size()));
    // Left padding: the last column is every row's newest token.
    torch::Tensor ids = torch::zeros({B, P}, torch::kInt64);
    torch::Tensor mask = torch::zeros({B, P}, torch::kInt64);
    auto ia = ids.accessor<int64_t, 2>();
    auto ma = mask.accessor<int64_t, 2>();
    for (int64_t b = 0; b < B; ++b) {
      const auto& p = prompts[start + static_cast<size_t>(b)];
      const int64_t off = P - static_cast<int64_t>(p.size());
      for (size_t t = 0; t < p.size(); ++t) {
        ia[b][off + static_cast<int64_t>(t)] = p[t];
        ma[b][off + static_cast<int64_t>(t)] = 1;
      }
    }
    std::vector<at::Generator> gens;
    if (!opts.greedy) {
      for (size_t i = start; i < end; ++i) gens.push_back(at::detail::createCPUGenerator(mix_seed(opts.seed, i)));
    }
    std::vector<bool> done(static_cast<size_t>(B), false);
    std::vector<std::vector<torch::Tensor>> rec_v(static_cast<size_t>(B)), rec_i(static_cast<size_t>(B));
    for (int64_t b = 0; b < B; ++b) out[start + static_cast<size_t>(b)].finish_reason = "length";
    mask = mask.to(model.device());
    KVCache cache;
    cache.reserve(P + opts.max_new_tokens);
    ForwardOutput f = opts.max_new_tokens > 0 ? model.forward(ids, mask, &cache, /*last_n=*/1) : ForwardOutput{};
    for (int64_t step = 0; step < opts.max_new_tokens; ++step) {
      torch::Tensor logits = f.logits.select(1, f.logits.size(1) - 1).contiguous();  // [B,V] (V_local when split)
      const torch::Tensor hidden = f.hidden.select(1, f.hidden.size(1) - 1);         // [B,H]
      if (opts.logits_hook) opts.logits_hook(logits, hidden, step);
      torch::Tensor tk_v, tk_i;
      if (opts.record_top_k > 0) {
        const TopK tk = vocab.topk(logits, opts.record_top_k);
        tk_v = tk.values.to(torch::kCPU, torch::kFloat32);
        tk_i = tk.ids.cpu();
      }
      torch::Tensor next;  // [B] int64 on CPU
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
      // Finished rows stay in the batch (so hook rows keep their meaning) but their outputs no
      // longer grow.
      mask = torch::cat({mask, torch::ones({B, 1}, mask.options())}, 1);
      f = model.forward(next.unsqueeze(1), mask, &cache);
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

}  // namespace sf::model
