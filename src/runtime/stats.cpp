#include "runtime/stats.h"

#include <cstdio>
#include <nlohmann/json.hpp>

#include "base/strings.h"

namespace so {

void EngineStats::record_verification(int drafted, int accepted) {
  if (drafted <= 0) return;
  spec_row_passes += 1;
  drafted_tokens += drafted;
  accepted_tokens += accepted;
  if (static_cast<int>(accepted_histogram.size()) <= accepted) accepted_histogram.resize(accepted + 1, 0);
  accepted_histogram[accepted] += 1;
}

std::string EngineStats::summary_line() const {
  char line[512];
  std::snprintf(line, sizeof line,
                "prefill %lld tok %.2f s (%.1f tok/s) | decode %lld tok %.2f s (%.1f tok/s) | read %s (%.2f GB/s) | "
                "%lld steps",
                static_cast<long long>(prefill_tokens), prefill_seconds, prefill_tokens_per_second(),
                static_cast<long long>(decode_tokens), decode_seconds + draft_seconds - draft_hidden_seconds,
                decode_tokens_per_second(),
                format_bytes(double(weight_bytes_read + kv_bytes_read)).c_str(), bytes_per_second() / 1e9,
                static_cast<long long>(steps));
  std::string result = line;
  if (streamed_bytes > 0) {
    std::snprintf(line, sizeof line, " | streamed %s in %.2f s of copies (%.2f GB/s), compute waited %.2f s",
                  format_bytes(double(streamed_bytes)).c_str(), copy_busy_seconds,
                  copy_busy_seconds > 0 ? streamed_bytes / copy_busy_seconds / 1e9 : 0.0, copy_wait_seconds);
    result += line;
  }
  if (disk_read_bytes > 0) {
    std::snprintf(line, sizeof line, " | disk %s in %.2f s of reads (%.2f GB/s)", format_bytes(double(disk_read_bytes)).c_str(),
                  disk_busy_seconds, disk_busy_seconds > 0 ? disk_read_bytes / disk_busy_seconds / 1e9 : 0.0);
    result += line;
  }
  if (host_attention_seconds > 0) {
    std::snprintf(line, sizeof line, " | host KV: attention %.2f s, activations %s in %.2f s",
                  host_attention_seconds,
                  format_bytes(double(activation_bytes_to_host + activation_bytes_to_device)).c_str(),
                  activation_transfer_seconds);
    result += line;
  }
  if (spec_row_passes > 0) {
    std::snprintf(line, sizeof line, " | spec alpha %.3f tau %.2f k %.2f | draft %.2f s verify %.2f s",
                  acceptance_rate(), tokens_per_pass(), mean_draft_length(), draft_seconds, decode_seconds);
    result += line;
    if (draft_hidden_seconds > 0) {
      std::snprintf(line, sizeof line, " (%.2f s of drafting beside verification)", draft_hidden_seconds);
      result += line;
    }
  }
  return result;
}

std::string EngineStats::to_json() const {
  nlohmann::ordered_json json = {
      {"steps", steps},
      {"prefill_tokens", prefill_tokens},
      {"prefill_seconds", prefill_seconds},
      {"prefill_tokens_per_second", prefill_tokens_per_second()},
      {"decode_tokens", decode_tokens},
      {"decode_seconds", decode_seconds + draft_seconds - draft_hidden_seconds},
      {"decode_tokens_per_second", decode_tokens_per_second()},
      {"verify_tokens", verify_tokens},
      {"verify_seconds", decode_seconds},
      {"draft_seconds", draft_seconds},
      {"draft_hidden_seconds", draft_hidden_seconds},
      {"draft_catch_up_seconds", draft_catch_up_seconds},
      {"draft_fed_tokens", draft_fed_tokens},
      {"weight_bytes_read", weight_bytes_read},
      {"kv_bytes_read", kv_bytes_read},
      {"bytes_per_second", bytes_per_second()},
      {"streamed_bytes", streamed_bytes},
      {"copy_wait_seconds", copy_wait_seconds},
      {"copy_busy_seconds", copy_busy_seconds},
      {"disk_read_bytes", disk_read_bytes},
      {"disk_busy_seconds", disk_busy_seconds},
      {"host_attention_seconds", host_attention_seconds},
      {"activation_bytes_to_host", activation_bytes_to_host},
      {"activation_bytes_to_device", activation_bytes_to_device},
      {"activation_transfer_seconds", activation_transfer_seconds},
      {"passes", passes},
      {"pass_seconds", pass_seconds},
      {"spec_row_passes", spec_row_passes},
      {"drafted_tokens", drafted_tokens},
      {"accepted_tokens", accepted_tokens},
      {"acceptance_rate", acceptance_rate()},
      {"tokens_per_pass", tokens_per_pass()},
      {"mean_draft_length", mean_draft_length()},
      {"acceptance_histogram", accepted_histogram},
  };
  json["replans"] = nlohmann::ordered_json::array();
  for (const ReplanRecord& r : replans) {
    json["replans"].push_back({{"pass", r.pass}, {"alpha", r.alpha}, {"rows", r.rows}, {"draft_length", r.draft_length},
                               {"schedule", r.interleaved ? "interleaved" : "serial"}});
  }
  return json.dump();
}

}  // namespace so
