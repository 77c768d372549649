#include "runtime/batch_job.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include <nlohmann/json.hpp>

#include "base/strings.h"

namespace so {

namespace {

using nlohmann::json;

std::string type_name(const json& value) {
  switch (value.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::string: return "a string";
    case json::value_t::array: return "an array";
    case json::value_t::object: return "an object";
    case json::value_t::number_float: return "a number";
    default: return value.is_number() ? "an integer" : "something else";
  }
}

Status field_error(int64_t line, const std::string& field, const std::string& expected, const json& found) {
  return invalid_argument("line ", line, ": \"", field, "\" should be ", expected, ", found ", type_name(found),
                          found.is_primitive() ? str_cat(" ", found.dump(-1, ' ', false, json::error_handler_t::replace))
                                               : std::string());
}

// Sampling fields of a request body (or a plain line); unknown fields are ignored, as the
// OpenAI API ignores what it does not use.
Status read_sampling(const json& body, int64_t line, BatchRequest& request) {
  for (const char* key : {"max_tokens", "max_completion_tokens"}) {
    if (!body.contains(key) || body[key].is_null()) continue;
    const json& value = body[key];
    if (!value.is_number_integer()) return field_error(line, key, "a non-negative integer", value);
    const int64_t n = value.get<int64_t>();
    if (n < 0 || n > 1'000'000) {
      return invalid_argument("line ", line, ": \"", key, "\" is ", n, "; expected 0 to 1000000 tokens");
    }
    request.max_tokens = int(n);
  }
  auto number = [&](const char* key, double low, double high, std::optional<double>& out) -> Status {
    if (!body.contains(key) || body[key].is_null()) return Status::Ok();
    const json& value = body[key];
    if (!value.is_number()) return field_error(line, key, str_cat("a number in [", low, ", ", high, "]"), value);
    const double x = value.get<double>();
    if (!(x >= low && x <= high)) {
      return invalid_argument("line ", line, ": \"", key, "\" is ", x, "; expected a number in [", low, ", ", high, "]");
    }
    out = x;
    return Status::Ok();
  };
  SO_TRY(number("temperature", 0.0, 2.0, request.temperature));
  SO_TRY(number("top_p", 0.0, 1.0, request.top_p));
  SO_TRY(number("min_p", 0.0, 1.0, request.min_p));
  if (body.contains("top_k") && !body["top_k"].is_null()) {
    if (!body["top_k"].is_number_integer() || body["top_k"].get<int64_t>() < 0) {
      return field_error(line, "top_k", "a non-negative integer", body["top_k"]);
    }
    request.top_k = int(body["top_k"].get<int64_t>());
  }
  if (body.contains("seed") && !body["seed"].is_null()) {
    if (!body["seed"].is_number_integer()) return field_error(line, "seed", "an integer", body["seed"]);
    request.seed = body["seed"].get<uint64_t>();
  }
  if (body.contains("n") && !body["n"].is_null() && body["n"] != 1) {
    return invalid_argument("line ", line, ": \"n\" is ", body["n"].dump(), "; batch jobs generate one choice (n = 1)");
  }
  if (body.contains("stream") && body["stream"].is_boolean() && body["stream"].get<bool>()) {
    return invalid_argument("line ", line, ": \"stream\": true has no meaning in a batch job; drop it");
  }
  if (body.contains("model") && body["model"].is_string()) request.model = body["model"].get<std::string>();
  return Status::Ok();
}

Status read_messages(const json& body, int64_t line, BatchRequest& request) {
  const json& messages = body["messages"];
  if (!messages.is_array()) return field_error(line, "messages", "an array of {role, content}", messages);
  if (messages.empty()) return invalid_argument("line ", line, ": \"messages\" is empty; expected at least one message");
  for (size_t i = 0; i < messages.size(); ++i) {
    const json& m = messages[i];
    const std::string where = str_cat("messages[", i, "]");
    if (!m.is_object()) return field_error(line, where, "an object {role, content}", m);
    if (!m.contains("role") || !m["role"].is_string()) {
      return field_error(line, where + ".role", "a string (system, user, assistant)", m.value("role", json()));
    }
    const std::string role = m["role"].get<std::string>();
    if (role != "system" && role != "user" && role != "assistant" && role != "developer") {
      return invalid_argument("line ", line, ": ", where, ".role is '", role, "'; expected system, user or assistant");
    }
    if (!m.contains("content") || !m["content"].is_string()) {
      return field_error(line, where + ".content", "a string", m.value("content", json()));
    }
    request.messages.push_back({role == "developer" ? "system" : role, m["content"].get<std::string>()});
  }
  request.chat = true;
  return Status::Ok();
}

Status read_prompt(const json& body, int64_t line, BatchRequest& request) {
  const json& prompt = body["prompt"];
  if (!prompt.is_string()) return field_error(line, "prompt", "a string", prompt);
  request.prompt = prompt.get<std::string>();
  return Status::Ok();
}

std::string id_of(const json& line_json, int64_t line) {
  for (const char* key : {"custom_id", "id"}) {
    if (line_json.contains(key) && line_json[key].is_string()) return line_json[key].get<std::string>();
  }
  return str_cat("line-", line);
}

}  // namespace

std::string batch_line_id(std::string_view text, int64_t line) {
  const json parsed = json::parse(text, nullptr, /*allow_exceptions=*/false);
  return parsed.is_object() ? id_of(parsed, line) : str_cat("line-", line);
}

Result<BatchRequest> parse_batch_line(std::string_view text, int64_t line) {
  json parsed;
  try {
    parsed = json::parse(text);
  } catch (const json::parse_error& error) {
    return invalid_argument("line ", line, ": not valid JSON (", error.what(),
                            "); expected one JSON object per line, e.g. {\"prompt\": \"...\"}");
  }
  if (!parsed.is_object()) return invalid_argument("line ", line, ": expected a JSON object, found ", type_name(parsed));
  BatchRequest request;
  request.line = line;
  for (const char* key : {"custom_id", "id"}) {
    if (parsed.contains(key) && !parsed[key].is_string()) return field_error(line, key, "a string", parsed[key]);
  }
  request.custom_id = id_of(parsed, line);
  if (request.custom_id.empty()) return invalid_argument("line ", line, ": \"custom_id\" is empty");

  if (parsed.contains("body") || parsed.contains("url")) {  // the Batch API shape
    if (!parsed.contains("custom_id")) {
      return invalid_argument("line ", line, ": a Batch API line needs \"custom_id\" (with \"method\", \"url\", \"body\")");
    }
    if (parsed.contains("method") && parsed["method"] != "POST") {
      return invalid_argument("line ", line, ": \"method\" is ", parsed["method"].dump(), "; expected \"POST\"");
    }
    if (!parsed.contains("url") || !parsed["url"].is_string()) {
      return field_error(line, "url", "\"/v1/chat/completions\" or \"/v1/completions\"", parsed.value("url", json()));
    }
    const std::string url = parsed["url"].get<std::string>();
    if (!parsed.contains("body") || !parsed["body"].is_object()) {
      return field_error(line, "body", "an object (the request body)", parsed.value("body", json()));
    }
    const json& body = parsed["body"];
    if (url == "/v1/chat/completions") {
      if (!body.contains("messages")) return invalid_argument("line ", line, ": a chat completion body needs \"messages\"");
      SO_TRY(read_messages(body, line, request));
    } else if (url == "/v1/completions") {
      if (!body.contains("prompt")) return invalid_argument("line ", line, ": a completion body needs \"prompt\"");
      SO_TRY(read_prompt(body, line, request));
    } else {
      return invalid_argument("line ", line, ": url '", url,
                              "' is not served; expected /v1/chat/completions or /v1/completions");
    }
    SO_TRY(read_sampling(body, line, request));
    return request;
  }
  if (parsed.contains("messages")) {
    SO_TRY(read_messages(parsed, line, request));
  } else if (parsed.contains("prompt")) {
    SO_TRY(read_prompt(parsed, line, request));
  } else {
    return invalid_argument("line ", line, ": expected \"prompt\" or \"messages\" (or a Batch API line with "
                            "\"custom_id\", \"url\" and \"body\")");
  }
  SO_TRY(read_sampling(parsed, line, request));
  return request;
}

std::string batch_success_record(const BatchRequest& request, const std::string& model_name,
                                 const BatchCompletion& completion) {
  // note: ordered, so records read in the Batch API's field order.
  using ordered = nlohmann::ordered_json;
  ordered choice = {{"index", 0}};
  if (request.chat) {
    choice["message"] = {{"role", "assistant"}, {"content", completion.text}};
  } else {
    choice["text"] = completion.text;
  }
  choice["finish_reason"] = completion.finish_reason;
  const ordered body = {{"id", str_cat(request.chat ? "chatcmpl-" : "cmpl-", request.custom_id)},
                     {"object", request.chat ? "chat.completion" : "text_completion"},
                     {"model", request.model.empty() ? model_name : request.model},
                     {"choices", ordered::array({choice})},
                     {"usage",
                      {{"prompt_tokens", completion.prompt_tokens},
                       {"completion_tokens", completion.completion_tokens},
                       {"total_tokens", completion.prompt_tokens + completion.completion_tokens}}}};
  const ordered record = {
      {"id", str_cat("batch_req_", request.line)},
      {"custom_id", request.custom_id},
      {"response", {{"status_code", 200}, {"request_id", str_cat("req_", request.line)}, {"body", body}}},
      {"error", nullptr},
      {"line", request.line}};
  return record.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string batch_error_record(int64_t line, const std::string& custom_id, std::string_view code,
                               const std::string& message) {
  const nlohmann::ordered_json record = {{"id", str_cat("batch_req_", line)},
                                         {"custom_id", custom_id},
                                         {"response", nullptr},
                                         {"error", {{"code", std::string(code)}, {"message", message}}},
                                         {"line", line}};
  return record.dump(-1, ' ', false, json::error_handler_t::replace);
}

Status recover_batch_output(const std::string& path, BatchDone& done) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::Ok();  // nothing written yet
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  in.close();
  const size_t whole = content.rfind('\n') == std::string::npos ? 0 : content.rfind('\n') + 1;
  if (whole < content.size()) {
    // A crash mid-append: drop the torn record; its request runs again.
    if (::truncate(path.c_str(), off_t(whole)) != 0) {
      return io_error("cannot repair '", path, "' (truncate to ", whole, " bytes): ", std::strerror(errno));
    }
    done.repaired = true;
  }
  size_t start = 0;
  int64_t line_number = 0;
  while (start < whole) {
    const size_t end = content.find('\n', start);
    ++line_number;
    const json record = json::parse(std::string_view(content).substr(start, end - start), nullptr, false);
    if (!record.is_object() || !record.contains("line") || !record["line"].is_number_integer()) {
      return format_error("'", path, "' line ", line_number, " is not a record this tool wrote; expected a JSON object "
                          "with \"custom_id\" and \"line\". Give a new --output, or remove the foreign lines");
    }
    if (record.contains("custom_id") && record["custom_id"].is_string() && record.value("response", json()).is_object()) {
      done.ids.insert(record["custom_id"].get<std::string>());
    }
    done.lines.insert(record["line"].get<int64_t>());
    ++done.records;
    start = end + 1;
  }
  return Status::Ok();
}

Result<DurableLineWriter> DurableLineWriter::open(const std::string& path) {
  DurableLineWriter writer;
  writer.path_ = path;
  writer.fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (writer.fd_ < 0) return io_error("cannot open '", path, "' for appending: ", std::strerror(errno));
  return writer;
}

DurableLineWriter::DurableLineWriter(DurableLineWriter&& other) noexcept { *this = std::move(other); }

DurableLineWriter& DurableLineWriter::operator=(DurableLineWriter&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    path_ = std::move(other.path_);
  }
  return *this;
}

