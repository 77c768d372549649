// Pieces of the tokenizer: byte mapping, UTF-8 helpers, regex pre-tokenization, added-token
// splitting and the merge loop.
#include <gtest/gtest.h>

#include "tokenizer/bpe_merge.h"
#include "tokenizer/byte_mapping.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/special_tokens.h"
#include "tokenizer/unicode_text.h"

namespace so {
namespace {

using Pieces = std::vector<std::string>;

TEST(ByteMapping, PrintableBytesStayAndOthersMoveAboveU0100) {
  EXPECT_EQ(byte_mapping_encode("Hi there\n"), "Hi\xC4\xA0there\xC4\x8A");  // "HiĠthereĊ"
  EXPECT_EQ(byte_mapping_code_point(' '), 0x120u);
  EXPECT_EQ(byte_mapping_code_point(0), 0x100u);
  EXPECT_EQ(byte_mapping_code_point(0xAD), 0x143u);  // the last of the 68 moved bytes
  EXPECT_EQ(byte_mapping_code_point('A'), static_cast<uint32_t>('A'));
  EXPECT_EQ(byte_mapping_code_point(0xE9), 0xE9u);  // Latin-1 "é" is printable
}

TEST(ByteMapping, EveryByteRoundTrips) {
  std::string all;
  for (int byte = 0; byte < 256; ++byte) all += static_cast<char>(byte);
  const std::string mapped = byte_mapping_encode(all);
  EXPECT_EQ(byte_mapping_decode(mapped), all);
  EXPECT_FALSE(byte_mapping_decode("\xE2\x96\x81").has_value());  // "▁" is outside the mapping
}

TEST(Utf8, ValidLengthRejectsMalformedSequences) {
  EXPECT_EQ(utf8_valid_length_at("a", 0), 1u);
  EXPECT_EQ(utf8_valid_length_at("\xC3\xA9", 0), 2u);
  EXPECT_EQ(utf8_valid_length_at("\xF0\x9F\x98\x80", 0), 4u);
  EXPECT_EQ(utf8_valid_length_at("\xC0\x80", 0), 0u);      // overlong
  EXPECT_EQ(utf8_valid_length_at("\xED\xA0\x80", 0), 0u);  // surrogate
  EXPECT_EQ(utf8_valid_length_at("\xE2\x96", 0), 0u);      // truncated
  EXPECT_EQ(utf8_valid_length_at("\x80", 0), 0u);          // stray continuation
}

TEST(Utf8, StripPythonMatchesStrStrip) {
  EXPECT_EQ(unicode_strip_python(" \t\nhi there\r\n "), "hi there");
  EXPECT_EQ(unicode_strip_python("\xC2\xA0\xE3\x80\x80x\xE2\x80\x89"), "x");  // NBSP, ideographic space, thin space
  EXPECT_EQ(unicode_strip_python("\xE2\x80\x8Bx"), "\xE2\x80\x8Bx");          // zero-width space is not space
  EXPECT_EQ(unicode_strip_python("   "), "");
}

PreTokenizer gpt2_pre_tokenizer() {
  PreTokenizer pre;
  pre.add_split_pattern(kGpt2SplitPattern);
  return pre;
}

TEST(PreTokenizer, Gpt2RegexSplitsWordsNumbersPunctuationAndSpaces) {
  EXPECT_EQ(gpt2_pre_tokenizer().run("Hello world's  x\n\n 123!?", true),
            (Pieces{"Hello", " world", "'s", " ", " x", "\n\n", " 123", "!?"}));
  EXPECT_EQ(gpt2_pre_tokenizer().run("caf\xC3\xA9 \xE4\xBD\xA0\xE5\xA5\xBD  ", true),
            (Pieces{"caf\xC3\xA9", " \xE4\xBD\xA0\xE5\xA5\xBD", "  "}));
}

TEST(PreTokenizer, InvalidUtf8BytesBecomeTheirOwnPieces) {
  EXPECT_EQ(gpt2_pre_tokenizer().run("ab\xFF"
                                     "cd",
                                     true),
            (Pieces{"ab", "\xFF", "cd"}));
}

TEST(PreTokenizer, SmollmPresetSplitsDigitsOneByOne) {
  auto preset = gguf_pre_tokenizer_preset("smollm");
  ASSERT_TRUE(preset.ok());
  EXPECT_EQ(preset->pre_tokenizer.run("abc 123", true), (Pieces{"abc", " ", "1", "2", "3"}));
  auto llama3 = gguf_pre_tokenizer_preset("llama-bpe");
  ASSERT_TRUE(llama3.ok());
  EXPECT_TRUE(llama3->ignore_merges);
  EXPECT_EQ(llama3->pre_tokenizer.run("abc 12345 I'M", true), (Pieces{"abc", " ", "123", "45", " I", "'M"}));
}

TEST(PreTokenizer, UnknownPresetErrorNamesItAndListsKnownOnes) {
  auto preset = gguf_pre_tokenizer_preset("klingon");
  ASSERT_FALSE(preset.ok());
  EXPECT_EQ(preset.status().code(), ErrorCode::kUnsupported);
  const std::string& message = preset.status().message();
  EXPECT_NE(message.find("tokenizer.ggml.pre is \"klingon\""), std::string::npos) << message;
  for (const char* known : {"default", "gpt-2", "smollm", "llama-bpe", "qwen2", "deepseek-coder", "falcon"}) {
    EXPECT_NE(message.find(known), std::string::npos) << known;
  }
}

Pieces split_with(SplitBehavior behavior, bool invert, std::string_view text) {
  PreTokenizer pre;
  auto regex = TokenizerRegex::compile("-");
  SO_CHECK_OK(regex);
  pre.add_split(*regex, behavior, invert);
  return pre.run(text, true);
}

TEST(PreTokenizer, SplitBehavioursFollowHuggingFace) {
  EXPECT_EQ(split_with(SplitBehavior::kRemoved, false, "a-b--c"), (Pieces{"a", "b", "c"}));
  EXPECT_EQ(split_with(SplitBehavior::kIsolated, false, "a-b--c"), (Pieces{"a", "-", "b", "-", "-", "c"}));
  EXPECT_EQ(split_with(SplitBehavior::kMergedWithPrevious, false, "a-b--c"), (Pieces{"a-", "b-", "-", "c"}));
  EXPECT_EQ(split_with(SplitBehavior::kMergedWithNext, false, "a-b--c"), (Pieces{"a", "-b", "-", "-c"}));
  EXPECT_EQ(split_with(SplitBehavior::kContiguous, false, "a-b--c"), (Pieces{"a", "-", "b", "--", "c"}));
  EXPECT_EQ(split_with(SplitBehavior::kRemoved, true, "a-b--c"), (Pieces{"-", "-", "-"}));
}

TEST(PreTokenizer, PrependFirstOnlyTouchesTheStartOfTheText) {
  PreTokenizer pre;
  pre.add_replace(" ", "\xE2\x96\x81");
  pre.add_prepend("\xE2\x96\x81", PrependScheme::kFirst, /*only_if_missing=*/true);
  EXPECT_EQ(pre.run("a b", true), (Pieces{"\xE2\x96\x81"
                                          "a\xE2\x96\x81"
                                          "b"}));
  EXPECT_EQ(pre.run("a b", false), (Pieces{"a\xE2\x96\x81"
                                           "b"}));
  EXPECT_EQ(pre.run(" a", true), (Pieces{"\xE2\x96\x81"
                                         "a"}));  // already starts with it
  EXPECT_EQ(pre.run("", true), (Pieces{}));
}

TEST(PreTokenizer, BadRegexIsAnErrorWithThePattern) {
  auto regex = TokenizerRegex::compile("(unclosed");
  ASSERT_FALSE(regex.ok());
  EXPECT_NE(regex.status().message().find("\"(unclosed\" does not compile"), std::string::npos)
      << regex.status().message();
}

TEST(PreTokenizer, LongWhitespaceRunsDoNotExhaustTheRegexStack) {
  const std::string text = std::string(1 << 20, ' ') + "x";
  const Pieces pieces = gpt2_pre_tokenizer().run(text, true);
  ASSERT_EQ(pieces.size(), 2u);
  EXPECT_EQ(pieces[1], " x");
}

std::vector<std::pair<std::string, int32_t>> fragments_of(const AddedTokenMatcher& matcher, std::string_view text,
                                                          bool parse_special) {
  std::vector<std::pair<std::string, int32_t>> out;
  for (const TextFragment& fragment : matcher.split(text, parse_special)) {
    out.emplace_back(std::string(fragment.text), fragment.token);
  }
  return out;
}

TEST(AddedTokens, LeftmostLongestMatchWins) {
  AddedTokenMatcher matcher({{1, "<|im"}, {2, "<|im_start|>"}, {3, "<tool>", /*special=*/false}});
  using F = std::vector<std::pair<std::string, int32_t>>;
  EXPECT_EQ(fragments_of(matcher, "a<|im_start|>b<|imx", true),
            (F{{"a", -1}, {"<|im_start|>", 2}, {"b", -1}, {"<|im", 1}, {"x", -1}}));
  // Without parse_special only non-special added tokens are cut out.
  EXPECT_EQ(fragments_of(matcher, "<|im_start|><tool>", false), (F{{"<|im_start|>", -1}, {"<tool>", 3}}));
  EXPECT_EQ(fragments_of(matcher, "", true), F{});
}

TEST(AddedTokens, StripAndSingleWordFlags) {
  AddedToken mask{7, "<mask>", true, /*lstrip=*/true, /*rstrip=*/true};
  AddedToken word{8, "cat", true, false, false, /*single_word=*/true};
  AddedTokenMatcher matcher({mask, word});
  using F = std::vector<std::pair<std::string, int32_t>>;
  EXPECT_EQ(fragments_of(matcher, "a  <mask>\t b", true), (F{{"a", -1}, {"  <mask>\t ", 7}, {"b", -1}}));
  EXPECT_EQ(fragments_of(matcher, "a cat concat", true), (F{{"a ", -1}, {"cat", 8}, {" concat", -1}}));
}

TEST(BpeMerge, LowestPriorityFirstAndLeftmostOnTies) {
  // Units 0 1 2 3: pair (0,1) and (2,3) share priority 1; (1,2) has 0 and goes first.
  std::vector<BpeSymbol> symbols(4);
  for (uint32_t i = 0; i < 4; ++i) symbols[i] = {static_cast<int32_t>(i), i, i + 1};
  bpe_link_symbols(symbols);
  std::vector<std::pair<int32_t, int32_t>> merged;
  bpe_merge_symbols(symbols, [&](const BpeSymbol& left, const BpeSymbol& right) -> std::optional<BpeMergeCandidate> {
    if (left.token == 1 && right.token == 2) return BpeMergeCandidate{0, 12};
    if ((left.token == 0 && right.token == 1) || (left.token == 2 && right.token == 3)) return BpeMergeCandidate{1, 9};
    if (left.token == 0 && right.token == 12) return BpeMergeCandidate{2, 99};
    return std::nullopt;
  });
  std::vector<int32_t> tokens;
  for (int32_t i = 0; i >= 0; i = symbols[i].next) tokens.push_back(symbols[i].token);
  EXPECT_EQ(tokens, (std::vector<int32_t>{99, 3}));
}

}  // namespace
}  // namespace so
