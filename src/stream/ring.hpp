// The ring between image producers (real-data decoders now, Stable Diffusion generators later)
// and the trainer: a fixed number of slots, each holding one uint8 HWC RGB image plus metadata.
// Slot ids travel through two Boost.Lockfree queues (free, ready); the queues never block, so
// waiting (back-pressure both ways) is a short spin then a condition-variable sleep.
// Contract:
//  - many producers, many consumers; every published slot is consumed exactly once;
//  - acquire_free() blocks while the ring is full; acquire_ready() blocks while it is empty;
//  - close() wakes every waiter: producers get nullopt at once, consumers drain what is ready
//    and then get nullopt. Nothing published is lost: a slot a producer took before close() may
//    still be published afterwards, and consumers wait for it (or for its discard()) before they
//    report the end, so "closed and empty" is final.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>

namespace synth {

// Where an image came from; travels with it for accounting and the run report.
enum class SourceTag : uint32_t { kReal = 0, kSynthetic = 1 };

struct SlotMeta {
  uint64_t index = 0;   // global image index in the stream (the ledger's unit)
  int32_t label = -1;   // class id (index into the run's class list)
  SourceTag source = SourceTag::kReal;
  int32_t height = 0, width = 0, channels = 3;  // the image stored in the slot's bytes (HWC, uint8)
};

struct RingStats {
  uint64_t pushed = 0, popped = 0;
  double producer_wait_s = 0, consumer_wait_s = 0;  // time blocked on a full / empty ring
};

class Ring {
 public:
  Ring(size_t slots, size_t slot_bytes);
  ~Ring();
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;

  // Producer side: take a free slot (blocks while none), fill data()/meta(), then publish().
  std::optional<int> acquire_free();
  void publish(int slot);
  // Gives an acquired free slot back unpublished (a producer that failed or found the stream end).
  void discard(int slot);
  // Consumer side: take a ready slot (blocks while none), read it, then release().
  std::optional<int> acquire_ready();
  void release(int slot);

  uint8_t* data(int slot);
  const uint8_t* data(int slot) const;
  SlotMeta& meta(int slot);
  const SlotMeta& meta(int slot) const;

  void close();
  bool closed() const;
  size_t slots() const;
  size_t slot_bytes() const;
  size_t ready_count() const;  // occupancy, for progress lines and metrics
  RingStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace synth
