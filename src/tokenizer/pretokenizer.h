// Text fragment -> pieces that BPE then encodes one by one. Both the normalizer and the
// pre-tokenizer of a Hugging Face tokenizer.json, and llama.cpp's per-`tokenizer.ggml.pre`
// regex lists, reduce to three kinds of step applied in order to every piece:
//   replace  every occurrence of a literal (" " -> "▁");
//   prepend  a prefix ("▁" or " ") to each non-empty piece, or only to the one at the
//            start of the text;
//   split    by a regex, keeping matches and the text between them per a behaviour.
// ByteLevel(use_regex) = split by the GPT-2 regex; Digits = split by \p{N};
// Metaspace = replace + prepend + split on "▁" (merged with next).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "tokenizer/regex.h"

namespace so {

// Hugging Face's SplitDelimiterBehavior.
enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };
Result<SplitBehavior> split_behavior_from_name(std::string_view name);

enum class PrependScheme { kAlways, kFirst };

struct PreTokenizerStep {
  enum class Kind { kReplace, kPrepend, kSplit };
  Kind kind = Kind::kSplit;
  std::string literal;  // replace: the text replaced
  std::string content;  // replace: the replacement; prepend: the prefix
  PrependScheme prepend_scheme = PrependScheme::kAlways;
  bool prepend_only_if_missing = false;  // Metaspace / ByteLevel: not when the piece already starts with it
  std::shared_ptr<const TokenizerRegex> split_regex;
  SplitBehavior split_behavior = SplitBehavior::kIsolated;
  bool split_invert = false;
};

struct PreTokenizerPiece {
  std::string text;
  bool at_text_start = false;  // begins at byte 0 of the whole input (for PrependScheme::kFirst)
};

class PreTokenizer {
 public:
  void add_replace(std::string literal, std::string replacement);
  void add_prepend(std::string prefix, PrependScheme scheme, bool only_if_missing);
  void add_split(std::shared_ptr<const TokenizerRegex> regex, SplitBehavior behavior, bool invert);
  // Convenience for patterns known to compile (presets); a bad preset is a bug.
  void add_split_pattern(std::string_view pattern, SplitBehavior behavior = SplitBehavior::kIsolated);

  // Pieces of one text fragment (the text between special tokens). Bytes that are not
  // valid UTF-8 are never given to the regex; each becomes a piece of its own.
  std::vector<std::string> run(std::string_view fragment, bool fragment_at_text_start) const;

  const std::vector<PreTokenizerStep>& steps() const { return steps_; }
  bool empty() const { return steps_.empty(); }

 private:
  std::vector<PreTokenizerStep> steps_;
};

// The regex Hugging Face's ByteLevel pre-tokenizer uses when use_regex is true.
extern const char* const kGpt2SplitPattern;

// Regex steps and defaults for a GGUF `tokenizer.ggml.pre` value, mirroring llama.cpp.
struct GgufPreTokenizerPreset {
  PreTokenizer pre_tokenizer;
  bool ignore_merges = false;  // a piece that is itself a token is emitted whole (Llama-3)
  bool add_bos = false;        // default when tokenizer.ggml.add_bos_token is absent
};
// Unknown names: an error that names the value and lists the known ones.
Result<GgufPreTokenizerPreset> gguf_pre_tokenizer_preset(std::string_view pre_name);
std::string gguf_pre_tokenizer_known_names();

}  // namespace so
