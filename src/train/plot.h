// A loss-curve plot as a self-contained SVG (no plotting library needed to view it).
#pragma once
#include <string>
#include <vector>

namespace zotune {

struct Series {
  std::string label;
  std::string color;  // CSS color
  std::vector<double> x, y;
  bool points = false;  // markers instead of a line
  double opacity = 1.0;
};

// Renders the series on shared axes; `title`, axis labels given.
std::string render_svg_plot(const std::string& title, const std::string& xlabel, const std::string& ylabel,
                            const std::vector<Series>& series);

}  // namespace zotune
