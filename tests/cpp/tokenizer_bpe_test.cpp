// Whole tokenizers built from small GGUF metadata and tokenizer.json texts made here.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "tokenizer/byte_mapping.h"
#include "tokenizer/tokenizer.h"

namespace so {
namespace {

using Ids = std::vector<int32_t>;
const std::string kMarker = "\xE2\x96\x81";  // "▁"

MetadataValue string_array(const std::vector<std::string>& values) {
  MetadataArray array;
  for (const std::string& value : values) array.push_back(MetadataValue::string(value));
  return MetadataValue::array(MetadataType::kString, std::move(array));
}

MetadataValue int_array(const std::vector<int>& values) {
  MetadataArray array;
  for (int value : values) array.push_back(MetadataValue::integer(MetadataType::kI32, value));
  return MetadataValue::array(MetadataType::kI32, std::move(array));
}

MetadataValue float_array(const std::vector<float>& values) {
  MetadataArray array;
  for (float value : values) array.push_back(MetadataValue::floating(MetadataType::kF32, value));
  return MetadataValue::array(MetadataType::kF32, std::move(array));
}

MetadataValue u32(int64_t value) { return MetadataValue::integer(MetadataType::kU32, value); }

// Byte-level vocabulary: 4 special tokens, the 256 bytes, then one token per merge.
struct ByteLevelVocab {
  std::vector<std::string> tokens = {"<|endoftext|>", "<|im_start|>", "<|im_end|>", "<tool>"};
  std::vector<int> types = {3, 3, 3, 4};
  std::vector<std::string> merges;

  ByteLevelVocab() {
    for (int byte = 0; byte < 256; ++byte) {
      tokens.push_back(byte_mapping_encode(std::string(1, static_cast<char>(byte))));
      types.push_back(1);
    }
    for (const char* merge : {"h e", "l l", "he ll", "hell o", "Ġ w", "o r", "Ġw or", "l d", "Ġwor ld", "1 2"}) {
      merges.push_back(merge);
      std::string merged = merges.back();
      merged.erase(merged.find(' '), 1);
      tokens.push_back(merged);
      types.push_back(1);
    }
  }
  int32_t id(std::string_view text) const {
    return static_cast<int32_t>(std::find(tokens.begin(), tokens.end(), text) - tokens.begin());
  }
  int32_t byte(char c) const { return id(byte_mapping_encode(std::string(1, c))); }

