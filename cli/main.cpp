// zotune CLI: argument parsing and sub-commands only. Library code throws
// zotune::Error; it is caught here once and turned into a message + exit 1.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <exception>

#include "base/error.h"
#include "base/threads.h"
#include "commands.h"
#include "kernels/compute_env.h"

int main(int argc, char** argv) {
  zotune::kernels::ensure_compute_env(argv);
  CLI::App app{"zotune: zeroth-order full-parameter fine-tuning of language models"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "zotune 0.1.0");
  zotune::cli::register_all(app);
  try {
    app.parse(argc, argv);
    return zotune::cli::run_selected(app);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const zotune::Error& e) {
    std::fprintf(stderr, "zotune: error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "zotune: error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "zotune: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
