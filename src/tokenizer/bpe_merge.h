// The BPE merge loop shared by both tokenizer kinds. Symbols start as bytes (byte-level) or
// characters (SentencePiece); neighbouring pairs are merged best-first until none merges.
// "Best" is the lowest priority value: the merge rank (Hugging Face, GPT-2 style GGUF) or
// minus the merged token's score (llama.cpp SentencePiece). Ties go to the leftmost pair,
// as both references do. A heap over candidate pairs keeps this O(n log n) per piece.
#pragma once

#include <cstdint>
#include <optional>
#include <queue>
#include <vector>

namespace so {

struct BpeSymbol {
  int32_t token = -1;  // -1: not (yet) a token, e.g. a character outside the vocabulary
  uint32_t begin = 0;  // byte range in the piece
  uint32_t end = 0;
  int32_t prev = -1;   // neighbours in the live chain; a merged-away symbol has end == begin
  int32_t next = -1;
};

struct BpeMergeCandidate {
  double priority = 0;  // lower merges first
  int32_t token = -1;   // the merged token
};

// symbols: one entry per initial unit, linked in order (prev/next set by the caller or by
// bpe_link_symbols). find_merge(const BpeSymbol& left, const BpeSymbol& right) returns
// std::optional<BpeMergeCandidate>. On return, the live chain starts at index 0.
template <typename FindMerge>
void bpe_merge_symbols(std::vector<BpeSymbol>& symbols, FindMerge&& find_merge) {
  struct Candidate {
    double priority;
    int32_t left;
    int32_t right;
    int32_t token;
    uint32_t left_end;   // left's end when queued: a later merge of left invalidates this
    uint32_t right_end;  // same for right
  };
  struct Worse {
    bool operator()(const Candidate& a, const Candidate& b) const {
      return a.priority > b.priority || (a.priority == b.priority && a.left > b.left);
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, Worse> queue;
  auto try_queue = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const BpeSymbol& l = symbols[left];
    const BpeSymbol& r = symbols[right];
    if (std::optional<BpeMergeCandidate> merge = find_merge(l, r)) {
      queue.push({merge->priority, left, right, merge->token, l.end, r.end});
    }
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(symbols.size()); ++i) try_queue(i, i + 1);
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    BpeSymbol& left = symbols[top.left];
    BpeSymbol& right = symbols[top.right];
    const bool stale = left.end == left.begin || right.end == right.begin || left.next != top.right ||
                       left.end != top.left_end || right.end != top.right_end;
    if (stale) continue;
    left.end = right.end;
    left.token = top.token;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = top.left;
    right.end = right.begin;  // merged away
    try_queue(left.prev, top.left);
    try_queue(top.left, left.next);
  }
}

// Sets prev/next so that symbols form one chain in index order.
inline void bpe_link_symbols(std::vector<BpeSymbol>& symbols) {
  const int32_t n = static_cast<int32_t>(symbols.size());
  for (int32_t i = 0; i < n; ++i) {
    symbols[i].prev = i - 1;
    symbols[i].next = i + 1 < n ? i + 1 : -1;
  }
}

}  // namespace so