  Metadata metadata(std::string pre = "smollm") const {
    Metadata metadata;
    metadata.set("tokenizer.ggml.model", MetadataValue::string("gpt2"));
    metadata.set("tokenizer.ggml.pre", MetadataValue::string(std::move(pre)));
    metadata.set("tokenizer.ggml.tokens", string_array(tokens));
    metadata.set("tokenizer.ggml.token_type", int_array(types));
    metadata.set("tokenizer.ggml.merges", string_array(merges));
    metadata.set("tokenizer.ggml.bos_token_id", u32(1));
    metadata.set("tokenizer.ggml.eos_token_id", u32(2));
    metadata.set("tokenizer.chat_template", MetadataValue::string("{{ '<|im_start|>' }}"));
    return metadata;
  }
};

std::unique_ptr<Tokenizer> must(Result<std::unique_ptr<Tokenizer>> tokenizer) {
  SO_CHECK_OK(tokenizer);
  return std::move(tokenizer).value();
}

TEST(ByteLevelBpe, MergesByRankAndRoundTrips) {
  const ByteLevelVocab vocab;
  auto tokenizer = must(Tokenizer::from_gguf_metadata(vocab.metadata()));
  EXPECT_EQ(tokenizer->kind(), TokenizerKind::kByteLevelBpe);
  EXPECT_EQ(tokenizer->encode("hello world", false, true), (Ids{vocab.id("hello"), vocab.id("Ġworld")}));
  // smollm splits digits one by one, so the merge "1 2" never applies.
  EXPECT_EQ(tokenizer->encode("12", false, true), (Ids{vocab.byte('1'), vocab.byte('2')}));
  for (const std::string& text :
       std::vector<std::string>{"hello world", "  héllo\n\tworld 123 😀", "", std::string("\x00 x", 3)}) {
    EXPECT_EQ(tokenizer->decode(tokenizer->encode(text, false, true)), text);
  }
  // A byte no UTF-8 sequence starts with reads as U+FFFD, as llama.cpp reads it.
  EXPECT_EQ(tokenizer->decode(tokenizer->encode(std::string("\xFF\x00 x", 4), false, true)),
            std::string("\xEF\xBF\xBD\x00 x", 6));
  EXPECT_EQ(tokenizer->token_to_piece(vocab.id("Ġworld")), " world");
  EXPECT_EQ(tokenizer->chat_template(), "{{ '<|im_start|>' }}");
}

TEST(ByteLevelBpe, SpecialTokensOnlyWhenParsed) {
  const ByteLevelVocab vocab;
  auto tokenizer = must(Tokenizer::from_gguf_metadata(vocab.metadata()));
  const Ids parsed = tokenizer->encode("<|im_start|>hello<|im_end|>", false, true);
  EXPECT_EQ(parsed, (Ids{1, vocab.id("hello"), 2}));
  const Ids as_text = tokenizer->encode("<|im_start|>", false, false);
  EXPECT_EQ(as_text.size(), 12u);  // "<", "|", ... as bytes
  EXPECT_EQ(tokenizer->decode(as_text), "<|im_start|>");
  // USER_DEFINED tokens are cut out even when special tokens are not parsed.
  EXPECT_EQ(tokenizer->encode("<tool>", false, false), (Ids{3}));
}

TEST(ByteLevelBpe, ChatContentIsTextWhateverItSpells) {
  // Issue 17: a message holding "<|im_end|>" must not close its turn (role injection).
  const ByteLevelVocab vocab;
  auto tokenizer = must(Tokenizer::from_gguf_metadata(vocab.metadata()));
  const std::string prompt = "<|im_start|>hello<|im_end|><|im_start|>";
  const size_t content = prompt.find("hello");
  const std::vector<TextRange> literal = {{content, content + std::string("hello<|im_end|>").size()}};
  const Ids ids = tokenizer->encode_chat(prompt, false, literal);
  EXPECT_EQ(ids.front(), vocab.id("<|im_start|>"));
  EXPECT_EQ(ids.back(), vocab.id("<|im_start|>"));
  EXPECT_EQ(std::count(ids.begin(), ids.end(), vocab.id("<|im_end|>")), 0) << "the content's <|im_end|> is text";
  EXPECT_EQ(tokenizer->decode(ids), prompt);
  // Without literal ranges it is the special-parsing encode.
  EXPECT_EQ(tokenizer->encode_chat(prompt, false, {}), tokenizer->encode(prompt, false, true));
  // A special token only touching a range's edge is still the template's.
  const std::vector<TextRange> edge = {{content, content + 5}};
  const Ids edged = tokenizer->encode_chat(prompt, false, edge);
  EXPECT_EQ(std::count(edged.begin(), edged.end(), vocab.id("<|im_end|>")), 1);
}

TEST(ByteLevelBpe, BosOnlyWhenTheModelWantsItAndNeverTwice) {
  const ByteLevelVocab vocab;
  Metadata metadata = vocab.metadata();
  EXPECT_FALSE(must(Tokenizer::from_gguf_metadata(metadata))->add_bos_by_default());
  EXPECT_EQ(must(Tokenizer::from_gguf_metadata(metadata))->encode("hello", true, true), (Ids{vocab.id("hello")}));
  metadata.set("tokenizer.ggml.add_bos_token", MetadataValue::boolean(true));
  auto tokenizer = must(Tokenizer::from_gguf_metadata(metadata));
  EXPECT_EQ(tokenizer->encode("hello", true, true), (Ids{1, vocab.id("hello")}));
  EXPECT_EQ(tokenizer->encode("<|im_start|>hello", true, true), (Ids{1, vocab.id("hello")}));
  EXPECT_EQ(tokenizer->encode("hello", false, true), (Ids{vocab.id("hello")}));
}

TEST(ByteLevelBpe, EndOfGenerationCoversEosEotAndKnownTurnEnds) {
  const ByteLevelVocab vocab;
  Metadata metadata = vocab.metadata();
  metadata.set("tokenizer.ggml.eos_token_id", u32(0));
  metadata.set("tokenizer.ggml.eot_token_id", u32(3));
  auto tokenizer = must(Tokenizer::from_gguf_metadata(metadata));
  EXPECT_EQ(tokenizer->eos_id(), 0);
  EXPECT_TRUE(tokenizer->is_end_of_generation(0));  // EOS
  EXPECT_TRUE(tokenizer->is_end_of_generation(2));  // <|im_end|> by its text
  EXPECT_TRUE(tokenizer->is_end_of_generation(3));  // EOT
  EXPECT_FALSE(tokenizer->is_end_of_generation(1));
  EXPECT_FALSE(tokenizer->is_end_of_generation(-1));
  EXPECT_FALSE(tokenizer->is_end_of_generation(1 << 20));
}

TEST(ByteLevelBpe, Llama3PresetEmitsWholeTokensBeforeMerging) {
  ByteLevelVocab vocab;
  vocab.tokens.push_back("Ġwo");  // reachable only as a whole piece: no merge makes it
  vocab.types.push_back(1);
  auto tokenizer = must(Tokenizer::from_gguf_metadata(vocab.metadata("llama-bpe")));
  EXPECT_EQ(tokenizer->encode(" wo", false, true), (Ids{vocab.id("Ġwo")}));
  EXPECT_TRUE(tokenizer->add_bos_by_default());  // llama.cpp's default for llama-bpe
}

Status gguf_error(const Metadata& metadata) { return Tokenizer::from_gguf_metadata(metadata).status(); }

void expect_message(const Status& status, std::string_view text) {
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message().find(text), std::string::npos) << status.message();
}

TEST(GgufTokenizerErrors, SayWhatWasExpectedAndFound) {
  const ByteLevelVocab vocab;
  expect_message(gguf_error(Metadata()), "'tokenizer.ggml.model' is missing");
  Metadata metadata = vocab.metadata();
  metadata.set("tokenizer.ggml.model", MetadataValue::string("bert"));
  expect_message(gguf_error(metadata), "tokenizer.ggml.model is \"bert\"; this engine supports \"gpt2\"");
  metadata = vocab.metadata("klingon");
  expect_message(gguf_error(metadata), "tokenizer.ggml.pre is \"klingon\"");
  expect_message(gguf_error(metadata), "known values: default, gpt-2");
  metadata = vocab.metadata();
  metadata.set("tokenizer.ggml.merges", string_array({"he"}));
  expect_message(gguf_error(metadata), "tokenizer.ggml.merges entry 0 is \"he\"; expected two tokens");
  metadata = vocab.metadata();
  metadata.set("tokenizer.ggml.token_type", int_array({1, 1}));
  expect_message(gguf_error(metadata), "tokenizer.ggml.token_type has 2 entries but tokenizer.ggml.tokens has");
  metadata = vocab.metadata();
  metadata.set("tokenizer.ggml.bos_token_id", u32(100000));
  expect_message(gguf_error(metadata), "the BOS token id is 100000 but the vocabulary has 270 tokens");
  metadata = vocab.metadata();
  metadata.set("tokenizer.ggml.tokens", MetadataValue::string("oops"));
  expect_message(gguf_error(metadata), "'tokenizer.ggml.tokens' should be an array of strings but is string");
  expect_message(gguf_error(metadata), "reading the tokenizer from GGUF metadata");
}

// SentencePiece vocabulary laid out like Llama-2's: <unk> <s> </s>, 256 byte tokens, pieces.
struct SentencePieceVocab {
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  std::vector<int> types = {2, 3, 3};
  std::vector<float> scores = {0, 0, 0};

