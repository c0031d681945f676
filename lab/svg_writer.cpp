#include "svg_writer.hpp"

#include <cmath>
#include <stdexcept>

#include <fmt/format.h>

namespace ringflow::lab {

namespace {
// Fixed precision keeps the file small and free of exponents.
std::string n(double v) {
  if (!std::isfinite(v)) v = 0;
  return fmt::format("{:.1f}", v);
}
}  // namespace

svg_writer::svg_writer(double width, double height) {
  out_ = fmt::format(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
      "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n",
      n(width), n(height));
}

std::string svg_writer::escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out += c;
    }
  }
  return out;
}

void svg_writer::rect(double x, double y, double w, double h, std::string_view fill, std::string_view stroke,
                      double stroke_width) {
  out_ += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\"", n(x), n(y), n(std::max(w, 0.0)),
                      n(std::max(h, 0.0)), escape(fill));
  if (stroke != "none") out_ += fmt::format(" stroke=\"{}\" stroke-width=\"{}\"", escape(stroke), n(stroke_width));
  out_ += "/>\n";
}

void svg_writer::line(double x1, double y1, double x2, double y2, std::string_view stroke, double width,
                      std::string_view dash) {
  out_ += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{}\" stroke-width=\"{}\"", n(x1), n(y1),
                      n(x2), n(y2), escape(stroke), n(width));
  if (!dash.empty()) out_ += fmt::format(" stroke-dasharray=\"{}\"", escape(dash));
  out_ += "/>\n";
}

void svg_writer::path(const std::vector<std::vector<point>>& runs, std::string_view stroke, double width) {
  std::string d;
  for (const auto& run : runs) {
    for (std::size_t i = 0; i < run.size(); ++i) {
      d += fmt::format("{}{} {} ", i == 0 ? 'M' : 'L', n(run[i].first), n(run[i].second));
    }
  }
  if (d.empty()) return;
  d.pop_back();
  out_ += fmt::format("<path d=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"{}\" stroke-linejoin=\"round\"/>\n", d,
                      escape(stroke), n(width));
}

void svg_writer::text(double x, double y, std::string_view s, double size, std::string_view anchor,
                      std::string_view fill, bool bold) {
  out_ += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"{}\" text-anchor=\"{}\" fill=\"{}\"{}>{}</text>\n", n(x), n(y),
                      n(size), escape(anchor), escape(fill), bold ? " font-weight=\"bold\"" : "", escape(s));
}

void svg_writer::begin_group(std::string_view title) {
  out_ += "<g>";
  if (!title.empty()) out_ += "<title>" + escape(title) + "</title>";
  out_ += "\n";
  ++open_groups_;
}

void svg_writer::end_group() {
  if (open_groups_ == 0) throw std::logic_error("svg_writer: end_group without begin_group");
  --open_groups_;
  out_ += "</g>\n";
}

std::string svg_writer::finish() {
  if (open_groups_ != 0) throw std::logic_error("svg_writer: a group is still open");
  return out_ + "</svg>\n";
}

}  // namespace ringflow::lab
