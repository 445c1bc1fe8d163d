// What every thin main shares: a small argument parser and the guard that turns any exception
// into one "<program>: error: <message>" line on stderr and a non-zero exit (2 for bad input,
// 1 for anything else). Header-only so each main stays one translation unit.
#pragma once
#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>
#include <new>
#include <system_error>
#include <thread>
#include <exception>
#include <algorithm>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <ATen/CPUGeneratorImpl.h>
#include <cpuinfo.h>
#include <c10/util/Exception.h>
#include <c10/util/Logging.h>

#include "core/error.hpp"
#include "core/host_memory.hpp"

namespace synth::cli {

// Parses "--flag", "--key value", "--key=value" and positionals. Repeatable keys keep every value.
class Args {
 public:
  Args(int argc, char** argv, std::vector<std::string> flags, std::vector<std::string> options)
      : flags_(std::move(flags)), options_(std::move(options)) {
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      if (a.rfind("--", 0) != 0 || a == "--") {
        positional_.push_back(a);
        continue;
      }
      std::string key = a.substr(2), value;
      const auto eq = key.find('=');
      const bool inline_value = eq != std::string::npos;
      if (inline_value) {
        value = key.substr(eq + 1);
        key = key.substr(0, eq);
      }
      if (is_flag(key)) {
        if (inline_value) throw InputError("option --" + key + " takes no value");
        values_[key].push_back("1");
      } else if (is_option(key)) {
        if (!inline_value) {
          if (i + 1 >= argc) throw InputError("option --" + key + " needs a value");
          value = argv[++i];
        }
        values_[key].push_back(value);
      } else {
        throw InputError("unknown option --" + key);
      }
    }
  }
  bool has(const std::string& key) const { return values_.count(key) > 0; }
  std::string get(const std::string& key, const std::string& fallback = "") const {
    auto it = values_.find(key);
    return it == values_.end() ? fallback : it->second.back();
  }
  std::vector<std::string> all(const std::string& key) const {
    auto it = values_.find(key);
    return it == values_.end() ? std::vector<std::string>{} : it->second;
  }
  long long get_int(const std::string& key, long long fallback) const {
    if (!has(key)) return fallback;
    const std::string v = get(key);
    try {
      size_t used = 0;
      const long long x = std::stoll(v, &used);
      if (used != v.size()) throw std::invalid_argument(v);
      return x;
    } catch (const std::exception&) {
      throw InputError("option --" + key + " expects an integer, got '" + v + "'");
    }
  }
  double get_double(const std::string& key, double fallback) const {
    if (!has(key)) return fallback;
    const std::string v = get(key);
    try {
      size_t used = 0;
      const double x = std::stod(v, &used);
      if (used != v.size()) throw std::invalid_argument(v);
      return x;
    } catch (const std::exception&) {
      throw InputError("option --" + key + " expects a number, got '" + v + "'");
    }
  }
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  bool is_flag(const std::string& k) const { return std::find(flags_.begin(), flags_.end(), k) != flags_.end(); }
  bool is_option(const std::string& k) const { return std::find(options_.begin(), options_.end(), k) != options_.end(); }
  std::vector<std::string> flags_, options_, positional_;
  std::map<std::string, std::vector<std::string>> values_;
};

// An allocation failure as one line naming the size and what to lower, or "" if `what` is not one.
// LibTorch's CPU allocator says "DefaultCPUAllocator: can't allocate memory: you tried to allocate
// N bytes", its CUDA allocator "CUDA out of memory. Tried to allocate X GiB"; either may arrive
// wrapped in another error's text (a producer thread's failure rethrown by join).
inline std::string describe_out_of_memory(const std::string& what) {
  std::string size;
  const std::string cpu = "you tried to allocate ", gpu = "Tried to allocate ";
  if (const auto p = what.find(cpu); p != std::string::npos) {
    const double bytes = std::strtod(what.c_str() + p + cpu.size(), nullptr);
    char buf[64];
    if (bytes >= double(1ull << 30))
      std::snprintf(buf, sizeof buf, "%.1f GiB of host memory", bytes / double(1ull << 30));
    else
      std::snprintf(buf, sizeof buf, "%.1f MiB of host memory", bytes / double(1ull << 20));
    size = buf;
  } else if (what.find("could not create a primitive") != std::string::npos) {
    // oneDNN (LibTorch's CPU convolutions) says only this when its buffers or JIT code cannot be
    // mapped: under a memory limit (ulimit -v, a cgroup) that is the cause.
    size = "host memory for a oneDNN primitive (\"could not create a primitive\"; a memory limit such as ulimit -v?)";
  } else if (const auto q = what.find(gpu); q != std::string::npos && what.find("out of memory") != std::string::npos) {
    const auto end = what.find_first_of("(.;\n", what.find(' ', q + gpu.size()) + 1);
    size = what.substr(q + gpu.size(), end - q - gpu.size()) + " of GPU memory";
  } else if (what.find("std::bad_alloc") != std::string::npos || what == "std::bad_alloc") {
    size = "host memory";
  } else {
    return "";
  }
  return "out of memory: could not allocate " + size +
         "; lower the image size (generator.width/height or --width/--height), the images per call "
         "(generator.batch_size, train.batch_size, eval.batch_size or --count) or ring.slots";
}

