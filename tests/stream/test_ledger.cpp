#include <doctest/doctest.h>

#include "core/error.hpp"
#include "stream/ledger.hpp"

using synth::Ledger;

TEST_CASE("ledger: watermark advances over out-of-order indices") {
  Ledger l;
  CHECK(l.record(2));
  CHECK(l.record(1));
  CHECK(l.low_watermark() == 0);
  CHECK(l.record(0));
  CHECK(l.low_watermark() == 3);
  CHECK(l.record(5));
  CHECK(l.low_watermark() == 3);
  CHECK(l.count() == 4);
  CHECK(l.contains(1));
  CHECK(l.contains(5));
  CHECK_FALSE(l.contains(4));
  CHECK_FALSE(l.exactly_once(6));
  CHECK(l.record(3));
  CHECK(l.record(4));
  CHECK(l.low_watermark() == 6);
  CHECK(l.exactly_once(6));
  CHECK_FALSE(l.exactly_once(7));  // index 6 missing
  CHECK_FALSE(l.exactly_once(5));  // index 5 beyond the range
}

TEST_CASE("ledger: duplicates are counted and break exactly_once") {
  Ledger l;
  for (uint64_t i = 0; i < 4; ++i) CHECK(l.record(i));
  CHECK_FALSE(l.record(2));  // below the watermark
  CHECK(l.record(9));
  CHECK_FALSE(l.record(9));  // in the sparse set
  CHECK(l.duplicates() == 2);
  CHECK(l.count() == 5);
  CHECK_FALSE(l.exactly_once(4));
}

TEST_CASE("ledger: gaps lists the missing indices and gap_count counts them") {
  Ledger l;
  for (uint64_t i : {0, 1, 3, 4, 7, 10}) l.record(i);
  CHECK(l.gaps(12) == std::vector<uint64_t>{2, 5, 6, 8, 9, 11});
  CHECK(l.gaps(12, 2) == std::vector<uint64_t>{2, 5});
  CHECK(l.gap_count(12) == 6);
  CHECK(l.gap_count(8) == 3);
  CHECK(l.gap_count(1) == 0);
  CHECK(l.gaps(2).empty());
  Ledger big;
  big.record(1000000);
  CHECK(big.gap_count(2000000) == 1999999);
  CHECK(big.gaps(2000000, 3) == std::vector<uint64_t>{0, 1, 2});
}

TEST_CASE("ledger: serialize round trip") {
  Ledger l;
  for (uint64_t i : {0, 1, 2, 5, 9, 12}) l.record(i);
  l.record(1);
  const std::string text = l.serialize();
  CHECK(text == "low=3;dup=1;sparse=5,9,12");
  const Ledger r = Ledger::deserialize(text);
  CHECK(r.serialize() == text);
  CHECK(r.low_watermark() == 3);
  CHECK(r.count() == 6);
  CHECK(r.duplicates() == 1);
  CHECK(r.contains(9));
  CHECK_FALSE(r.contains(4));
  Ledger empty;
  CHECK(empty.serialize() == "low=0;dup=0;sparse=");
  CHECK(Ledger::deserialize("low=0;dup=0;sparse=").count() == 0);
  // A restored ledger keeps advancing.
  Ledger r2 = Ledger::deserialize("low=3;dup=0;sparse=4");
  CHECK(r2.record(3));
  CHECK(r2.low_watermark() == 5);
}

TEST_CASE("ledger: malformed text is an InputError") {
  for (const char* bad : {"", "low=;dup=0;sparse=", "low=1;dup=0", "low=1;dup=x;sparse=", "low=-1;dup=0;sparse=",
                          "low=3;dup=0;sparse=2", "low=3;dup=0;sparse=3", "low=3;dup=0;sparse=5,5",
                          "low=3;dup=0;sparse=6,5", "low=3;dup=0;sparse=5,", "low=3;dup=0;sparse=,5",
                          "low=99999999999999999999999;dup=0;sparse=", "dup=0;low=1;sparse=", "low=1;dup=0;sparse=4;x=1"}) {
    CAPTURE(bad);
    CHECK_THROWS_AS(Ledger::deserialize(bad), synth::InputError);
  }
}
