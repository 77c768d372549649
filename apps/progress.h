// Progress of a batch job on stderr: a live bar on a terminal (done/total, tokens/s,
// acceptance, ETA), a log line every few seconds otherwise, or nothing (kOff).
#pragma once

#include <cstdint>
#include <string>

namespace so::cli {

class Progress {
 public:
  enum class Mode { kOff, kLog, kLive };
  Progress(int64_t total, Mode mode);
  void add_tokens(int64_t n) { tokens_ += n; }
  void finish_request(int64_t drafted, int64_t accepted);
  void skip(int64_t n) { done_ += n; skipped_ += n; }
  void update(bool force = false);  // redraws when due
  void end();                       // the last redraw and a newline
  double elapsed() const;
  int64_t tokens() const { return tokens_; }

 private:
  std::string line() const;
  int64_t total_, done_ = 0, skipped_ = 0, tokens_ = 0, drafted_ = 0, accepted_ = 0;
  Mode mode_;
  double start_, last_draw_ = 0;
};

}  // namespace so::cli
