#include "train/plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>

namespace zotune {

namespace {

std::string esc(const std::string& s) {
  std::string r;
  for (char c : s) {
    if (c == '<') r += "&lt;";
    else if (c == '>') r += "&gt;";
    else if (c == '&') r += "&amp;";
    else r += c;
  }
  return r;
}

std::string fmt(double v) {
  char buf[32];
  if (v != 0 && (std::fabs(v) >= 1e5 || std::fabs(v) < 1e-3)) std::snprintf(buf, sizeof buf, "%.2g", v);
  else std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

// "Nice" tick spacing: 1, 2 or 5 times a power of ten, about n ticks.
std::vector<double> ticks(double lo, double hi, int n) {
  std::vector<double> t;
  if (!(hi > lo)) return {lo};
  const double raw = (hi - lo) / n;
  const double p = std::pow(10.0, std::floor(std::log10(raw)));
  const double step = raw / p < 1.5 ? p : raw / p < 3.5 ? 2 * p : raw / p < 7.5 ? 5 * p : 10 * p;
  // A step below the values' resolution would never advance v: at most ~2n ticks.
  for (double v = std::ceil(lo / step) * step; v <= hi + 1e-9 * step && t.size() <= 2 * static_cast<std::size_t>(n);
       v += step)
    t.push_back(std::fabs(v) < 1e-12 * step ? 0 : v);
  return t;
}

}  // namespace

std::string render_svg_plot(const std::string& title, const std::string& xlabel, const std::string& ylabel,
                            const std::vector<Series>& series) {
  const double W = 720, H = 420, L = 70, R = 20, T = 40, B = 55;
  double x0 = std::numeric_limits<double>::infinity(), x1 = -x0, y0 = x0, y1 = -x0;
  for (const auto& s : series)
    for (std::size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      x0 = std::min(x0, s.x[i]);
      x1 = std::max(x1, s.x[i]);
      y0 = std::min(y0, s.y[i]);
      y1 = std::max(y1, s.y[i]);
    }
  if (!std::isfinite(x0)) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  // A range at the values' rounding level (a loss and its EMA one ulp apart) counts as one value.
  auto flat = [](double a, double b) { return b - a <= 1e-9 * std::max(std::fabs(a), std::fabs(b)); };
  if (flat(x0, x1)) x1 = x0 + 1;
  if (flat(y0, y1)) y0 -= 0.5, y1 += 0.5;
  const double pad = 0.05 * (y1 - y0);
  y0 -= pad;
  y1 += pad;
  auto X = [&](double x) { return L + (x - x0) / (x1 - x0) * (W - L - R); };
  auto Y = [&](double y) { return H - B - (y - y0) / (y1 - y0) * (H - T - B); };
  std::ostringstream o;
  o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H << "\" viewBox=\"0 0 " << W
    << ' ' << H << "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  o << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  o << "<text x=\"" << W / 2 << "\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">" << esc(title) << "</text>\n";
  for (double t : ticks(x0, x1, 8)) {
    o << "<line x1=\"" << X(t) << "\" y1=\"" << T << "\" x2=\"" << X(t) << "\" y2=\"" << H - B
      << "\" stroke=\"#eee\"/><text x=\"" << X(t) << "\" y=\"" << H - B + 16 << "\" text-anchor=\"middle\">" << fmt(t)
      << "</text>\n";
  }
  for (double t : ticks(y0, y1, 6)) {
    o << "<line x1=\"" << L << "\" y1=\"" << Y(t) << "\" x2=\"" << W - R << "\" y2=\"" << Y(t)
      << "\" stroke=\"#eee\"/><text x=\"" << L - 6 << "\" y=\"" << Y(t) + 4 << "\" text-anchor=\"end\">" << fmt(t)
      << "</text>\n";
  }
  o << "<rect x=\"" << L << "\" y=\"" << T << "\" width=\"" << W - L - R << "\" height=\"" << H - T - B
    << "\" fill=\"none\" stroke=\"#333\"/>\n";
  o << "<text x=\"" << (L + W - R) / 2 << "\" y=\"" << H - 15 << "\" text-anchor=\"middle\">" << esc(xlabel) << "</text>\n";
  o << "<text transform=\"translate(18," << (T + H - B) / 2 << ") rotate(-90)\" text-anchor=\"middle\">" << esc(ylabel)
    << "</text>\n";
  int legend = 0;
  for (const auto& s : series) {
    if (s.x.empty()) continue;
    if (s.points) {
      for (std::size_t i = 0; i < s.x.size(); ++i)
        if (std::isfinite(s.y[i]))
          o << "<circle cx=\"" << X(s.x[i]) << "\" cy=\"" << Y(s.y[i]) << "\" r=\"3.5\" fill=\"" << s.color << "\"/>\n";
    } else {
      o << "<polyline fill=\"none\" stroke=\"" << s.color << "\" stroke-width=\"1.6\" stroke-opacity=\"" << s.opacity
        << "\" points=\"";
      for (std::size_t i = 0; i < s.x.size(); ++i)
        if (std::isfinite(s.y[i])) o << X(s.x[i]) << ',' << Y(s.y[i]) << ' ';
      o << "\"/>\n";
    }
    const double ly = T + 14 + 16 * legend++;
    o << "<rect x=\"" << W - R - 150 << "\" y=\"" << ly - 9 << "\" width=\"12\" height=\"4\" fill=\"" << s.color
      << "\"/><text x=\"" << W - R - 132 << "\" y=\"" << ly - 3 << "\">" << esc(s.label) << "</text>\n";
  }
  o << "</svg>\n";
  return o.str();
}

}  // namespace zotune
