// Batch jobs (`specoffload run`): JSONL input lines as requests, output records in the
// OpenAI Batch API format, and the recovery that makes a job resumable after a crash.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "base/status.h"
#include "runtime/openai_api.h"

namespace so {

// One request, from a line in the Batch API shape ({"custom_id", "method", "url", "body"})
// or a plain one ({"prompt": ...} or {"messages": [...]}, optional "id").
struct BatchRequest {
  int64_t line = 0;       // 1-based line number in the input
  std::string custom_id;  // "line-N" when the line has none
  std::string input_hash;  // batch_line_hash of the line
  ApiRequest api;
};

// A line that is not a request gives an error saying what was expected and what was found.
// A custom_id of the form the tool gives lines without one ("line-N") is refused: it could
// name another line's request.
Result<BatchRequest> parse_batch_line(std::string_view text, int64_t line);
// The custom_id a line names, when it is readable at all (for error records).
std::string batch_line_id(std::string_view text, int64_t line);
// Whether an id has the form given to lines without one ("line-N"); a line may not name it.
bool is_reserved_batch_id(std::string_view id);
// The hash every record of the line carries (16 hex digits of XXH3-64): a resumed job tells
// a line it finished from an edited one with the same custom_id.
std::string batch_line_hash(std::string_view text);

// One output line (no newline) in the Batch API output format.
std::string batch_success_record(const BatchRequest& request, const std::string& model_name,
                                 const ApiCompletion& completion);
// An error record: response null, error {code, message}; "line" tells which input line.
std::string batch_error_record(int64_t line, const std::string& custom_id, const std::string& input_hash,
                               std::string_view code, const std::string& message);

// What the output files already hold, to resume: the records by (custom_id, input hash).
struct BatchDone {
  std::map<std::pair<std::string, std::string>, int> records_of;  // how many records carry each
  std::unordered_set<std::string> ids;  // custom_ids with a record
  int64_t records = 0;
  bool repaired = false;  // a torn last line was removed
  // Whether a line (its custom_id and hash) has a record left to claim; claims it. A record
  // written before hashes were recorded matches by custom_id alone.
  bool claim(const std::string& custom_id, const std::string& input_hash);
};
// Reads an output file back. Every line must be a record this tool wrote; a torn last line
// (a crash mid-write, the start of a record) is then cut off, so the file ends with a whole
// record and the request it belonged to runs again. Any other content is refused before a
// byte changes. A file that does not exist holds nothing.
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
