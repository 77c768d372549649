#include "tokenizer/tokenizer_model.h"

#include "tokenizer/unicode_text.h"

#include <array>

#include "base/log.h"

namespace so {

int byte_token_value(std::string_view text) {
  if (text.size() != 6 || !text.starts_with("<0x") || text[5] != '>') return -1;
  int value = 0;
  for (char c : text.substr(3, 2)) {
    value <<= 4;
    if (c >= '0' && c <= '9') {
      value |= c - '0';
    } else if (c >= 'A' && c <= 'F') {
      value |= c - 'A' + 10;
    } else {
      return -1;
    }
  }
  return value;
}

bool is_end_of_turn_text(std::string_view text) {
  static constexpr std::array<std::string_view, 8> kEndOfTurnTexts = {
      "<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<|endoftext|>", "<|end_of_text|>", "<end_of_turn>", "<|end|>", "<EOT>",
  };
  for (std::string_view known : kEndOfTurnTexts) {
    if (text == known) return true;
  }
  return false;
}

BpeTokenizer::BpeTokenizer(TokenizerSpec spec) : spec_(std::move(spec)) {}

Status BpeTokenizer::prepare() {
  const size_t n_vocab = spec_.token_texts.size();
  if (n_vocab == 0) return format_error("the tokenizer has an empty vocabulary; expected at least one token");
  if (spec_.token_types.empty()) spec_.token_types.assign(n_vocab, TokenType::kNormal);
  if (spec_.token_types.size() != n_vocab) {
    return format_error("the tokenizer has ", n_vocab, " tokens but ", spec_.token_types.size(),
                        " token types; expected one type per token");
  }
  if (!spec_.token_scores.empty() && spec_.token_scores.size() != n_vocab) {
    return format_error("the tokenizer has ", n_vocab, " tokens but ", spec_.token_scores.size(),
                        " scores; expected one score per token");
  }
  if (spec_.merge_by_score && spec_.token_scores.empty()) spec_.token_scores.assign(n_vocab, 0.0f);
  const auto check_id = [&](int32_t id, std::string_view what) -> Status {
    if (id >= static_cast<int64_t>(n_vocab) || id < -1) {
      return format_error("the ", what, " token id is ", id, " but the vocabulary has ", n_vocab,
                          " tokens; expected an id below ", n_vocab);
    }
    return Status::Ok();
  };
  SO_TRY(check_id(spec_.bos_id, "BOS"));
  SO_TRY(check_id(spec_.eos_id, "EOS"));
  SO_TRY(check_id(spec_.unk_id, "unknown"));
  for (int32_t id : spec_.end_of_generation_ids) SO_TRY(check_id(id, "end-of-generation"));

  token_ids_.reserve(n_vocab);
  // note: llama.cpp lets a later duplicate text win; so do we.
  for (size_t id = 0; id < n_vocab; ++id) token_ids_[spec_.token_texts[id]] = static_cast<int32_t>(id);

  if (!spec_.merge_by_score) {
    merge_ranks_.reserve(spec_.merges.size());
    size_t n_skipped = 0;
    for (size_t rank = 0; rank < spec_.merges.size(); ++rank) {
      const auto& [left, right] = spec_.merges[rank];
      const int32_t left_id = find_token(left), right_id = find_token(right), merged_id = find_token(left + right);
      if (left_id < 0 || right_id < 0 || merged_id < 0) {
        ++n_skipped;
        continue;
      }
      merge_ranks_.insert(left_id, right_id, static_cast<int32_t>(rank), merged_id);
    }
    if (n_skipped > 0) {
      SO_LOG(Warn, "tokenizer: ", n_skipped, " of ", spec_.merges.size(),
             " merges name tokens that are not in the vocabulary; they are ignored");
    }
  }

  token_is_added_.assign(n_vocab, 0);
  for (size_t id = 0; id < n_vocab; ++id) {
    const TokenType type = spec_.token_types[id];
    if (type == TokenType::kControl || type == TokenType::kUserDefined || type == TokenType::kUnknown) {
      token_is_added_[id] = 1;
    }
  }
  for (const AddedToken& token : spec_.added_tokens) {
    if (token.id < 0 || token.id >= static_cast<int64_t>(n_vocab)) {
      return format_error("added token ", quote_for_message(token.content), " has id ", token.id,
                          " outside the vocabulary of ", n_vocab, " tokens");
    }
    token_is_added_[token.id] = 1;
  }
  added_tokens_ = AddedTokenMatcher(spec_.added_tokens);

  end_of_generation_.assign(n_vocab, 0);
  if (spec_.eos_id >= 0) end_of_generation_[spec_.eos_id] = 1;
  for (int32_t id : spec_.end_of_generation_ids) end_of_generation_[id] = 1;
  for (size_t id = 0; id < n_vocab; ++id) {
    if (is_end_of_turn_text(spec_.token_texts[id])) end_of_generation_[id] = 1;
  }
  return Status::Ok();
}

int32_t BpeTokenizer::find_token(std::string_view text) const {
  auto it = token_ids_.find(text);
  return it == token_ids_.end() ? -1 : it->second;
}

bool BpeTokenizer::is_end_of_generation(int32_t token) const {
  return token >= 0 && token < n_vocab() && end_of_generation_[token] != 0;
}

void BpeTokenizer::encode_piece(std::string_view piece, std::vector<int32_t>& out) const {
  if (spec_.ignore_merges) {
    const int32_t whole = whole_piece_token(piece);
    if (whole >= 0) {
      out.push_back(whole);
      return;
    }
  }
  std::vector<BpeSymbol> symbols = initial_symbols(piece);
  if (symbols.empty()) return;
  if (spec_.merge_by_score) {
    bpe_merge_symbols(symbols, [&](const BpeSymbol& left, const BpeSymbol& right) -> std::optional<BpeMergeCandidate> {
      const int32_t merged = find_token(piece.substr(left.begin, right.end - left.begin));
      if (merged < 0) return std::nullopt;
      return BpeMergeCandidate{-static_cast<double>(spec_.token_scores[merged]), merged};
    });
  } else {
    bpe_merge_symbols(symbols, [&](const BpeSymbol& left, const BpeSymbol& right) -> std::optional<BpeMergeCandidate> {
      if (left.token < 0 || right.token < 0) return std::nullopt;
      const BpePairTable::Entry* merge = merge_ranks_.find(left.token, right.token);
      if (!merge) return std::nullopt;
      return BpeMergeCandidate{static_cast<double>(merge->rank), merge->merged};
    });
  }
  for (int32_t i = 0; i >= 0; i = symbols[i].next) {
    const BpeSymbol& symbol = symbols[i];
    if (symbol.token >= 0) {
      out.push_back(symbol.token);
    } else {
      append_untokenized(piece.substr(symbol.begin, symbol.end - symbol.begin), out);
    }
  }
}

std::vector<int32_t> BpeTokenizer::encode_split(std::string_view text, bool add_bos, bool parse_special,
                                                std::span<const TextRange> literal) const {
  std::vector<int32_t> out;
  // note: words repeat in natural text; remembering short pieces for the length of this
  // call makes a megabyte of English several times faster and needs no locking.
  TokenTextMap cached_ranges;                               // piece -> index into cached_spans
  std::vector<std::pair<uint32_t, uint32_t>> cached_spans;  // [begin, end) in cached_ids
  std::vector<int32_t> cached_ids;
  constexpr size_t kMaxCachedPiece = 48;
  for (const TextFragment& fragment : added_tokens_.split(text, parse_special, literal)) {
    if (fragment.token >= 0) {
      out.push_back(fragment.token);
      continue;
    }
    // note: byte-level BPE reads text as llama.cpp does, invalid UTF-8 bytes as U+FFFD.
    const std::string repaired = repairs_invalid_utf8() ? utf8_lenient_repair(fragment.text) : std::string();
    const std::string_view text_view = repairs_invalid_utf8() ? std::string_view(repaired) : fragment.text;
    for (std::string& piece : spec_.pre_tokenizer.run(text_view, fragment.offset == 0)) {
      if (piece.size() > kMaxCachedPiece) {
        encode_piece(piece, out);
        continue;
      }
      if (auto it = cached_ranges.find(piece); it != cached_ranges.end()) {
        const auto [begin, end] = cached_spans[it->second];
        out.insert(out.end(), cached_ids.begin() + begin, cached_ids.begin() + end);
        continue;
      }
      const size_t first = out.size();
      encode_piece(piece, out);
      cached_spans.emplace_back(cached_ids.size(), cached_ids.size() + (out.size() - first));
      cached_ids.insert(cached_ids.end(), out.begin() + first, out.end());
      cached_ranges.emplace(std::move(piece), static_cast<int32_t>(cached_spans.size() - 1));
    }
  }
  const bool wants_bos = add_bos && spec_.add_bos && spec_.bos_id >= 0;
  if (wants_bos && (out.empty() || out.front() != spec_.bos_id)) out.insert(out.begin(), spec_.bos_id);
  return out;
}

std::string BpeTokenizer::decode(std::span<const int32_t> tokens) const {
  std::string out;
  // note: the encoder put one space ("▁") in front of the first text fragment, or of every
  // fragment after a special token; taking exactly that space away makes decode(encode(x)) == x.
  bool strip_next = spec_.space_prefix != SpacePrefix::kNone;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const int32_t token = tokens[i];
    if (token < 0 || token >= n_vocab()) continue;
    const std::string& bytes = token_bytes_[token];
    const TokenType type = spec_.token_types[token];
    if (type == TokenType::kControl || type == TokenType::kUserDefined) {  // a fragment boundary
      out += bytes;
      const bool leading_bos = i == 0 && token == spec_.bos_id;
      if (spec_.space_prefix == SpacePrefix::kEveryFragment) {
        strip_next = true;
      } else if (!leading_bos) {
        strip_next = false;
      }
      continue;
    }
    if (strip_next && !bytes.empty() && bytes[0] == ' ') {
      out.append(bytes, 1);
    } else {
      out += bytes;
    }
    strip_next = false;
  }
  return out;
}

std::string BpeTokenizer::token_to_piece(int32_t token) const {
  if (token < 0 || token >= n_vocab()) return {};
  return token_bytes_[token];
}

Result<std::unique_ptr<Tokenizer>> make_tokenizer(TokenizerSpec spec) {
  if (spec.kind == TokenizerKind::kByteLevelBpe) return make_byte_level_bpe(std::move(spec));
  return make_sentencepiece_bpe(std::move(spec));
}

}  // namespace so