// The open-file limit (EMFILE, "Too many open files") as one line naming the limit and what to lower,
// or "" if `what` is not that. stream-train's need is small and does not grow with the data (each
// reader thread holds one file at a time; docs/RELIABILITY.md), so this means a very low ulimit -n.
inline std::string describe_file_limit(const std::string& what) {
  if (what.find("Too many open files") == std::string::npos) return "";
  rlimit lim{};
  const long n = ::getrlimit(RLIMIT_NOFILE, &lim) == 0 ? long(lim.rlim_cur) : -1;
  return "out of resources: too many open files (ulimit -n is " + std::to_string(n) +
         "); raise the limit, or lower data.decode_threads and eval.decode_threads: " + what;
}

// ulimit -v (RLIMIT_AS): LibTorch and its CUDA libraries map about 2.7 GB of address space before
// main(), and oneDNN (LibTorch's CPU convolutions) does not survive running out of the rest: when
// its JIT code cannot be mapped it calls a null kernel (SIGSEGV in brgemm_convolution_bwd_strided_t,
// seen at ulimit -v 3000000 with the smoke run, which completes from about 3.25 GB). So a main
// refuses to start with less than 1 GiB (+ 16 MiB of thread stacks per hardware thread) of address
// space beyond what is mapped at start-up; allocations beyond that fail cleanly (LibTorch's
// allocator, the ring, std::bad_alloc: exit 2 naming the size).
inline void check_address_space() {
  rlimit lim{};
  if (::getrlimit(RLIMIT_AS, &lim) != 0 || lim.rlim_cur == RLIM_INFINITY) return;
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return;
  unsigned long long mapped_kb = 0;
  char line[256];
  while (std::fgets(line, sizeof line, f))
    if (std::sscanf(line, "VmSize: %llu kB", &mapped_kb) == 1) break;
  std::fclose(f);
  const unsigned long long limit_kb = (unsigned long long)(lim.rlim_cur / 1024);
  const unsigned long long need_kb = (1024ull + 16ull * std::max(1u, std::thread::hardware_concurrency())) * 1024ull;
  if (mapped_kb == 0 || limit_kb >= mapped_kb + need_kb) return;
  throw InputError("out of address space: ulimit -v is " + std::to_string(limit_kb) + " kB, of which LibTorch maps " +
                   std::to_string(mapped_kb / 1024) + " MiB at start-up; at least " + std::to_string(need_kb / 1024) +
                   " MiB more are needed (LibTorch's CPU kernels crash without it): raise ulimit -v to " +
                   std::to_string(mapped_kb + need_kb) + " kB or more");
}

// Runs body(); any exception becomes one line on stderr. Exit codes: 0 ok, 1 internal, 2 bad input
// (an allocation failure counts as bad input: the sizes asked for do not fit this machine).
inline int guarded_main(const char* program, const std::function<int()>& body) {
  keep_freed_memory();
  // LibTorch's own log (c10 and c10d warnings: a store connection "likely closed" with a stack
  // trace, at every retry) would bury the one error line; TORCH_CPP_LOG_LEVEL=WARNING shows it.
  ::setenv("TORCH_CPP_LOG_LEVEL", "ERROR", /*overwrite=*/0);
  c10::initLogging();
  try {
    check_address_space();
    // LibTorch reads /proc/cpuinfo (cpuinfo, at its first kernel) and seeds its default CPU
    // generator from /dev/urandom (at the first module initialiser) lazily: do both now, before
    // decoder threads hold descriptors, so a low ulimit -n fails on our own files with one message
    // that names the limit, not inside LibTorch (seen at ulimit -n 5 with 4 decoder threads).
    cpuinfo_initialize();
    at::detail::getDefaultCPUGenerator();
    return body();
  } catch (const InputError& e) {
    // A file the run cannot open for want of descriptors is a limit, not a bad file: say which.
    const std::string files = describe_file_limit(e.what());
    std::fprintf(stderr, "%s: error: %s\n", program, files.empty() ? e.what() : files.c_str());
    return 2;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "%s: error: %s\n", program, describe_out_of_memory("std::bad_alloc").c_str());
    return 2;
  } catch (const std::system_error& e) {
    // A thread or mapping the system refused (ulimit -v / -u, cgroup limits): a limit of this
    // machine, not a bug; reported as such.
    if (const std::string files = describe_file_limit(e.what()); !files.empty() || e.code() == std::errc::too_many_files_open) {
      std::fprintf(stderr, "%s: error: %s\n", program, files.empty() ? e.what() : files.c_str());
      return 2;
    }
    if (e.code() == std::errc::resource_unavailable_try_again || e.code() == std::errc::not_enough_memory) {
      std::fprintf(stderr, "%s: error: out of resources: %s (a memory or process limit, ulimit -v / -u?); lower the "
                           "threads (train.threads, generator.instances, data.decode_threads) or the sizes asked for\n",
                   program, e.what());
      return 2;
    }
    std::fprintf(stderr, "%s: error: %s\n", program, e.what());
    return 1;
  } catch (const c10::Error& e) {
    // LibTorch's what() carries a C++ stack trace after the message; a user needs the message.
    const std::string what = e.what_without_backtrace();
    std::string limit = describe_out_of_memory(what);
    if (limit.empty()) limit = describe_file_limit(what);
    std::fprintf(stderr, "%s: error: %s\n", program, (limit.empty() ? what : limit).c_str());
    return limit.empty() ? 1 : 2;
  } catch (const std::exception& e) {
    const std::string what = e.what();
    std::string limit = describe_out_of_memory(what);
    if (limit.empty()) limit = describe_file_limit(what);
    if (!limit.empty()) {
      std::fprintf(stderr, "%s: error: %s\n", program, limit.c_str());
      return 2;
    }
    std::fprintf(stderr, "%s: error: %s\n", program, what.c_str());
    return 1;
  }
}

}  // namespace synth::cli