  SentencePieceVocab() {
    for (int byte = 0; byte < 256; ++byte) {
      char name[8];
      std::snprintf(name, sizeof name, "<0x%02X>", byte);
      tokens.push_back(name);
      types.push_back(6);
      scores.push_back(0);
    }
    // Pieces in merge order, scored -id: "bc" before "ab" before "abc".
    for (const std::string& piece : {kMarker, std::string("a"), std::string("b"), std::string("c"), std::string("bc"),
                                     std::string("ab"), std::string("abc"), kMarker + "abc", kMarker + "a"}) {
      tokens.push_back(piece);
      types.push_back(1);
      scores.push_back(-static_cast<float>(tokens.size()));
    }
  }
  int32_t id(std::string_view text) const {
    return static_cast<int32_t>(std::find(tokens.begin(), tokens.end(), text) - tokens.begin());
  }
  Metadata metadata() const {
    Metadata metadata;
    metadata.set("tokenizer.ggml.model", MetadataValue::string("llama"));
    metadata.set("tokenizer.ggml.tokens", string_array(tokens));
    metadata.set("tokenizer.ggml.token_type", int_array(types));
    metadata.set("tokenizer.ggml.scores", float_array(scores));
    return metadata;
  }
};

TEST(SentencePieceBpe, MergesByScoreLikeLlamaCpp) {
  const SentencePieceVocab vocab;
  auto tokenizer = must(Tokenizer::from_gguf_metadata(vocab.metadata()));
  EXPECT_EQ(tokenizer->kind(), TokenizerKind::kSentencePieceBpe);
  // bc merges first; then "a"+"bc" is the token "abc" by text (no merge rule needed).
  EXPECT_EQ(tokenizer->encode("abc", false, true), (Ids{vocab.id(kMarker + "abc")}));
  EXPECT_EQ(tokenizer->encode("cab", false, true), (Ids{vocab.id(kMarker), vocab.id("c"), vocab.id("ab")}));
  EXPECT_TRUE(tokenizer->add_bos_by_default());
  EXPECT_EQ(tokenizer->encode("abc", true, true), (Ids{1, vocab.id(kMarker + "abc")}));
}

TEST(SentencePieceBpe, UnknownCharactersFallBackToBytesAndDecodeBack) {
  const SentencePieceVocab vocab;
  auto tokenizer = must(Tokenizer::from_gguf_metadata(vocab.metadata()));
  const Ids ids = tokenizer->encode("a\xC3\xA9", false, true);  // "aé"
  EXPECT_EQ(ids, (Ids{vocab.id(kMarker + "a"), vocab.id("<0xC3>"), vocab.id("<0xA9>")}));
  EXPECT_EQ(tokenizer->token_to_piece(vocab.id("<0xC3>")), "\xC3");
  for (std::string text :
       std::vector<std::string>{"a\xC3\xA9", " a b  c ", "", "x<s>y", "<s>", "\n\t\xF0\x9F\x98\x80"}) {
    EXPECT_EQ(tokenizer->decode(tokenizer->encode(text, false, true)), text) << text;
  }
  // The leading space the encoder added is dropped once; a BOS in front does not change that.
  EXPECT_EQ(tokenizer->decode(tokenizer->encode("abc", true, true)), "<s>abc");
  EXPECT_EQ(tokenizer->token_to_piece(vocab.id(kMarker + "abc")), " abc");
}

TEST(SentencePieceBpe, SpacePrefixFollowsTheMetadata) {
  const SentencePieceVocab vocab;
  Metadata metadata = vocab.metadata();
  metadata.set("tokenizer.ggml.add_space_prefix", MetadataValue::boolean(false));
  auto tokenizer = must(Tokenizer::from_gguf_metadata(metadata));
  EXPECT_EQ(tokenizer->encode("abc", false, true), (Ids{vocab.id("abc")}));
  EXPECT_EQ(tokenizer->decode(tokenizer->encode(" abc", false, true)), " abc");
}

// The same vocabulary as tokenizer.json: merges by rank, as Hugging Face does.
std::string sentencepiece_json(const SentencePieceVocab& vocab, std::string pipeline) {
  std::string json = R"({"added_tokens": [{"id": 0, "content": "<unk>", "special": true},
                                          {"id": 1, "content": "<s>", "special": true},
                                          {"id": 2, "content": "</s>", "special": true}],)";
  json += pipeline;
  json += R"(, "model": {"type": "BPE", "byte_fallback": true, "fuse_unk": true, "unk_token": "<unk>", "vocab": {)";
  for (size_t i = 0; i < vocab.tokens.size(); ++i) {
    json += (i ? ", \"" : "\"") + vocab.tokens[i] + "\": " + std::to_string(i);
  }
  json += R"(}, "merges": ["b c", "a b", "ab c", ")" + kMarker + " abc\", \"" + kMarker + " a\"]}}";
  return json;
}

