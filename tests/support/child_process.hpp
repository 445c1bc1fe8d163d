// The CLI tests run the built mains as a user would: a child process with its own working folder,
// stdout and stderr captured, a hang killed after 120 s. Shared by tests/app/*.
#pragma once
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "scratch_dir.hpp"

namespace synth::test {

struct Result {
  bool exited = false;  // normal exit (not killed by a signal)
  int code = -1;        // exit status; -1 when killed
  bool core_dumped = false;
  std::string out, err;
  std::vector<std::string> err_lines() const {
    std::vector<std::string> lines;
    std::istringstream s(err);
    for (std::string l; std::getline(s, l);) lines.push_back(l);
    return lines;
  }
};

inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Starts exe with args in workdir, stdout and stderr into out_file ("" = /dev/null, err_file ""
// = the same file), with `env` ("NAME=value") added to the environment; a child that hangs is
// killed by SIGALRM after timeout_s (120 s unless given).
inline pid_t spawn(const std::string& exe, const std::vector<std::string>& args, const std::string& workdir,
                   const std::string& out_file, const std::string& err_file = "",
                   const std::vector<std::string>& env = {}, unsigned timeout_s = 120) {
  std::vector<std::string> all = {exe};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int o = ::open(out_file.empty() ? "/dev/null" : out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int e = err_file.empty() ? o : ::open(err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (o < 0 || e < 0 || ::chdir(workdir.c_str()) != 0) ::_exit(127);
    ::dup2(o, 1);
    ::dup2(e, 2);
    for (const std::string& kv : env) ::putenv(const_cast<char*>(kv.c_str()));
    ::alarm(timeout_s);
    ::execv(exe.c_str(), argv.data());
    ::_exit(127);
  }
  return pid;
}

// Runs exe with args in a fresh working folder (or in `workdir`) and waits for it. A child that
// hangs is killed after timeout_s (reported as not exited); a core file in the fresh folder counts as
// a core dump.
inline Result run(const std::string& exe, const std::vector<std::string>& args, const std::string& workdir = "",
                  unsigned timeout_s = 120) {
  ScratchDir cwd("child");
  const std::filesystem::path out = cwd.path / "stdout.txt", err = cwd.path / "stderr.txt";
  const pid_t pid = spawn(exe, args, workdir.empty() ? cwd.path.string() : workdir, out.string(), err.string(), {}, timeout_s);
  REQUIRE(pid >= 0);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  Result r;
  r.exited = WIFEXITED(status);
  r.code = r.exited ? WEXITSTATUS(status) : -1;
  r.core_dumped = WIFSIGNALED(status) && WCOREDUMP(status);
  r.out = slurp(out);
  r.err = slurp(err);
  for (const auto& entry : std::filesystem::directory_iterator(cwd.path))
    if (entry.path().filename().string().rfind("core", 0) == 0) r.core_dumped = true;
  return r;
}

// Exit 2, one stderr line "<program>: error: ..." containing every needle, and nothing on stdout
// unless the failure comes after the run started (its console log lines are on stdout).
inline void check_bad_input(const Result& r, const std::string& program, const std::vector<std::string>& needles,
                            bool started = false) {
  INFO("stderr: " << r.err);
  INFO("stdout: " << r.out);
  CHECK(r.exited);
  CHECK(!r.core_dumped);
  CHECK(r.code == 2);
  const auto lines = r.err_lines();
  REQUIRE(lines.size() == 1);
  CHECK(lines[0].rfind(program + ": error: ", 0) == 0);
  for (const auto& n : needles) CHECK(lines[0].find(n) != std::string::npos);
  if (!started) CHECK(r.out.empty());
}

}  // namespace synth::test
