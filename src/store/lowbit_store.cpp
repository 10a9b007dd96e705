#include "store/lowbit_store.h"

#include "base/error.h"

namespace zotune {

namespace {
DType checked_lowbit(DType storage) {
  check(storage == DType::BF16 || storage == DType::F16, "low-bit RAM store: storage dtype ", dtype_name(storage),
        " is not BF16 or F16");
  return storage;
}
}  // namespace

LowBitRamStore::LowBitRamStore(const Architecture& arch, const Checkpoint& ckpt, DType storage)
    : RamStore(arch, ckpt, checked_lowbit(storage)) {}

}  // namespace zotune
