#include "common/progress.h"

#include <unistd.h>

#include <cstdio>

namespace facesearch {

ProgressBar::ProgressBar() : tty_(::isatty(STDERR_FILENO) == 1) {}

void ProgressBar::Start(const std::string& what, int64_t total) {
  what_ = what;
  total_ = total;
  last_tenth_ = 0;
  start_ = last_ = std::chrono::steady_clock::now();
  Line(0, false);
}

void ProgressBar::Advance(int64_t done) {
  const auto now = std::chrono::steady_clock::now();
  const int tenth = total_ > 0 ? static_cast<int>(done * 10 / total_) : 0;
  // A terminal redraws at most 10 times a second; a log gets a line per 10%, or every 5 s.
  if (tty_ ? now - last_ < std::chrono::milliseconds(100)
           : tenth == last_tenth_ && now - last_ < std::chrono::seconds(5))
    return;
  last_ = now;
  last_tenth_ = tenth;
  Line(done, false);
}

void ProgressBar::Finish() { Line(total_, true); }

void ProgressBar::Line(int64_t done, bool final) {
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double share = total_ > 0 ? static_cast<double>(done) / static_cast<double>(total_) : 1.0;
  if (tty_) {
    constexpr int kWidth = 30;
    const int filled = static_cast<int>(share * kWidth);
    std::fprintf(stderr, "\r%s [%.*s%*s] %3.0f%% %lld/%lld %.1f s%s", what_.c_str(), filled,
                 "##############################", kWidth - filled, "", share * 100,
                 static_cast<long long>(done), static_cast<long long>(total_), seconds, final ? "\n" : "");
  } else {
    std::fprintf(stderr, "facesearch: %s: %lld/%lld (%.0f%%) %.1f s%s\n", what_.c_str(),
                 static_cast<long long>(done), static_cast<long long>(total_), share * 100, seconds,
                 final ? ", done" : "");
  }
  std::fflush(stderr);
}

}  // namespace facesearch
