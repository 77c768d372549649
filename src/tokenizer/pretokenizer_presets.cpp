// GGUF `tokenizer.ggml.pre` -> regex splits, following llama.cpp's choices for each name
// (each regex splits the pieces the previous one produced, keeping matches and gaps).
#include <array>

#include "tokenizer/pretokenizer.h"

namespace so {
namespace {

// GPT-2's regex without the trailing "|\s+": the text it would match is kept as a gap.
constexpr const char* kGpt2CorePattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))";
// Llama-3's regex with its (?i:...) contractions spelled out as classes, as llama.cpp does.
constexpr const char* kLlama3Pattern =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Qwen2: Llama-3's regex with single digits.
constexpr const char* kQwen2Pattern =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kCjkHanHangulPattern = R"([\x{4E00}-\x{9FA5}\x{0800}-\x{4E00}\x{AC00}-\x{D7FF}]+)";
constexpr const char* kBloomPattern = R"( ?[^(\s|.,!?…。，、।۔،)]+)";

enum class PresetRegexes {
  kDefault,
  kGpt2,
  kDigitsThenGpt2,
  kLlama3,
  kQwen2,
  kDeepseekLlm,
  kDeepseekCoder,
  kDeepseekV3,
  kFalcon,
  kBloom,
  kViking,
};

struct PresetName {
  const char* name;
  PresetRegexes regexes;
  bool ignore_merges;
  bool add_bos;
};

constexpr std::array kPresetNames = {
    PresetName{"default", PresetRegexes::kDefault, false, false},
    PresetName{"gpt-2", PresetRegexes::kGpt2, false, false},
    PresetName{"phi-2", PresetRegexes::kGpt2, false, false},
    PresetName{"mpt", PresetRegexes::kGpt2, false, false},
    PresetName{"olmo", PresetRegexes::kGpt2, false, false},
    PresetName{"jina-es", PresetRegexes::kGpt2, false, false},
    PresetName{"jina-de", PresetRegexes::kGpt2, false, false},
    PresetName{"jina-v2-es", PresetRegexes::kGpt2, false, false},
    PresetName{"jina-v2-de", PresetRegexes::kGpt2, false, false},
    PresetName{"gigachat", PresetRegexes::kGpt2, false, false},
    PresetName{"smollm", PresetRegexes::kDigitsThenGpt2, false, false},
    PresetName{"starcoder", PresetRegexes::kDigitsThenGpt2, false, false},
    PresetName{"refact", PresetRegexes::kDigitsThenGpt2, false, false},
    PresetName{"command-r", PresetRegexes::kDigitsThenGpt2, false, false},
    PresetName{"codeshell", PresetRegexes::kDigitsThenGpt2, false, false},
    PresetName{"exaone", PresetRegexes::kDigitsThenGpt2, false, false},
    PresetName{"minerva", PresetRegexes::kDigitsThenGpt2, false, false},
    PresetName{"llama3", PresetRegexes::kLlama3, true, true},
    PresetName{"llama-v3", PresetRegexes::kLlama3, true, true},
    PresetName{"llama-bpe", PresetRegexes::kLlama3, true, true},
    PresetName{"falcon3", PresetRegexes::kLlama3, true, true},
    PresetName{"pixtral", PresetRegexes::kLlama3, true, true},
    PresetName{"dbrx", PresetRegexes::kLlama3, false, false},
    PresetName{"smaug-bpe", PresetRegexes::kLlama3, false, false},
    PresetName{"qwen2", PresetRegexes::kQwen2, false, false},
    PresetName{"deepseek-r1-qwen", PresetRegexes::kQwen2, false, false},
    PresetName{"stablelm2", PresetRegexes::kQwen2, false, false},
    PresetName{"deepseek-llm", PresetRegexes::kDeepseekLlm, false, false},
    PresetName{"deepseek-coder", PresetRegexes::kDeepseekCoder, false, false},
    PresetName{"deepseek-v3", PresetRegexes::kDeepseekV3, false, false},
    PresetName{"falcon", PresetRegexes::kFalcon, false, false},
    PresetName{"poro-chat", PresetRegexes::kBloom, false, false},
    PresetName{"bloom", PresetRegexes::kBloom, false, false},
    PresetName{"gpt3-finnish", PresetRegexes::kBloom, false, false},
    PresetName{"viking", PresetRegexes::kViking, false, false},
};

