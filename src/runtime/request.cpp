#include "runtime/request.h"

#include <algorithm>

namespace so {

std::string_view finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kLength:
      return "length";
    case FinishReason::kError:
      return "error";
    case FinishReason::kCancelled:
      return "cancelled";
  }
  return "?";
}

size_t find_stop_string(std::string_view text, size_t searched, const std::vector<std::string>& stops) {
  size_t first = std::string_view::npos;
  for (const std::string& stop : stops) {
    if (stop.empty()) continue;
    const size_t from = searched >= stop.size() - 1 ? searched - (stop.size() - 1) : 0;
    first = std::min(first, text.find(stop, from));
  }
  return first;
}

Status check_generation_request(const GenerationRequest& request, int64_t n_ctx, int64_t n_vocab) {
  if (request.prompt_tokens.empty()) return invalid_argument("the prompt is empty; expected at least one token");
  if (static_cast<int64_t>(request.prompt_tokens.size()) >= n_ctx) {
    return out_of_range("the prompt has ", request.prompt_tokens.size(), " tokens but the model's context is ", n_ctx,
                        "; shorten the prompt");
  }
  if (request.max_tokens < 0) return invalid_argument("max_tokens ", request.max_tokens, " is negative");
  for (int32_t token : request.prompt_tokens) {
    if (token < 0 || token >= n_vocab) {
      return invalid_argument("prompt token id ", token, " is outside the vocabulary [0, ", n_vocab, ")");
    }
  }
  return request.sampling.validate();
}

}  // namespace so
