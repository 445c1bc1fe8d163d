// Errors carry their context (file, key, tensor) in the message; mains print what() on one line
// and exit non-zero. Every stage throws synth::Error (or a subclass), never aborts.
#pragma once
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace synth {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A problem with user input: config, data files, weights. Mains exit with code 2 for these.
class InputError : public Error {
 public:
  using Error::Error;
};

// "<message>: <the C library's reason>" for a failed open or read, called right after it (errno):
// "Too many open files" (cli.hpp turns it into the open-file limit) or "Permission denied" say more
// than "cannot open".
inline std::string with_errno(const std::string& message) {
  const int e = errno;
  return e == 0 ? message : message + ": " + std::strerror(e);
}

// Builds "context: message" strings without dragging <sstream> into every header.
inline std::string with_context(const std::string& context, const std::string& message) {
  return context.empty() ? message : context + ": " + message;
}

}  // namespace synth
