// Progress of a long step on stderr: a bar redrawn in place on a terminal, a line every 10% (and
// at most every few seconds) otherwise, so that nothing long is silent (issue #16). A step killed
// midway (Ctrl-C) leaves what the step's own protocol leaves: index writes are atomic or appended
// past the committed length, so an interrupted compaction or rebuild only costs the work done.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace facesearch {

// What long steps report to; the core never prints, the CLI passes a ProgressBar.
class ProgressSink {
 public:
  virtual ~ProgressSink() = default;
  virtual void Start(const std::string& what, int64_t total) = 0;
  virtual void Advance(int64_t done) = 0;
  virtual void Finish() = 0;
};

// Writes to stderr (fd 2); the bar form when stderr is a terminal.
class ProgressBar final : public ProgressSink {
 public:
  ProgressBar();
  void Start(const std::string& what, int64_t total) override;
  void Advance(int64_t done) override;
  void Finish() override;

 private:
  void Line(int64_t done, bool final);
  bool tty_ = false;
  std::string what_;
  int64_t total_ = 0;
  int last_tenth_ = -1;
  std::chrono::steady_clock::time_point start_, last_;
};

}  // namespace facesearch
