#include "model/generate.hpp"

#include <algorithm>
#include <numeric>

#include "core/error.hpp"
#include "model/batching.hpp"

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

// Rows `rows` of `seqs` sorted longest first (ties in the given order) and cut into batches that pad
// little, at most max_rows each (model/batching.hpp).
std::vector<std::vector<size_t>> batches_by_length(const std::vector<std::vector<int32_t>>& seqs,
                                                   std::vector<size_t> rows, int64_t max_rows) {
  std::vector<int64_t> lengths(seqs.size(), 0);
  for (size_t r : rows) lengths[r] = static_cast<int64_t>(seqs[r].size());
  std::stable_sort(rows.begin(), rows.end(), [&](size_t a, size_t b) { return lengths[a] > lengths[b]; });
  return length_batches(lengths, rows, max_rows);
}

// Rows of logits made at a time when scoring: 24 MiB of float32 logits at SmolLM2's 49152 ids, so
// the buffer is reused from the heap, not mapped afresh (and zeroed by the kernel) for each batch,
// and the top-k reads each block soon after the lm_head wrote it.
constexpr int64_t kLogitRows = 128;

}  // namespace

ScoreOutput score(const CausalLM& model, const std::vector<std::vector<int32_t>>& sequences, const ScoreOptions& opts) {
  torch::InferenceMode guard;
  const int64_t V = model.config().vocab_size;
  const VocabParallel& vocab = model.vocab();
  if (opts.batch_size <= 0) throw ShapeError("score: batch_size must be positive");
  if (opts.top_k < 0 || opts.top_k > V) throw ShapeError("score: top_k must be in [0, vocab_size]");
  for (size_t i = 0; i < sequences.size(); ++i) check_ids(sequences[i], i, V, "sequence");
  const size_t N = sequences.size();
  const bool partial = !opts.from.empty();
  if (partial && opts.from.size() != N)
    throw ShapeError("score: " + std::to_string(opts.from.size()) + " entries in `from` for " + std::to_string(N) +
                     " sequences");
  for (size_t i = 0; i < opts.from.size(); ++i)
    if (opts.from[i] < 0 || opts.from[i] > static_cast<int64_t>(sequences[i].size()))
      throw ShapeError("score: from[" + std::to_string(i) + "] = " + std::to_string(opts.from[i]) + " is outside [0, " +
                       std::to_string(sequences[i].size()) + "]");
  const auto first = [&](size_t i) { return partial ? opts.from[i] : int64_t{0}; };
  ScoreOutput out;
  if (!partial) out.token_logprobs.resize(N);
  if (opts.top_k > 0) {
    out.topk_logits.resize(N);
    out.topk_ids.resize(N);
  }
  if (opts.hidden) out.hidden.resize(N);

  // Right padding, in batches of similar lengths.
  const auto cpu = torch::TensorOptions().dtype(torch::kFloat32);
  for (const std::vector<size_t>& rows : batches_by_length(sequences, range(0, N), opts.batch_size)) {
    const auto B = static_cast<int64_t>(rows.size());
    const auto T = static_cast<int64_t>(sequences[rows[0]].size());
    if (T == 0) {  // only empty sequences are left
      for (size_t i : rows) {
        if (!partial) out.token_logprobs[i] = torch::zeros({0}, cpu);
        if (opts.top_k > 0) {
          out.topk_logits[i] = torch::zeros({0, opts.top_k}, cpu);
          out.topk_ids[i] = torch::zeros({0, opts.top_k}, torch::kInt64);
        }
        if (opts.hidden) out.hidden[i] = torch::zeros({0, model.config().hidden_size}, cpu);
      }
      continue;
    }
    const auto [ids, mask] = pad(sequences, rows, /*left=*/false);
    // Hidden states for positions [off, T), which hold every row's [from_i, n_i) under right padding.
    int64_t off = T;
    for (size_t i : rows) off = std::min(off, first(i));
    const int64_t S = std::max<int64_t>(T - off, 1);
    off = T - S;
    const torch::Tensor h = model.hidden_states(ids, mask, nullptr, partial ? S : 0);  // [B,S,Hd]
    // The lm_head runs on the wanted rows only (no padding, no positions before `from`): [M,Hd].
    std::vector<int64_t> flat, next;
    auto ia = ids.accessor<int64_t, 2>();
    for (int64_t b = 0; b < B; ++b) {
      const size_t i = rows[static_cast<size_t>(b)];
      const int64_t n = static_cast<int64_t>(sequences[i].size());
      for (int64_t t = first(i); t < n; ++t) {
        flat.push_back(b * S + t - off);
        next.push_back(t + 1 < n ? ia[b][t + 1] : 0);
      }
    }
    const auto M = static_cast<int64_t>(flat.size());
    const torch::Tensor wanted =
        h.reshape({B * S, h.size(2)}).index_select(0, torch::tensor(flat, torch::kInt64).to(h.device()));  // [M,Hd]
    // lp[m] = log p(x_{t+1} | x_<=t) for row m = (b, t) (the row of a sequence's last position is
    // unused), and the top-k of each row, from the logits of kLogitRows rows at a time.
    torch::Tensor lp = torch::empty({partial ? 0 : M}, cpu), tk_v, tk_i;
    if (opts.top_k > 0) {
      tk_v = torch::empty({M, opts.top_k}, cpu);
      tk_i = torch::empty({M, opts.top_k}, torch::kInt64);
    }
    const torch::Tensor targets = torch::tensor(next, torch::kInt64).to(h.device());
    for (int64_t m = 0; m < M; m += kLogitRows) {
      const int64_t n = std::min(kLogitRows, M - m);
      const torch::Tensor logits = model.logits(wanted.narrow(0, m, n));  // [n,V] (this rank's V when split)
      if (!partial) lp.narrow(0, m, n).copy_(vocab.pick(logits, targets.narrow(0, m, n)) - vocab.logsumexp(logits));
      if (opts.top_k > 0) {
        const TopK tk = vocab.topk(logits, opts.top_k);  // [n,k]
        tk_v.narrow(0, m, n).copy_(tk.values);
        tk_i.narrow(0, m, n).copy_(tk.ids);
      }
    }
    const torch::Tensor hid = opts.hidden ? wanted.to(torch::kCPU, torch::kFloat32) : torch::Tensor();  // [M,Hd]
    int64_t m0 = 0;
    for (int64_t b = 0; b < B; ++b) {
      const size_t i = rows[static_cast<size_t>(b)];
      const int64_t n = static_cast<int64_t>(sequences[i].size()) - first(i);
      if (!partial) {
        out.token_logprobs[i] = torch::zeros({n}, cpu);
        if (n > 1) out.token_logprobs[i].narrow(0, 1, n - 1).copy_(lp.narrow(0, m0, n - 1));
      }
      if (opts.top_k > 0) {
        out.topk_logits[i] = n > 0 ? tk_v.narrow(0, m0, n).clone() : torch::zeros({0, opts.top_k}, cpu);
        out.topk_ids[i] = n > 0 ? tk_i.narrow(0, m0, n).clone() : torch::zeros({0, opts.top_k}, torch::kInt64);
      }
      if (opts.hidden) out.hidden[i] = hid.narrow(0, m0, n).clone();
      m0 += n;
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

namespace {

// One ensemble member's part of the running batch: row b of every tensor is batch slot b.
struct MemberBatch {
  KVCache cache;
  torch::Tensor mask;    // [B,L] int64 on the model's device: 1 where slot b attends
  torch::Tensor logits;  // [B,V] float32: the next-token logits of each slot
  torch::Tensor hidden;  // [B,H] float32: the final hidden state behind them
};

// Rows `rows` in the batches of similar lengths their prompt pass takes (by the first member's
// prompts: every member's prompt pass uses the same batches, so slots agree across members).
std::vector<std::vector<size_t>> prompt_batches(const MemberPrompts& prompts, const std::vector<size_t>& rows) {
  return batches_by_length(prompts[0], rows, static_cast<int64_t>(rows.size()));
}

std::vector<size_t> concat(const std::vector<std::vector<size_t>>& batches) {
  std::vector<size_t> rows;
  for (const auto& batch : batches) rows.insert(rows.end(), batch.begin(), batch.end());
  return rows;
}

// The prompt pass of the rows of `batches` (in that order: slot b of the running batch is their
// b-th row), left padded to the longest, one forward per batch, into one running batch whose cache
// has room for `more` positions. Each forward writes its keys and values straight into the rows
// and the last positions of the batch's cache that its batch takes.
MemberBatch prefill(const CausalLM& model, const std::vector<std::vector<int32_t>>& prompts,
                    const std::vector<std::vector<size_t>>& batches, int64_t more = 0) {
  MemberBatch s;
  s.mask = pad(prompts, concat(batches), /*left=*/true).second.to(model.device());  // [B,P]
  const int64_t B = s.mask.size(0), P = s.mask.size(1);
  s.cache = model.make_cache(B, P + more);
  int64_t first = 0;  // the batch's first slot
  for (const std::vector<size_t>& batch : batches) {
    const auto [ids, mask] = pad(prompts, batch, /*left=*/true);  // [n,Pb]
    const int64_t n = ids.size(0), Pb = ids.size(1);
    s.cache.zero_front(first, n, P - Pb);
    KVCache part = s.cache.window(first, n, P - Pb);
    const ForwardOutput f = model.forward(ids, mask.to(model.device()), &part, /*last_n=*/1);  // [n,1,V]
    if (!s.logits.defined()) {
      s.logits = torch::empty({B, f.logits.size(2)}, f.logits.options());
      s.hidden = torch::empty({B, f.hidden.size(2)}, f.hidden.options());
    }
    s.logits.narrow(0, first, n).copy_(f.logits.select(1, 0));
    s.hidden.narrow(0, first, n).copy_(f.hidden.select(1, 0));
    first += n;
  }
  s.cache.length_ = P;
  return s;
}

// Fresh rows j (from `prefill`) take over slots[j] of the running batch.
void splice(MemberBatch& run, const MemberBatch& fresh, const std::vector<int64_t>& slots) {
  const int64_t L = run.cache.length(), P = fresh.cache.length();
  if (P > L) {
    run.cache.pad_front(P - L);
    run.mask = torch::cat({torch::zeros({run.mask.size(0), P - L}, run.mask.options()), run.mask}, 1);
  }
  const int64_t width = run.cache.length();
  for (size_t j = 0; j < slots.size(); ++j) {
    const auto s = slots[j];
    const auto jj = static_cast<int64_t>(j);
    run.cache.put_row(s, fresh.cache, jj);
    run.mask[s].zero_();
    run.mask[s].narrow(0, width - P, P).copy_(fresh.mask[jj]);
    run.logits[s].copy_(fresh.logits[jj]);
    run.hidden[s].copy_(fresh.hidden[jj]);
  }
}

// Keeps slots `keep` (in keep_rows' order; `slots`: the same on the model's device).
void keep_slots(MemberBatch& run, const std::vector<int64_t>& keep, const torch::Tensor& slots) {
  run.cache.keep_rows(keep);
  run.mask = run.mask.index_select(0, slots);
  run.logits = run.logits.index_select(0, slots);
  run.hidden = run.hidden.index_select(0, slots);
}

// The kept slots (ascending) in the order that moves the fewest cache rows: a kept slot below their
// count stays where it is, and the gaps among those take the kept slots beyond the count
// (KVCache::keep_rows copies each moved row once; keeping the order would move every row after the
// first gap).
std::vector<int64_t> fill_gaps(const std::vector<int64_t>& kept) {
  const auto n = static_cast<int64_t>(kept.size());
  std::vector<int64_t> order(kept.size(), -1), beyond;
  for (int64_t s : kept) {
    if (s < n) {
      order[static_cast<size_t>(s)] = s;
    } else {
      beyond.push_back(s);
    }
  }
  for (int64_t& o : order) {
    if (o >= 0) continue;
    o = beyond.back();
    beyond.pop_back();
  }
  return order;
}

// Drops the leading positions no slot attends to any more (those of finished rows).
void trim(MemberBatch& run) {
  const torch::Tensor used = run.mask.any(0).nonzero();  // [n,1]
  if (used.size(0) == 0) return;
  const int64_t first = used[0][0].item<int64_t>();
  if (first == 0) return;
  run.cache.drop_front(first);
  run.mask = run.mask.narrow(1, first, run.mask.size(1) - first);
}

}  // namespace

// Continuous batching: up to batch_size rows decode together; when a row ends, its slot takes the
// next waiting row at once (its prompt pass spliced into the running KV cache); when none waits,
// the slot is dropped. Each row's result is that of decoding it alone, up to float rounding.
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
  const torch::Device device = e.members[0].model->device();
  std::vector<Generation> out(rows);
  for (Generation& g : out) g.finish_reason = "length";
  if (opts.max_new_tokens == 0 || rows == 0) return out;
  const auto is_eos = [&](int64_t id) {
    return std::find(opts.eos_ids.begin(), opts.eos_ids.end(), id) != opts.eos_ids.end();
  };
  std::vector<at::Generator> gens(rows);
  std::vector<std::vector<torch::Tensor>> rec_v(rows), rec_i(rows);

  std::vector<MemberBatch> run(M);
  std::vector<size_t> slot_row;  // the row decoded in each slot
  size_t waiting = std::min(rows, static_cast<size_t>(opts.batch_size));
  const std::vector<std::vector<size_t>> first_batches = prompt_batches(prompts, range(0, waiting));
  slot_row = concat(first_batches);
  const auto admit = [&](const std::vector<size_t>& new_rows) {
    for (size_t r : new_rows) {
      if (!opts.greedy) gens[r] = at::detail::createCPUGenerator(mix_seed(opts.seed, r));
    }
  };
  admit(slot_row);
  for (size_t m = 0; m < M; ++m) run[m] = prefill(*e.members[m].model, prompts[m], first_batches, opts.max_new_tokens);

  while (!slot_row.empty()) {
    const auto B = static_cast<int64_t>(slot_row.size());
    std::vector<torch::Tensor> last(M);
    for (size_t m = 0; m < M; ++m) last[m] = run[m].logits;
    const torch::Tensor logits = e.combine(last, run[0].hidden).contiguous();  // [B,V] (V_local when split)
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
        next[b] = sample(lc[b], opts.temperature, opts.top_p, gens[slot_row[static_cast<size_t>(b)]]);
      }
    }
    auto na = next.accessor<int64_t, 1>();
    std::vector<int64_t> going, ended;  // slots
    for (int64_t b = 0; b < B; ++b) {
      const size_t r = slot_row[static_cast<size_t>(b)];
      Generation& g = out[r];
      g.tokens.push_back(static_cast<int32_t>(na[b]));
      if (opts.record_top_k > 0) {
        rec_v[r].push_back(tk_v[b]);
        rec_i[r].push_back(tk_i[b]);
      }
      bool done = true;
      if (is_eos(na[b])) {
        g.finish_reason = "eos";
      } else if (opts.stop && opts.stop(r, g.tokens)) {
        g.finish_reason = "stop";
      } else {
        done = static_cast<int64_t>(g.tokens.size()) == opts.max_new_tokens;
      }
      (done ? ended : going).push_back(b);
    }
    // Slots of ended rows: refilled while rows wait, dropped otherwise.
    const size_t refill = std::min(ended.size(), rows - waiting);
    if (refill < ended.size()) {
      std::vector<int64_t> keep = going;
      keep.insert(keep.end(), ended.begin(), ended.begin() + static_cast<std::ptrdiff_t>(refill));
      std::sort(keep.begin(), keep.end());
      keep = fill_gaps(keep);
      std::vector<size_t> kept_rows;
      for (int64_t b : keep) kept_rows.push_back(slot_row[static_cast<size_t>(b)]);
      std::vector<bool> is_going(static_cast<size_t>(B), false);
      for (int64_t b : going) is_going[static_cast<size_t>(b)] = true;
      std::vector<int64_t> new_going, new_ended;
      for (size_t i = 0; i < keep.size(); ++i) {
        (is_going[static_cast<size_t>(keep[i])] ? new_going : new_ended).push_back(static_cast<int64_t>(i));
      }
      const torch::Tensor idx = torch::tensor(keep, torch::kInt64).to(device);
      for (MemberBatch& mb : run) keep_slots(mb, keep, idx);
      next = next.index_select(0, torch::tensor(keep, torch::kInt64));
      slot_row = kept_rows;
      going = new_going;
      ended = new_ended;
    }
    if (slot_row.empty()) break;
    // One decoding step for the rows that go on; a slot about to be refilled rides along masked.
    if (!going.empty()) {
      torch::Tensor column = torch::zeros({static_cast<int64_t>(slot_row.size()), 1}, torch::kInt64);
      for (int64_t b : going) column[b][0] = 1;
      for (size_t m = 0; m < M; ++m) {
        MemberBatch& mb = run[m];
        mb.mask = torch::cat({mb.mask, column.to(device)}, 1);
        const ForwardOutput f = e.members[m].model->forward(next.unsqueeze(1), mb.mask, &mb.cache);  // [B,1,V]
        mb.logits = f.logits.select(1, 0);
        mb.hidden = f.hidden.select(1, 0);
      }
    }
    if (!ended.empty()) {
      const std::vector<std::vector<size_t>> batches = prompt_batches(prompts, range(waiting, waiting + ended.size()));
      const std::vector<size_t> new_rows = concat(batches);
      waiting += ended.size();
      admit(new_rows);
      for (size_t m = 0; m < M; ++m) splice(run[m], prefill(*e.members[m].model, prompts[m], batches), ended);
      for (size_t i = 0; i < ended.size(); ++i) slot_row[static_cast<size_t>(ended[i])] = new_rows[i];
    }
    for (MemberBatch& mb : run) trim(mb);
  }
  for (size_t r = 0; r < rows && opts.record_top_k > 0; ++r) {
    Generation& g = out[r];
    g.topk_logits = rec_v[r].empty() ? torch::zeros({0, opts.record_top_k}) : torch::stack(rec_v[r]);
    g.topk_ids = rec_i[r].empty() ? torch::zeros({0, opts.record_top_k}, torch::kInt64) : torch::stack(rec_i[r]);
  }
  return out;
}

std::vector<Generation> generate(const CausalLM& model, const std::vector<std::vector<int32_t>>& prompts,
                                 const GenerateOptions& opts) {
  return generate(Ensemble::of(model), MemberPrompts{prompts}, opts);
}

}  // namespace sf::model
