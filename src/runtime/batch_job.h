// Batch jobs (`specoffload run`): JSONL input lines as requests, output records in the
// OpenAI Batch API format, and the recovery that makes a job resumable after a crash.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "base/status.h"
#include "runtime/openai_api.h"

namespace so {

// One request, from a line in the Batch API shape ({"custom_id", "method", "url", "body"})
// or a plain one ({"prompt": ...} or {"messages": [...]}, optional "id").
struct BatchRequest {
  int64_t line = 0;       // 1-based line number in the input
  std::string custom_id;  // "line-N" when the line has none
  ApiRequest api;
};

// A line that is not a request gives an error saying what was expected and what was found.
Result<BatchRequest> parse_batch_line(std::string_view text, int64_t line);
// The custom_id a line names, when it is readable at all (for error records).
std::string batch_line_id(std::string_view text, int64_t line);

// One output line (no newline) in the Batch API output format.
std::string batch_success_record(const BatchRequest& request, const std::string& model_name,
                                 const ApiCompletion& completion);
// An error record: response null, error {code, message}; "line" tells which input line.
std::string batch_error_record(int64_t line, const std::string& custom_id, std::string_view code,
                               const std::string& message);

// What an output file already holds. A torn last line (a crash mid-write) is cut off, so
// the file ends with a whole record; the request it belonged to runs again.
struct BatchDone {
  std::unordered_set<std::string> ids;   // custom_ids with a record
  std::unordered_set<int64_t> lines;     // input lines with a record
  int64_t records = 0;
  bool repaired = false;                 // a torn last line was removed
};
Status recover_batch_output(const std::string& path, BatchDone& done);

// Appends whole lines and makes each durable (fdatasync) before returning.
class DurableLineWriter {
 public:
  static Result<DurableLineWriter> open(const std::string& path);
  DurableLineWriter(DurableLineWriter&& other) noexcept;
  DurableLineWriter& operator=(DurableLineWriter&& other) noexcept;
  DurableLineWriter(const DurableLineWriter&) = delete;
  ~DurableLineWriter();
  Status append(const std::string& line);

 private:
  DurableLineWriter() = default;
  int fd_ = -1;
  std::string path_;
};

// "I/N" -> (I, N) with 0 <= I < N.
Result<std::pair<int, int>> parse_shard(std::string_view text);

}  // namespace so