const std::string kLlama2Normalizer =
    R"("normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": ")" + kMarker +
    R"("}, {"type": "Replace", "pattern": {"String": " "}, "content": ")" + kMarker + R"("}]}, "pre_tokenizer": null)";

TEST(TokenizerJson, SentencePieceMergesByRankLikeHuggingFace) {
  const SentencePieceVocab vocab;
  auto tokenizer = must(Tokenizer::from_hf_json(sentencepiece_json(vocab, kLlama2Normalizer), ""));
  EXPECT_EQ(tokenizer->kind(), TokenizerKind::kSentencePieceBpe);
  // No rule (a, bc): Hugging Face stops at ▁a|bc where llama.cpp's score rule makes "▁abc".
  EXPECT_EQ(tokenizer->encode("abc", false, true), (Ids{vocab.id(kMarker + "a"), vocab.id("bc")}));
  EXPECT_EQ(tokenizer->decode(tokenizer->encode(" x<s> y", false, true)), " x<s> y");
  EXPECT_EQ(tokenizer->encode("\xC3\xA9", false, true),
            (Ids{vocab.id(kMarker), vocab.id("<0xC3>"), vocab.id("<0xA9>")}));
}

TEST(TokenizerJson, MetaspaceFirstPrependsOnlyAtTheStart) {
  const SentencePieceVocab vocab;
  const std::string pipeline = R"("normalizer": null, "pre_tokenizer": {"type": "Metaspace", "replacement": ")" +
                               kMarker + R"(", "prepend_scheme": "first", "split": false})";
  auto tokenizer = must(Tokenizer::from_hf_json(sentencepiece_json(vocab, pipeline), ""));
  EXPECT_EQ(tokenizer->encode("a<s>a", false, true), (Ids{vocab.id(kMarker + "a"), 1, vocab.id("a")}));
  EXPECT_EQ(tokenizer->decode(tokenizer->encode("a<s>a", false, true)), "a<s>a");
}

