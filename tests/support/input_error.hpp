// What a test expects of bad input: the message of the synth::InputError that f() throws, or
// "(no InputError)" when it returns normally. Any other exception propagates and fails the test.
#pragma once
#include <string>

#include "core/error.hpp"

namespace synth::test {

template <class F>
std::string input_error(F&& f) {
  try {
    f();
  } catch (const synth::InputError& e) {
    return e.what();
  }
  return "(no InputError)";
}

}  // namespace synth::test
