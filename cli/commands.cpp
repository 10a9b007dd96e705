#include "commands.h"

namespace zotune::cli {

namespace {
std::function<void()>& action() {
  static std::function<void()> a;
  return a;
}
}  // namespace

void set_action(std::function<void()> a) { action() = std::move(a); }

void register_all(CLI::App& app) {
  register_inspect(app);
  register_forward(app);
  register_generate(app);
  register_init(app);
  register_tokenize(app);
  register_bench(app);
}

void run_selected(CLI::App&) {
  if (action()) action()();
}

}  // namespace zotune::cli
