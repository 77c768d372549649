// One generation request and its result, as the scheduler sees them.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "sampler/sampler.h"

namespace so {

// kCancelled: the requester gave up (a server client went away, a stop string matched).
enum class FinishReason { kStop, kLength, kError, kCancelled };
std::string_view finish_reason_name(FinishReason reason);

struct GenerationRequest {
  std::vector<int32_t> prompt_tokens;
  int max_tokens = 128;
  SamplingParams sampling;
  bool ignore_eos = false;  // keep going past end-of-generation tokens
  uint64_t stream_id = 0;   // keys the sampling RNG together with the seed
  // Generation ends (kStop) once the text of the generated tokens contains one of these.
  std::vector<std::string> stop;
};

struct GenerationResult {
  std::vector<int32_t> tokens;  // generated, without the end-of-generation token
  FinishReason finish = FinishReason::kLength;
  Status error;                 // set when finish == kError
  int64_t drafted_tokens = 0;   // speculation: drafts verified for this request
  int64_t accepted_tokens = 0;  // and accepted
  // A stop string matched: bytes at the end of the tokens' text (the stop string and what
  // follows it in the last token) that are not part of the completion.
  size_t stop_cut_bytes = 0;
};

// Called after each generated token: (request index, token).
using TokenCallback = std::function<void(size_t request, int32_t token)>;
// Called once per request as soon as it is finished (stop, length or error), with its result.
using FinishCallback = std::function<void(size_t request, const GenerationResult& result)>;

// Where the first of `stops` starts in `text`, counting only matches that end past
// `searched` (the text before it was searched already); npos when none.
size_t find_stop_string(std::string_view text, size_t searched, const std::vector<std::string>& stops);

// Whether a request can run on a model of this context and vocabulary; the error says why not.
Status check_generation_request(const GenerationRequest& request, int64_t n_ctx, int64_t n_vocab);

}  // namespace so