PreTokenizer preset_pre_tokenizer(PresetRegexes regexes) {
  PreTokenizer pre;
  switch (regexes) {
    case PresetRegexes::kDefault:
      pre.add_split_pattern(R"([\p{P}\$\+<=>\^~\|]+)");
      pre.add_split_pattern(kGpt2CorePattern);
      pre.add_split_pattern(R"(\p{N}+)");
      pre.add_split_pattern(R"([0-9][0-9][0-9])");
      break;
    case PresetRegexes::kGpt2: pre.add_split_pattern(kGpt2SplitPattern); break;
    case PresetRegexes::kDigitsThenGpt2:
      pre.add_split_pattern(R"(\p{N})");
      pre.add_split_pattern(kGpt2SplitPattern);
      break;
    case PresetRegexes::kLlama3: pre.add_split_pattern(kLlama3Pattern); break;
    case PresetRegexes::kQwen2: pre.add_split_pattern(kQwen2Pattern); break;
    case PresetRegexes::kDeepseekLlm:
      pre.add_split_pattern(R"([\r\n])");
      // note: DeepSeek lists the cased-letter ranges one by one; \p{L&} is the same set
      // up to differences between Unicode versions.
      pre.add_split_pattern(R"(\s?\p{L&}+)");
      pre.add_split_pattern(R"(\s?[!-/:-~\x{FF01}-\x{FF0F}\x{FF1A}-\x{FF5E}\x{2018}-\x{201F}\x{3000}-\x{3002}]+)");
      pre.add_split_pattern(R"(\s+$)");
      pre.add_split_pattern(kCjkHanHangulPattern);
      pre.add_split_pattern(R"(\p{N}+)");
      break;
    case PresetRegexes::kDeepseekCoder:
      pre.add_split_pattern(R"([\r\n])");
      pre.add_split_pattern(R"(\s?\p{L}+)");
      pre.add_split_pattern(R"(\s?\p{P}+)");
      pre.add_split_pattern(kCjkHanHangulPattern);
      pre.add_split_pattern(R"(\p{N})");
      break;
    case PresetRegexes::kDeepseekV3:
      pre.add_split_pattern(R"(\p{N}{1,3})");
      pre.add_split_pattern(R"([\x{4E00}-\x{9FA5}\x{3040}-\x{309F}\x{30A0}-\x{30FF}]+)");
      pre.add_split_pattern(
          R"([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)");
      break;
    case PresetRegexes::kFalcon:
      pre.add_split_pattern(R"([\p{P}\$\+<=>\^~\|`]+)");
      pre.add_split_pattern(kGpt2CorePattern);
      pre.add_split_pattern(R"([0-9][0-9][0-9])");
      break;
    case PresetRegexes::kBloom: pre.add_split_pattern(kBloomPattern); break;
    case PresetRegexes::kViking:
      pre.add_split_pattern(kBloomPattern);
      pre.add_split_pattern(R"(\p{N})");
      break;
  }
  return pre;
}

}  // namespace

std::string gguf_pre_tokenizer_known_names() {
  std::string names;
  for (const PresetName& preset : kPresetNames) {
    if (!names.empty()) names += ", ";
    names += preset.name;
  }
  return names;
}

Result<GgufPreTokenizerPreset> gguf_pre_tokenizer_preset(std::string_view pre_name) {
  for (const PresetName& preset : kPresetNames) {
    if (pre_name != preset.name) continue;
    GgufPreTokenizerPreset out;
    out.pre_tokenizer = preset_pre_tokenizer(preset.regexes);
    out.ignore_merges = preset.ignore_merges;
    out.add_bos = preset.add_bos;
    return out;
  }
  return unsupported("tokenizer.ggml.pre is ", quote_for_message(pre_name),
                     ", a pre-tokenizer this engine does not know; known values: ", gguf_pre_tokenizer_known_names(),
                     ". Convert the model with a pre-tokenizer from this list, or use its tokenizer.json");
}

}  // namespace so
