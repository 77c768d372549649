#include "tokenizer/pretokenizer.h"

#include "tokenizer/unicode_text.h"

namespace so {
namespace {

struct Segment {
  size_t begin = 0;
  size_t end = 0;
  bool is_match = false;
  bool removed = false;
};

// Matches and the gaps between them, covering the whole piece. Invalid UTF-8 bytes never
// reach PCRE2: each becomes a gap segment of its own.
std::vector<Segment> find_segments(const TokenizerRegex& regex, std::string_view text) {
  std::vector<Segment> segments;
  size_t covered = 0;
  auto add_gap_until = [&](size_t end) {
    if (end > covered) segments.push_back({covered, end, false, false});
    covered = end;
  };
  size_t run_begin = 0;
  while (run_begin < text.size()) {
    size_t run_end = run_begin;
    size_t length = 0;
    while (run_end < text.size() && (length = utf8_valid_length_at(text, run_end)) != 0) run_end += length;
    if (run_end > run_begin) {
      for (const RegexMatch& match : regex.find_all(text.substr(run_begin, run_end - run_begin))) {
        add_gap_until(run_begin + match.begin);
        segments.push_back({run_begin + match.begin, run_begin + match.end, true, false});
        covered = run_begin + match.end;
      }
      add_gap_until(run_end);
    }
    if (run_end < text.size()) {  // one invalid byte, alone
      add_gap_until(run_end);
      add_gap_until(run_end + 1);
      run_end += 1;
    }
    run_begin = run_end;
  }
  return segments;
}

// Hugging Face's rules for what becomes a piece, given matches and gaps.
std::vector<Segment> combine_segments(std::vector<Segment> segments, SplitBehavior behavior, bool invert) {
  if (invert) {
    for (Segment& segment : segments) segment.is_match = !segment.is_match;
  }
  std::vector<Segment> out;
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::kIsolated: return segments;
    case SplitBehavior::kRemoved:
      for (Segment& segment : segments) segment.removed = segment.is_match;
      return segments;
    case SplitBehavior::kContiguous:
      for (const Segment& segment : segments) {
        if (!out.empty() && segment.is_match == previous_match) {
          out.back().end = segment.end;
        } else {
          out.push_back(segment);
        }
        previous_match = segment.is_match;
      }
      return out;
    case SplitBehavior::kMergedWithPrevious:
      for (const Segment& segment : segments) {
        if (segment.is_match && !previous_match && !out.empty()) {
          out.back().end = segment.end;
        } else {
          out.push_back(segment);
        }
        previous_match = segment.is_match;
      }
      return out;
    case SplitBehavior::kMergedWithNext:
      for (size_t i = segments.size(); i-- > 0;) {
        const Segment& segment = segments[i];
        if (segment.is_match && !previous_match && !out.empty()) {
          out.back().begin = segment.begin;
        } else {
          out.push_back(segment);
        }
        previous_match = segment.is_match;
      }
      return {out.rbegin(), out.rend()};
  }
  return segments;
}

void replace_all(std::string& text, std::string_view literal, std::string_view replacement) {
  if (literal.empty() || text.find(literal) == std::string::npos) return;
  std::string out;
  out.reserve(text.size() + text.size() / 4);
  size_t pos = 0;
  for (size_t found; (found = text.find(literal, pos)) != std::string::npos; pos = found + literal.size()) {
    out.append(text, pos, found - pos);
    out += replacement;
  }
  out.append(text, pos);
  text = std::move(out);
}

}  // namespace

const char* const kGpt2SplitPattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

Result<SplitBehavior> split_behavior_from_name(std::string_view name) {
  if (name == "Removed") return SplitBehavior::kRemoved;
  if (name == "Isolated") return SplitBehavior::kIsolated;
  if (name == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (name == "Contiguous") return SplitBehavior::kContiguous;
  return unsupported("split behavior ", quote_for_message(name),
                     " is not known; expected Removed, Isolated, MergedWithPrevious, MergedWithNext or Contiguous");
}

void PreTokenizer::add_replace(std::string literal, std::string replacement) {
  PreTokenizerStep step;
  step.kind = PreTokenizerStep::Kind::kReplace;
  step.literal = std::move(literal);
  step.content = std::move(replacement);
  steps_.push_back(std::move(step));
}

void PreTokenizer::add_prepend(std::string prefix, PrependScheme scheme, bool only_if_missing) {
  PreTokenizerStep step;
  step.kind = PreTokenizerStep::Kind::kPrepend;
  step.content = std::move(prefix);
  step.prepend_scheme = scheme;
  step.prepend_only_if_missing = only_if_missing;
  steps_.push_back(std::move(step));
}

void PreTokenizer::add_split(std::shared_ptr<const TokenizerRegex> regex, SplitBehavior behavior, bool invert) {
  PreTokenizerStep step;
  step.kind = PreTokenizerStep::Kind::kSplit;
  step.split_regex = std::move(regex);
  step.split_behavior = behavior;
  step.split_invert = invert;
  steps_.push_back(std::move(step));
}

void PreTokenizer::add_split_pattern(std::string_view pattern, SplitBehavior behavior) {
  auto regex = TokenizerRegex::compile(pattern);
  SO_CHECK_OK(regex);
  add_split(std::move(regex).value(), behavior, false);
}

std::vector<std::string> PreTokenizer::run(std::string_view fragment, bool fragment_at_text_start) const {
  std::vector<PreTokenizerPiece> pieces;
  pieces.push_back({std::string(fragment), fragment_at_text_start});
  std::vector<PreTokenizerPiece> next;
  for (const PreTokenizerStep& step : steps_) {
    switch (step.kind) {
      case PreTokenizerStep::Kind::kReplace:
        for (PreTokenizerPiece& piece : pieces) replace_all(piece.text, step.literal, step.content);
        break;
      case PreTokenizerStep::Kind::kPrepend:
        for (PreTokenizerPiece& piece : pieces) {
          if (piece.text.empty()) continue;
          if (step.prepend_scheme == PrependScheme::kFirst && !piece.at_text_start) continue;
          if (step.prepend_only_if_missing && piece.text.starts_with(step.content)) continue;
          piece.text.insert(0, step.content);
        }
        break;
      case PreTokenizerStep::Kind::kSplit:
        next.clear();
        for (PreTokenizerPiece& piece : pieces) {
          const auto segments = combine_segments(find_segments(*step.split_regex, piece.text), step.split_behavior,
                                                 step.split_invert);
          for (const Segment& segment : segments) {
            if (segment.removed || segment.end == segment.begin) continue;
            next.push_back({piece.text.substr(segment.begin, segment.end - segment.begin),
                            piece.at_text_start && segment.begin == 0});
          }
        }
        std::swap(pieces, next);
        break;
    }
  }
  std::vector<std::string> out;
  out.reserve(pieces.size());
  for (PreTokenizerPiece& piece : pieces) {
    if (!piece.text.empty()) out.push_back(std::move(piece.text));
  }
  return out;
}

}  // namespace so
