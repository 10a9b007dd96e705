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
#include "dist/comm.h"

namespace {
// Under mpirun a rank that fails ends the whole job with its message (the
// other ranks would otherwise wait in a collective forever).
int failed(const char* what) {
  if (zotune::Comm* c = zotune::started_process_comm(); c && c->world() > 1) c->abort(what);
  std::fprintf(stderr, "zotune: error: %s\n", what);
  return 1;
}
}  // namespace

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
    return failed(e.what());
  } catch (const std::bad_alloc&) {
    return failed("out of memory");
  } catch (const std::exception& e) {
    return failed(e.what());
  }
  return 0;
}
