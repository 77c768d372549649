#include "runtime/batch_job.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <limits>
#include <cstdio>
#include <cstring>
#include <fstream>

#include <nlohmann/json.hpp>
#include <xxhash.h>

#include "base/file_checks.h"
#include "base/strings.h"

namespace so {

namespace {

using nlohmann::json;

// How every record starts (ordered_json keeps "id" first); a torn last line must start so.
constexpr std::string_view kRecordStart = R"({"id":"batch_req_)";

std::string id_of(const json& line_json, int64_t line) {
  for (const char* key : {"custom_id", "id"}) {
    if (line_json.contains(key) && line_json[key].is_string()) return line_json[key].get<std::string>();
  }
  return str_cat("line-", line);
}

}  // namespace

bool is_reserved_batch_id(std::string_view id) {
  if (!str_starts_with(id, "line-") || id.size() == 5) return false;
  return id.find_first_not_of("0123456789", 5) == std::string_view::npos;
}

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
  request.input_hash = batch_line_hash(text);
  if (request.custom_id.empty()) return invalid_argument(where, "\"custom_id\" is empty");
  if (is_reserved_batch_id(request.custom_id) && (parsed.contains("custom_id") || parsed.contains("id"))) {
    return invalid_argument(where, "custom_id \"", request.custom_id,
                            "\" has the form this tool gives lines without one (line-N), so it could name another "
                            "line's request; choose another id");
  }
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

std::string batch_line_hash(std::string_view text) {
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(XXH3_64bits(text.data(), text.size())));
  return hex;
}

bool BatchDone::claim(const std::string& custom_id, const std::string& input_hash) {
  for (const std::string& hash : {input_hash, std::string()}) {
    auto found = records_of.find({custom_id, hash});
    if (found != records_of.end() && found->second > 0) {
      --found->second;
      return true;
    }
  }
  return false;
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
      {"line", request.line},
      {"input_hash", request.input_hash}};
  return record.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string batch_error_record(int64_t line, const std::string& custom_id, const std::string& input_hash,
                               std::string_view code, const std::string& message) {
  const nlohmann::ordered_json record = {{"id", str_cat("batch_req_", line)},
                                         {"custom_id", custom_id},
                                         {"response", nullptr},
                                         {"error", {{"code", std::string(code)}, {"message", message}}},
                                         {"line", line},
                                         {"input_hash", input_hash}};
  return record.dump(-1, ' ', false, json::error_handler_t::replace);
}

Status recover_batch_output(const std::string& path, BatchDone& done) {
  if (::access(path.c_str(), F_OK) != 0) return Status::Ok();  // nothing written yet
  SO_TRY(check_output_file("the output", path, /*read_back=*/true));
  std::ifstream in(path, std::ios::binary);
  if (!in) return io_error("cannot read '", path, "' back to resume: ", std::strerror(errno));
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  in.close();
  const size_t whole = content.rfind('\n') == std::string::npos ? 0 : content.rfind('\n') + 1;
  const auto foreign = [&](const std::string& what) {
    return format_error("'", path, "' ", what, ", so it is not an output this tool wrote; nothing was changed. Give a "
                        "new --output (or --errors), or remove the foreign lines");
  };
  // Every whole line first: a file with anything foreign is left as it is.
  BatchDone found;
  size_t start = 0;
  int64_t line_number = 0;
  while (start < whole) {
    const size_t end = content.find('\n', start);
    ++line_number;
    const json record = json::parse(std::string_view(content).substr(start, end - start), nullptr, false);
    if (!record.is_object() || !record.contains("line") || !record["line"].is_number_integer() ||
        !record.contains("custom_id") || !record["custom_id"].is_string()) {
      return foreign(str_cat("line ", line_number, " is not a record with \"custom_id\" and \"line\""));
    }
    const std::string id = record["custom_id"].get<std::string>();
    const json hash = record.value("input_hash", json());
    found.records_of[{id, hash.is_string() ? hash.get<std::string>() : std::string()}] += 1;
    found.ids.insert(id);
    ++found.records;
    start = end + 1;
  }
  const std::string_view tail = std::string_view(content).substr(whole);
  if (!tail.empty()) {
    const size_t n = std::min(tail.size(), kRecordStart.size());
    if (tail.substr(0, n) != kRecordStart.substr(0, n)) {
      return foreign(str_cat("ends with ", tail.size(), " bytes that are not the start of a record"));
    }
    // A crash mid-append: drop the torn record; its request runs again.
    if (::truncate(path.c_str(), off_t(whole)) != 0) {
      return io_error("cannot repair '", path, "' (truncate to ", whole, " bytes): ", std::strerror(errno));
    }
    found.repaired = true;
  }
  for (auto& [key, count] : found.records_of) done.records_of[key] += count;
  done.ids.insert(found.ids.begin(), found.ids.end());
  done.records += found.records;
  done.repaired |= found.repaired;
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
  // note: from_chars refuses signs, spaces and values past int, which strtol would clamp.
  auto number = [](std::string_view digits, int& out) {
    const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), out);
    return error == std::errc() && end == digits.data() + digits.size() && !digits.empty();
  };
  if (slash == std::string_view::npos || !number(text.substr(0, slash), index) ||
      !number(text.substr(slash + 1), count) || count < 1 || index < 0 || index >= count) {
    return invalid_argument("--shard '", text, "' should be I/N with 0 <= I < N <= ", std::numeric_limits<int>::max(),
                            ", e.g. 0/4 (the first of four shards)");
  }
  return std::pair{index, count};
}

}  // namespace so
