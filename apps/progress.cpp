#include "progress.h"

#include <algorithm>
#include <cstdio>

#include "base/timer.h"

namespace so::cli {

Progress::Progress(int64_t total, Mode mode) : total_(total), mode_(mode), start_(now_seconds()) {}

double Progress::elapsed() const { return now_seconds() - start_; }

void Progress::finish_request(int64_t drafted, int64_t accepted) {
  ++done_;
  drafted_ += drafted;
  accepted_ += accepted;
  update();
}

std::string Progress::line() const {
  const double seconds = std::max(elapsed(), 1e-9);
  const double rate = double(tokens_) / seconds;
  const int64_t run = done_ - skipped_, left = total_ - done_;
  const double eta = run > 0 ? seconds / double(run) * double(left) : 0.0;
  char text[256];
  const int width = 24;
  const int filled = total_ > 0 ? int(double(done_) / double(total_) * width) : width;
  std::string bar(size_t(filled), '=');
  bar.resize(size_t(width), ' ');
  std::snprintf(text, sizeof text, "[%s] %lld/%lld | %.1f tok/s", bar.c_str(), static_cast<long long>(done_),
                static_cast<long long>(total_), rate);
  std::string out = text;
  if (drafted_ > 0) {
    std::snprintf(text, sizeof text, " | accept %.2f", double(accepted_) / double(drafted_));
    out += text;
  }
  std::snprintf(text, sizeof text, " | %.0f s, ETA %.0f s", seconds, eta);
  return out + text;
}

void Progress::update(bool force) {
  if (mode_ == Mode::kOff) return;
  const double now = elapsed();
  const double period = mode_ == Mode::kLive ? 0.2 : 10.0;
  if (!force && now - last_draw_ < period) return;
  last_draw_ = now;
  if (mode_ == Mode::kLive) {
    std::fprintf(stderr, "\r%s\033[K", line().c_str());
  } else {
    std::fprintf(stderr, "progress %s\n", line().c_str());
  }
  std::fflush(stderr);
}

void Progress::end() {
  update(/*force=*/true);
  if (mode_ == Mode::kLive) std::fprintf(stderr, "\n");
}

}  // namespace so::cli
