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
  if (!parsed.is_object()) {
    return invalid_argument("line ", line, ": expected a JSON object, found ",
                            parsed.is_array() ? "an array" : "a JSON value that is not an object");
  }
  BatchRequest request;
  request.line = line;
  const std::string where = str_cat("line ", line, ": ");
  for (const char* key : {"custom_id", "id"}) {
    if (parsed.contains(key) && !parsed[key].is_string()) {
      return invalid_argument(where, "\"", key, "\" should be a string, found ", parsed[key].dump());
    }
  }
  request.custom_id = id_of(parsed, line);
  if (request.custom_id.empty()) return invalid_argument(where, "\"custom_id\" is empty");
  const ApiParseOptions options{where, /*allow_stream=*/false};

  if (parsed.contains("body") || parsed.contains("url")) {  // the Batch API shape
    if (!parsed.contains("custom_id")) {
      return invalid_argument(where, "a Batch API line needs \"custom_id\" (with \"method\", \"url\", \"body\")");
    }
    if (parsed.contains("method") && parsed["method"] != "POST") {
      return invalid_argument(where, "\"method\" is ", parsed["method"].dump(), "; expected \"POST\"");
    }
    const json url = parsed.value("url", json());
    const bool chat = url == "/v1/chat/completions";
    if (!chat && url != "/v1/completions") {
      return invalid_argument(where, "url ", url.dump(), " is not served; expected \"/v1/chat/completions\" or "
                              "\"/v1/completions\"");
    }
    if (!parsed.contains("body") || !parsed["body"].is_object()) {
      return invalid_argument(where, "\"body\" should be an object (the request body), found ",
                              parsed.value("body", json()).dump());
    }
    SO_TRY(parse_api_body(parsed["body"], chat, options, request.api));
    return request;
  }
  if (!parsed.contains("messages") && !parsed.contains("prompt")) {
    return invalid_argument(where, "expected \"prompt\" or \"messages\" (or a Batch API line with "
                            "\"custom_id\", \"url\" and \"body\")");
  }
  SO_TRY(parse_api_body(parsed, parsed.contains("messages"), options, request.api));
  return request;
}

std::string batch_success_record(const BatchRequest& request, const std::string& model_name,
                                 const ApiCompletion& completion) {
  // note: ordered, so records read in the Batch API's field order.
  const nlohmann::ordered_json body = api_response_body(
      request.api, str_cat(request.api.chat ? "chatcmpl-" : "cmpl-", request.custom_id), model_name, 0, completion);
  const nlohmann::ordered_json record = {
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
