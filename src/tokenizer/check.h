// check() that builds its message only on failure: the loaders run it per
// vocabulary entry, and some messages dump JSON.
#pragma once
#include "base/error.h"

#define ZOTUNE_TOK_CHECK(cond, ...)             \
  do {                                          \
    if (!(cond)) ::zotune::fail(__VA_ARGS__);   \
  } while (0)
