// Host allocator tuning for processes that run LibTorch on the CPU.
//
// glibc serves blocks above M_MMAP_THRESHOLD (128 KiB at start) with mmap and hands them back
// with munmap on free, and trims the heap top above M_TRIM_THRESHOLD. LibTorch allocates a fresh
// output for nearly every op, so without this every activation of a batch is a new mapping whose
// pages fault in again (measured: the tiny SD sampler at batch 4 spent most of its time in page
// faults and ran 3x slower per image than at batch 1; with freed memory kept, batch 4 is 1.8x
// faster per image than batch 1). Keeping freed blocks in the heap trades resident memory for that.
#pragma once
#include <malloc.h>

namespace synth {

inline void keep_freed_memory() {
  mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's largest allowed value on 64-bit (HEAP_MAX_SIZE / 2)
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

}  // namespace synth
