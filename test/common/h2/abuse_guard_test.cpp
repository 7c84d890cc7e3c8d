// AbuseGuard as a table: frame sequences in, the first violation (or none) out.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "common/h2/abuse_guard.h"

using namespace ambient;
using namespace ambient::h2;
using namespace std::chrono_literals;

namespace {

enum : std::uint8_t { DATA = 0, HEADERS = 1, PRIORITY = 2, RST = 3, SETTINGS = 4, PING = 6, GOAWAY = 7, WINDOW = 8, CONT = 9 };
constexpr std::uint8_t END_STREAM = 0x1, ACK = 0x1, END_HEADERS = 0x4;

struct Step {
  FrameHead frame;
  int times = 1;
  std::chrono::milliseconds at{0};  // time of these frames, from the start
};

struct Row {
  const char* name;
  std::vector<Step> steps;
  const char* violation;  // substring of the reason, or nullptr for none
  int frames_before = -1;  // frames accepted before the violation (-1: do not check)
};

AbuseLimits small() {
  AbuseLimits l;
  l.control_frame_burst = 10;
  l.control_frames_per_second = 10;
  l.max_empty_frames = 3;
  return l;
}

}  // namespace

TEST_SUITE("common/h2/abuse_guard") {
  TEST_CASE("frame sequences") {
    const std::vector<Row> rows = {
        {"10 PINGs fit the burst", {{{PING, 0, 8, 0}, 10}}, nullptr},
        {"the 11th PING is a flood", {{{PING, 0, 8, 0}, 11}}, "control frame flood", 10},
        {"PING ACKs are free", {{{PING, ACK, 8, 0}, 1000}}, nullptr},
        {"SETTINGS ACKs are free", {{{SETTINGS, ACK, 0, 0}, 1000}}, nullptr},
        {"SETTINGS count", {{{SETTINGS, 0, 6, 0}, 11}}, "control frame flood", 10},
        {"PRIORITY counts", {{{PRIORITY, 0, 5, 1}, 11}}, "control frame flood", 10},
        {"unknown types count", {{{0x42, 0, 1, 0}, 11}}, "control frame flood", 10},
        {"the bucket refills: 10 now, 10 a second later", {{{PING, 0, 8, 0}, 10, 0ms}, {{PING, 0, 8, 0}, 10, 1000ms}}, nullptr},
        {"half a second refills 5", {{{PING, 0, 8, 0}, 10, 0ms}, {{PING, 0, 8, 0}, 6, 500ms}}, "control frame flood", 15},
        {"WINDOW_UPDATE and RST_STREAM are not control floods", {{{WINDOW, 0, 4, 0}, 1000}, {{RST, 0, 4, 1}, 1000}}, nullptr},
        {"DATA with payload never counts", {{{DATA, 0, 100, 1}, 10000}}, nullptr},
        {"3 empty DATA frames are allowed", {{{DATA, 0, 0, 1}, 3}}, nullptr},
        {"the 4th consecutive empty frame is a flood", {{{DATA, 0, 0, 1}, 4}}, "empty frame flood", 3},
        {"a frame with payload resets the run", {{{DATA, 0, 0, 1}, 3}, {{DATA, 0, 1, 1}, 1}, {{DATA, 0, 0, 1}, 3}}, nullptr},
        {"empty DATA with END_STREAM is not empty", {{{DATA, END_STREAM, 0, 1}, 100}}, nullptr},
        {"empty HEADERS without END flags count as empty", {{{HEADERS, 0, 0, 1}, 4}}, "empty frame flood", 3},
        {"one HEADERS frame over the byte limit", {{{HEADERS, END_HEADERS, 1001, 1}, 1}}, "header block of 1001 bytes", 0},
        {"a PUSH_PROMISE over the byte limit", {{{5, END_HEADERS, 1001, 2}, 1}}, "header block of 1001 bytes", 0},
        {"CONTINUATION sizes are nghttp2's to bound", {{{HEADERS, 0, 900, 1}, 1}, {{CONT, 0, 900, 1}, 10}}, nullptr},
        {"blocks under the limit, many of them", {{{HEADERS, END_HEADERS, 1000, 1}, 1000}}, nullptr},
    };
    for (const auto& row : rows) {
      CAPTURE(row.name);
      const auto t0 = std::chrono::steady_clock::now();
      AbuseGuard guard(small(), 1000, t0);
      std::optional<Violation> v;
      int accepted = 0;
      for (const auto& step : row.steps) {
        for (int i = 0; i < step.times && !v; ++i) {
          v = guard.on_frame(step.frame, t0 + step.at);
          if (!v) ++accepted;
        }
      }
      if (row.violation == nullptr) {
        CHECK_FALSE(v.has_value());
      } else {
        REQUIRE(v.has_value());
        CHECK(v->code == kEnhanceYourCalm);
        CHECK(v->reason.find(row.violation) != std::string::npos);
        if (row.frames_before >= 0) CHECK(accepted == row.frames_before);
      }
    }
  }

  TEST_CASE("premature resets and refused streams: a burst, then a rate") {
    AbuseLimits l;
    l.premature_reset_burst = 5;
    l.premature_resets_per_second = 2;
    l.refused_stream_burst = 3;
    l.refused_streams_per_second = 1;
    const auto t0 = std::chrono::steady_clock::now();
    AbuseGuard guard(l, 1 << 16, t0);
    for (int i = 0; i < 5; ++i) CHECK_FALSE(guard.on_premature_reset(t0).has_value());
    auto v = guard.on_premature_reset(t0);
    REQUIRE(v.has_value());
    CHECK(v->reason.find("rapid reset") != std::string::npos);
    CHECK_FALSE(guard.on_premature_reset(t0 + 500ms).has_value());  // one token back after 0.5 s at 2/s
    CHECK(guard.on_premature_reset(t0 + 500ms).has_value());
    for (int i = 0; i < 3; ++i) CHECK_FALSE(guard.on_refused_stream(t0).has_value());
    auto r = guard.on_refused_stream(t0);
    REQUIRE(r.has_value());
    CHECK(r->reason.find("refused streams") != std::string::npos);
    CHECK(guard.premature_resets() == 8);
    CHECK(guard.refused_streams() == 4);
  }
}
