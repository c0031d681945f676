// A small SVG writer: well-formed XML by construction (every attribute value
// and text is escaped, every group is closed before finish()).
//
//   svg_writer svg(640, 480);
//   svg.rect(0, 0, 640, 480, "#fff");
//   svg.text(10, 20, "latency <p99>", 12);       // escaped: latency &lt;p99&gt;
//   svg.path({{{0, 0}, {10, 5}}, {{20, 5}, {30, 0}}}, "#1f77b4");   // two segments, a gap between
//   std::string doc = svg.finish();
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ringflow::lab {

class svg_writer {
 public:
  using point = std::pair<double, double>;

  svg_writer(double width, double height);

  void rect(double x, double y, double w, double h, std::string_view fill, std::string_view stroke = "none",
            double stroke_width = 0);
  void line(double x1, double y1, double x2, double y2, std::string_view stroke, double width = 1,
            std::string_view dash = {});
  // One <path>; each inner vector is a connected run of points (a gap between runs).
  void path(const std::vector<std::vector<point>>& runs, std::string_view stroke, double width = 1.5);
  void text(double x, double y, std::string_view s, double size = 12, std::string_view anchor = "start",
            std::string_view fill = "#222", bool bold = false);
  // <g>, with an optional <title> (a tooltip in browsers).
  void begin_group(std::string_view title = {});
  void end_group();  // std::logic_error without an open group
  // The document; std::logic_error if a group is still open.
  std::string finish();

  static std::string escape(std::string_view s);

 private:
  std::string out_;
  int open_groups_ = 0;
};

}  // namespace ringflow::lab
