#include "runtime/openai_api.h"

#include "runtime/chat_prompt.h"

namespace so {
namespace {

using nlohmann::json;

std::string type_name(const json& value) {
  switch (value.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return "a boolean";
    case json::value_t::string:
      return "a string";
    case json::value_t::array:
      return "an array";
    case json::value_t::object:
      return "an object";
    case json::value_t::number_float:
      return "a number";
    default:
      return value.is_number() ? "an integer" : "something else";
  }
}

std::string shown(const json& value) {
  if (!value.is_primitive()) return "";
  std::string text = value.dump(-1, ' ', false, json::error_handler_t::replace);
  if (text.size() > 80) text = text.substr(0, 77) + "...";
  return " " + text;
}

Status field_error(std::string_view where, std::string_view field, std::string_view expected, const json& found) {
  return invalid_argument(where, "\"", field, "\" should be ", expected, ", found ", type_name(found), shown(found));
}

bool present(const json& body, const char* key) { return body.contains(key) && !body[key].is_null(); }

Status read_sampling(const json& body, std::string_view where, ApiRequest& request) {
  for (const char* key : {"max_tokens", "max_completion_tokens"}) {
    if (!present(body, key)) continue;
    const json& value = body[key];
    if (!value.is_number_integer()) return field_error(where, key, "a non-negative integer", value);
    const int64_t n = value.get<int64_t>();
    if (n < 0 || n > 1'000'000) {
      return invalid_argument(where, "\"", key, "\" is ", n, "; expected 0 to 1000000 tokens");
    }
    request.max_tokens = int(n);
  }
  auto number = [&](const char* key, double low, double high, std::optional<double>& out) -> Status {
    if (!present(body, key)) return Status::Ok();
    const json& value = body[key];
    if (!value.is_number()) return field_error(where, key, str_cat("a number in [", low, ", ", high, "]"), value);
    const double x = value.get<double>();
    if (!(x >= low && x <= high)) {
      return invalid_argument(where, "\"", key, "\" is ", x, "; expected a number in [", low, ", ", high, "]");
    }
    out = x;
    return Status::Ok();
  };
  SO_TRY(number("temperature", 0.0, 2.0, request.temperature));
  SO_TRY(number("top_p", 0.0, 1.0, request.top_p));
  SO_TRY(number("min_p", 0.0, 1.0, request.min_p));
  if (present(body, "top_k")) {
    if (!body["top_k"].is_number_integer() || body["top_k"].get<int64_t>() < 0) {
      return field_error(where, "top_k", "a non-negative integer", body["top_k"]);
    }
    request.top_k = int(std::min<int64_t>(body["top_k"].get<int64_t>(), 1 << 30));
  }
  if (present(body, "seed")) {
    if (!body["seed"].is_number_unsigned()) {
      return field_error(where, "seed", "an integer from 0 to 18446744073709551615", body["seed"]);
    }
    request.seed = body["seed"].get<uint64_t>();
  }
  if (present(body, "n") && body["n"] != 1) {
    return invalid_argument(where, "\"n\" is ", body["n"].dump(), "; this engine generates one choice (n = 1)");
  }
  if (present(body, "best_of") && body["best_of"] != 1) {
    return invalid_argument(where, "\"best_of\" is ", body["best_of"].dump(), "; only 1 is supported");
  }
  for (const char* key : {"logprobs", "top_logprobs", "echo", "tools", "functions", "suffix"}) {
    if (!present(body, key)) continue;
    const json& value = body[key];
    const bool off = value == false || value == 0 || (value.is_array() && value.empty());
    if (!off) return invalid_argument(where, "\"", key, "\" is not supported by this engine; remove it");
  }
  if (present(body, "stop")) {
    const json& stop = body["stop"];
    if (stop.is_string()) {
      request.stop.push_back(stop.get<std::string>());
    } else if (stop.is_array() && stop.size() <= 4) {
      for (const json& item : stop) {
        if (!item.is_string()) return field_error(where, "stop", "a string or an array of up to 4 strings", item);
        request.stop.push_back(item.get<std::string>());
      }
    } else {
      return field_error(where, "stop", "a string or an array of up to 4 strings", stop);
    }
    for (const std::string& text : request.stop) {
      if (text.empty()) return invalid_argument(where, "\"stop\" holds an empty string; every stop string needs text");
    }
  }
  if (present(body, "stream")) {
    if (!body["stream"].is_boolean()) return field_error(where, "stream", "a boolean", body["stream"]);
    request.stream = body["stream"].get<bool>();
  }
  if (present(body, "stream_options")) {
    const json& options = body["stream_options"];
    if (!options.is_object()) return field_error(where, "stream_options", "an object", options);
    if (present(options, "include_usage")) {
      if (!options["include_usage"].is_boolean()) {
        return field_error(where, "stream_options.include_usage", "a boolean", options["include_usage"]);
      }
      request.include_usage = options["include_usage"].get<bool>();
    }
  }
  if (present(body, "model")) {
    if (!body["model"].is_string()) return field_error(where, "model", "a string", body["model"]);
    request.model = body["model"].get<std::string>();
  }
  return Status::Ok();
}

// A message's content: a string, or an array of {"type": "text", "text": ...} parts.
Status read_content(const json& content, std::string_view where, const std::string& field, std::string& out) {
  if (content.is_string()) {
    out = content.get<std::string>();
    return Status::Ok();
  }
  if (!content.is_array()) return field_error(where, field, "a string (or an array of text parts)", content);
  for (size_t i = 0; i < content.size(); ++i) {
    const json& part = content[i];
    const std::string part_field = str_cat(field, "[", i, "]");
    if (!part.is_object() || part.value("type", json()) != "text" || !part.contains("text") ||
        !part["text"].is_string()) {
      return field_error(where, part_field, "a text part {\"type\": \"text\", \"text\": ...}", part);
    }
    out += part["text"].get<std::string>();
  }
  return Status::Ok();
}

Status read_messages(const json& body, std::string_view where, ApiRequest& request) {
  if (!body.contains("messages")) return invalid_argument(where, "a chat completion needs \"messages\"");
  const json& messages = body["messages"];
  if (!messages.is_array()) return field_error(where, "messages", "an array of {role, content}", messages);
  if (messages.empty()) return invalid_argument(where, "\"messages\" is empty; expected at least one message");
  for (size_t i = 0; i < messages.size(); ++i) {
    const json& m = messages[i];
    const std::string field = str_cat("messages[", i, "]");
    if (!m.is_object()) return field_error(where, field, "an object {role, content}", m);
    if (!m.contains("role") || !m["role"].is_string()) {
      return field_error(where, field + ".role", "a string (system, user, assistant)", m.value("role", json()));
    }
    const std::string role = m["role"].get<std::string>();
    if (role != "system" && role != "user" && role != "assistant" && role != "developer") {
      return invalid_argument(where, field, ".role is '", role, "'; expected system, user or assistant");
    }
    if (!m.contains("content") || m["content"].is_null()) {
      return field_error(where, field + ".content", "a string", m.value("content", json()));
    }
    std::string content;
    SO_TRY(read_content(m["content"], where, field + ".content", content));
    request.messages.push_back({role == "developer" ? "system" : role, std::move(content)});
  }
  request.chat = true;
  return Status::Ok();
}

// A completion prompt: a string, an array of one string, or an array of token ids.
Status read_prompt(const json& body, std::string_view where, ApiRequest& request) {
  if (!body.contains("prompt")) return invalid_argument(where, "a completion needs \"prompt\"");
  const json& prompt = body["prompt"];
  const char* expected = "a string (or an array of token ids)";
  if (prompt.is_string()) {
    request.prompt = prompt.get<std::string>();
  } else if (prompt.is_array() && prompt.size() == 1 && prompt[0].is_string()) {
    request.prompt = prompt[0].get<std::string>();
  } else if (prompt.is_array() && !prompt.empty() && prompt[0].is_number_integer()) {
    for (const json& token : prompt) {
      if (!token.is_number_integer()) return field_error(where, "prompt", expected, token);
      const int64_t id = token.get<int64_t>();
      if (id < 0 || id > INT32_MAX) return invalid_argument(where, "prompt token id ", id, " is not a token id");
      request.prompt_tokens.push_back(int32_t(id));
    }
  } else if (prompt.is_array() && prompt.size() > 1) {
    return invalid_argument(where, "\"prompt\" holds ", prompt.size(), " prompts; send one prompt per request");
  } else {
    return field_error(where, "prompt", expected, prompt);
  }
  return Status::Ok();
}

}  // namespace

Status parse_api_body(const json& body, bool chat, const ApiParseOptions& options, ApiRequest& out) {
  if (!body.is_object()) return invalid_argument(options.where, "expected a JSON object, found ", type_name(body));
  out = ApiRequest{};
  SO_TRY(chat ? read_messages(body, options.where, out) : read_prompt(body, options.where, out));
  SO_TRY(read_sampling(body, options.where, out));
  if (out.stream && !options.allow_stream) {
    return invalid_argument(options.where, "\"stream\": true has no meaning in a batch job; drop it");
  }
  return Status::Ok();
}

SamplingParams api_sampling(const SamplingParams& defaults, const ApiRequest& request) {
  SamplingParams p = defaults;
  if (request.temperature) p.temperature = float(*request.temperature);
  if (request.top_p) p.top_p = float(*request.top_p);
  if (request.top_k) p.top_k = *request.top_k;
  if (request.min_p) p.min_p = float(*request.min_p);
  if (request.seed) p.seed = *request.seed;
  return p;
}

Result<std::vector<int32_t>> api_prompt_tokens(const Engine& engine, const ApiRequest& request,
                                               const std::string& chat_template) {
  const Tokenizer& tokenizer = engine.tokenizer();
  if (!request.chat) {
    if (!request.prompt_tokens.empty()) return request.prompt_tokens;
    return tokenizer.encode(request.prompt, tokenizer.add_bos_by_default(), /*parse_special=*/false);
  }
  SO_ASSIGN_OR_RETURN(RenderedChat prompt, render_chat_prompt(engine, request.messages, chat_template));
  return chat_prompt_tokens(engine, prompt);
}

std::string completion_text(const Tokenizer& tokenizer, const GenerationResult& result) {
  std::string text;
  for (int32_t token : result.tokens) text += tokenizer.token_to_piece(token);
  text.resize(text.size() - std::min(text.size(), result.stop_cut_bytes));
  return text;
}

std::string_view api_finish_reason(const GenerationResult& result) {
  return result.finish == FinishReason::kStop ? "stop" : "length";
}

nlohmann::ordered_json api_usage(int64_t prompt_tokens, int64_t completion_tokens) {
  return {{"prompt_tokens", prompt_tokens},
          {"completion_tokens", completion_tokens},
          {"total_tokens", prompt_tokens + completion_tokens}};
}

nlohmann::ordered_json api_response_body(const ApiRequest& request, const std::string& id, const std::string& model,
                                         int64_t created, const ApiCompletion& completion) {
  using ordered = nlohmann::ordered_json;
  ordered choice = {{"index", 0}};
  if (request.chat) {
    choice["message"] = {{"role", "assistant"}, {"content", completion.text}};
  } else {
    choice["text"] = completion.text;
  }
  choice["logprobs"] = nullptr;
  choice["finish_reason"] = completion.finish_reason;
  ordered body = {{"id", id}, {"object", request.chat ? "chat.completion" : "text_completion"}};
  if (created > 0) body["created"] = created;
  body["model"] = request.model.empty() ? model : request.model;
  body["choices"] = ordered::array({choice});
  body["usage"] = api_usage(completion.prompt_tokens, completion.completion_tokens);
  return body;
}

nlohmann::ordered_json api_stream_chunk(const ApiRequest& request, const std::string& id, const std::string& model,
                                        int64_t created, std::string_view text,
                                        std::optional<std::string_view> finish_reason, bool first) {
  using ordered = nlohmann::ordered_json;
  ordered choice = {{"index", 0}};
  if (request.chat) {
    ordered delta = ordered::object();
    if (first) delta["role"] = "assistant";
    if (!text.empty() || first) delta["content"] = std::string(text);
    choice["delta"] = delta;
  } else {
    choice["text"] = std::string(text);
  }
  choice["logprobs"] = nullptr;
  choice["finish_reason"] = finish_reason ? ordered(std::string(*finish_reason)) : ordered(nullptr);
  return {{"id", id},
          {"object", request.chat ? "chat.completion.chunk" : "text_completion"},
          {"created", created},
          {"model", request.model.empty() ? model : request.model},
          {"choices", ordered::array({choice})}};
}

nlohmann::ordered_json api_error_body(std::string_view message, std::string_view type, std::string_view code,
                                      std::string_view param) {
  using ordered = nlohmann::ordered_json;
  return {{"error",
           {{"message", std::string(message)},
            {"type", std::string(type)},
            {"param", param.empty() ? ordered(nullptr) : ordered(std::string(param))},
            {"code", code.empty() ? ordered(nullptr) : ordered(std::string(code))}}}};
}

}  // namespace so