TEST(TokenizerJson, ConfigSuppliesBosEosAddBosAndChatTemplate) {
  const SentencePieceVocab vocab;
  const std::string config = R"({"bos_token": {"content": "<s>"}, "eos_token": "</s>", "add_bos_token": true,
      "chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]})";
  auto tokenizer = must(Tokenizer::from_hf_json(sentencepiece_json(vocab, kLlama2Normalizer), config));
  EXPECT_EQ(tokenizer->bos_id(), 1);
  EXPECT_EQ(tokenizer->eos_id(), 2);
  EXPECT_TRUE(tokenizer->add_bos_by_default());
  EXPECT_EQ(tokenizer->chat_template(), "D");
  EXPECT_TRUE(tokenizer->is_end_of_generation(2));
}

TEST(TokenizerJson, ByteLevelPipelineWithDigits) {
  const ByteLevelVocab vocab;
  std::string json = R"({"added_tokens": [{"id": 1, "content": "<|im_start|>", "special": true}],
      "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": false},
          {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true}]},
      "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<|im_start|>"}},
          {"Sequence": {"id": "A"}}], "special_tokens": {"<|im_start|>": {"id": "<|im_start|>", "ids": [1]}}},
      "model": {"type": "BPE", "vocab": {)";
  for (size_t i = 0; i < vocab.tokens.size(); ++i) {
    json += (i ? ", " : "") + nlohmann::json(vocab.tokens[i]).dump() + ": " + std::to_string(i);
  }
  json += R"(}, "merges": [)";
  for (size_t i = 0; i < vocab.merges.size(); ++i) json += (i ? ", \"" : "\"") + vocab.merges[i] + "\"";
  json += "]}}";
  auto tokenizer = must(Tokenizer::from_hf_json(json, ""));
  EXPECT_EQ(tokenizer->kind(), TokenizerKind::kByteLevelBpe);
  EXPECT_EQ(tokenizer->encode("hello 12", true, true), (Ids{1, vocab.id("hello"), vocab.byte(' '), vocab.id("12")}));
  EXPECT_EQ(tokenizer->bos_id(), 1);
}

Status json_error(const std::string& json) { return Tokenizer::from_hf_json(json, "").status(); }

TEST(TokenizerJsonErrors, SayWhatWasExpectedAndFound) {
  const SentencePieceVocab vocab;
  expect_message(json_error("{not json"), "tokenizer.json is not valid JSON");
  expect_message(json_error("[]"), "tokenizer.json is array; expected a JSON object");
  expect_message(json_error(R"({"model": {"type": "Unigram", "vocab": []}})"),
                 "tokenizer.json model type is \"Unigram\"; this engine supports BPE");
  expect_message(json_error(sentencepiece_json(vocab, R"("normalizer": {"type": "Lowercase"})")),
                 "normalizer type \"Lowercase\" is not supported");
  expect_message(json_error(sentencepiece_json(vocab, R"("pre_tokenizer": {"type": "BertPreTokenizer"})")),
                 "pre_tokenizer type \"BertPreTokenizer\" is not supported; supported: Sequence, Split");
  expect_message(
      json_error(sentencepiece_json(
          vocab, R"("pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(x"}, "behavior": "Isolated"})")),
      "does not compile");
  expect_message(
      json_error(sentencepiece_json(
          vocab, R"("pre_tokenizer": {"type": "Split", "pattern": {"Regex": "x"}, "behavior": "Sideways"})")),
      "split behavior \"Sideways\" is not known");
  expect_message(json_error(R"({"model": {"vocab": {"a": "zero"}}})"), "unexpected shape");
  expect_message(json_error(R"({"model": {"vocab": {"a": 0, "b": 1}, "merges": ["a b c"]}})"),
                 "model.merges entry 0 is \"a b c\"");
}

}  // namespace
}  // namespace so
