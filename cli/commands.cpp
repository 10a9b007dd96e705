#include "commands.h"

namespace zotune::cli {

namespace {
std::function<int()>& action() {
  static std::function<int()> a;
  return a;
}
}  // namespace

void set_action(std::function<void()> a) {
  action() = [a = std::move(a)] {
    a();
    return 0;
  };
}
void set_action_with_status(std::function<int()> a) { action() = std::move(a); }

void register_all(CLI::App& app) {
  register_inspect(app);
  register_forward(app);
  register_generate(app);
  register_init(app);
  register_tokenize(app);
  register_bench(app);
  register_train(app);
  register_replay(app);
}

int run_selected(CLI::App&) { return action() ? action()() : 0; }

}  // namespace zotune::cli