DurableLineWriter::~DurableLineWriter() {
  if (fd_ >= 0) ::close(fd_);
}

Status DurableLineWriter::append(const std::string& line) {
  const std::string data = line + "\n";
  size_t written = 0;
  while (written < data.size()) {
    const ssize_t n = ::write(fd_, data.data() + written, data.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return io_error("writing '", path_, "' failed: ", std::strerror(errno));
    written += size_t(n);
  }
  if (::fdatasync(fd_) != 0) return io_error("syncing '", path_, "' failed: ", std::strerror(errno));
  return Status::Ok();
}

Result<std::pair<int, int>> parse_shard(std::string_view text) {
  const size_t slash = text.find('/');
  int index = -1, count = 0;
  if (slash != std::string_view::npos) {
    const std::string left(text.substr(0, slash)), right(text.substr(slash + 1));
    char* end = nullptr;
    index = int(std::strtol(left.c_str(), &end, 10));
    if (left.empty() || *end != '\0') index = -1;
    count = int(std::strtol(right.c_str(), &end, 10));
    if (right.empty() || *end != '\0') count = 0;
  }
  if (count < 1 || index < 0 || index >= count) {
    return invalid_argument("--shard '", text, "' should be I/N with 0 <= I < N, e.g. 0/4 (the first of four shards)");
  }
  return std::pair{index, count};
}

}  // namespace so
