// OpenAI completions and chat completions: request bodies in, response bodies out. Batch
// jobs (`run`, one body per JSONL line) and the server (`serve`, one per HTTP request)
// share them, so both accept and answer the same things.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "runtime/engine.h"
#include "tokenizer/chat_template.h"

namespace so {

struct ApiRequest {
  bool chat = false;                   // /v1/chat/completions (messages) or /v1/completions (prompt)
  std::string prompt;                  // completions, as text
  std::vector<int32_t> prompt_tokens;  // completions given as token ids instead
  std::vector<ChatMessage> messages;
  std::string model;  // as the request named it; empty when it named none
  std::optional<int> max_tokens;
  std::optional<double> temperature;
  std::optional<double> top_p;
  std::optional<int> top_k;
  std::optional<double> min_p;
  std::optional<uint64_t> seed;
  std::vector<std::string> stop;  // up to 4 strings; generation ends before the first found
  bool stream = false;            // server-sent events
  bool include_usage = false;     // stream_options.include_usage: a last chunk with usage
};

struct ApiParseOptions {
  std::string_view where;     // prefixes every error, e.g. "line 7: "
  bool allow_stream = false;  // a batch job has no stream to send events on
};

// Reads a request body; an error names the field, what was found and what was expected.
// Fields the engine does not use are ignored (as OpenAI's API ignores them); fields whose
// meaning it cannot honour (n > 1, logprobs, tools, ...) are refused.
Status parse_api_body(const nlohmann::json& body, bool chat, const ApiParseOptions& options, ApiRequest& out);

// The request's sampling over the caller's defaults.
SamplingParams api_sampling(const SamplingParams& defaults, const ApiRequest& request);
// Prompt tokens: chat messages rendered with the model's template (or the named one),
// or the completion prompt's text or ids.
Result<std::vector<int32_t>> api_prompt_tokens(const Engine& engine, const ApiRequest& request,
                                               const std::string& chat_template);

// A finished generation's text: the tokens' pieces as they continue the prompt, cut
// before a matched stop string.
std::string completion_text(const Tokenizer& tokenizer, const GenerationResult& result);
// "stop" (end of generation or a stop string) or "length".
std::string_view api_finish_reason(const GenerationResult& result);

struct ApiCompletion {
  std::string text;
  std::string_view finish_reason;
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
};

// The response body: a chat.completion or a text_completion.
nlohmann::ordered_json api_response_body(const ApiRequest& request, const std::string& id, const std::string& model,
                                         int64_t created, const ApiCompletion& completion);
// One streaming chunk (chat.completion.chunk or text_completion): `text` as the delta;
// finish_reason null until the last.
nlohmann::ordered_json api_stream_chunk(const ApiRequest& request, const std::string& id, const std::string& model,
                                        int64_t created, std::string_view text,
                                        std::optional<std::string_view> finish_reason, bool first);
nlohmann::ordered_json api_usage(int64_t prompt_tokens, int64_t completion_tokens);

// An OpenAI error object: {"error": {"message", "type", "param", "code"}}.
nlohmann::ordered_json api_error_body(std::string_view message, std::string_view type, std::string_view code,
                                      std::string_view param = {});

}  // namespace so
