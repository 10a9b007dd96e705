// Every `train` option checked against itself and the model before the output
// directory is created: a value found bad at step 1 (or worse, logged as null at
// step 2) must never leave a folder that neither a fresh run nor a resume accepts.
#pragma once
#include "model/architecture.h"
#include "train/trainer.h"

namespace zotune {

// Throws naming the flag, its value and (for model limits) the config file. A
// --max-length left at its default is lowered to the model's position limit.
void check_train_options(TrainOptions& o, const ModelConfig& model);

}  // namespace zotune
