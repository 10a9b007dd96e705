// SIGINT / SIGTERM for long-running commands (train). While a StopSignals is
// alive, the first signal only sets a flag that the work polls at its safe
// points (after each step, between evaluation batches, after setup) — it then
// checkpoints and exits 128 + signal. A second signal ends the process at once
// with the same code (files are written atomically, so nothing half-written
// remains). Without a StopSignals the default actions apply.
#pragma once

namespace zotune {

class StopSignals {
 public:
  StopSignals();  // installs the handlers and clears the flag
  ~StopSignals();  // restores the previous handlers
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
};

// The first signal received since the StopSignals was made, or 0. One atomic load:
// cheap enough to poll per block or batch.
int stop_signal();
inline bool stop_requested() { return stop_signal() != 0; }

}  // namespace zotune
