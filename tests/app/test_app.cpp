// The thin mains seen from outside: bad input exits 2 with exactly one line on stderr that names
// the file and key, never a crash or a core dump; --help and the not-yet-implemented paths exit 0.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

namespace fs = std::filesystem;

namespace {

const std::string kData = SYNTH_TEST_DATA "/configs/";
const std::string kRepo = SYNTH_SOURCE_DIR;

struct Scratch {
  fs::path dir;
  Scratch() {
    static int n = 0;
    dir = fs::temp_directory_path() / ("synth_test_app_" + std::to_string(::getpid()) + "_" + std::to_string(n++));
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

struct Result {
  bool exited = false;  // normal exit (not killed by a signal)
  int code = -1;
  bool core_dumped = false;
  std::string out, err;
  std::vector<std::string> err_lines() const {
    std::vector<std::string> lines;
    std::istringstream s(err);
    for (std::string l; std::getline(s, l);) lines.push_back(l);
    return lines;
  }
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs exe with args in a fresh working directory, stdout/stderr captured to files. A child that
// hangs is killed by SIGALRM after 120 s (which the test then reports as not exited).
Result run(const std::string& exe, const std::vector<std::string>& args) {
  Scratch cwd;
  const fs::path out = cwd.dir / "stdout.txt", err = cwd.dir / "stderr.txt";
  std::vector<std::string> all = {exe};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    const int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (o < 0 || e < 0 || ::chdir(cwd.dir.c_str()) != 0) ::_exit(127);
    ::dup2(o, 1);
    ::dup2(e, 2);
    ::alarm(120);
    ::execv(exe.c_str(), argv.data());
    ::_exit(127);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  Result r;
  r.exited = WIFEXITED(status);
  r.code = r.exited ? WEXITSTATUS(status) : -1;
  r.core_dumped = WIFSIGNALED(status) && WCOREDUMP(status);
  r.out = slurp(out);
  r.err = slurp(err);
  for (const auto& entry : fs::directory_iterator(cwd.dir))
    if (entry.path().filename().string().rfind("core", 0) == 0) r.core_dumped = true;
  return r;
}

// Exit 2, nothing on stdout, one stderr line "<program>: error: ..." containing every needle.
void check_bad_input(const Result& r, const std::string& program, const std::vector<std::string>& needles) {
  INFO("stderr: " << r.err);
  INFO("stdout: " << r.out);
  CHECK(r.exited);
  CHECK(!r.core_dumped);
  CHECK(r.code == 2);
  const auto lines = r.err_lines();
  REQUIRE(lines.size() == 1);
  CHECK(lines[0].rfind(program + ": error: ", 0) == 0);
  for (const auto& n : needles) CHECK(lines[0].find(n) != std::string::npos);
  CHECK(r.out.empty());
}

}  // namespace

TEST_CASE("stream-train: bad configs exit 2 with one line naming the file and key") {
  const std::string exe = STREAM_TRAIN_EXE;
  check_bad_input(run(exe, {kData + "syntax_error.toml"}), "stream-train", {kData + "syntax_error.toml:3:"});
  check_bad_input(run(exe, {kData + "unknown_key.toml"}), "stream-train",
                  {kData + "unknown_key.toml:5:1: unknown key train.batchsize (did you mean train.batch_size?)"});
  check_bad_input(run(exe, {kData + "wrong_type.toml"}), "stream-train",
                  {kData + "wrong_type.toml:5:14: train.batch_size: expected an integer, got a string"});
  check_bad_input(run(exe, {kData + "missing_path.toml"}), "stream-train",
                  {kData + "missing_path.toml:2:14: data.train_path: '/nonexistent/synthstream-data'"});
  check_bad_input(run(exe, {kData + "out_of_range.toml"}), "stream-train", {"out_of_range.toml:2:10: augment.flip_p"});
  check_bad_input(run(exe, {kData + "ring_too_small.toml"}), "stream-train",
                  {"ring_too_small.toml:3:9: ring.slots (64) must be >= train.batch_size (128)"});
  check_bad_input(run(exe, {kData + "valid_minimal.toml", "--set", "train.batchsize=8"}), "stream-train",
                  {"--set train.batchsize=8: unknown key train.batchsize (did you mean train.batch_size?)"});
  check_bad_input(run(exe, {kData + "valid_minimal.toml", "--set=optim.lr=\"fast\""}), "stream-train",
                  {"optim.lr: expected a number, got a string"});
  check_bad_input(run(exe, {"/nonexistent/config.toml"}), "stream-train", {"/nonexistent/config.toml"});
}

TEST_CASE("stream-train: bad command lines exit 2") {
  const std::string exe = STREAM_TRAIN_EXE;
  check_bad_input(run(exe, {kData + "valid_minimal.toml", "--bogus"}), "stream-train", {"unknown option --bogus"});
  check_bad_input(run(exe, {}), "stream-train", {"missing CONFIG file"});
  check_bad_input(run(exe, {"a.toml", "b.toml"}), "stream-train", {"unexpected argument 'b.toml'"});
  check_bad_input(run(exe, {kData + "valid_minimal.toml", "--set"}), "stream-train", {"option --set needs a value"});
  check_bad_input(run(exe, {kData + "valid_minimal.toml", "--resume=yes"}), "stream-train", {"option --resume takes no value"});
  const Result help = run(exe, {"--help"});
  CHECK(help.code == 0);
  CHECK(help.err.empty());
  CHECK(help.out.rfind("usage: stream-train CONFIG", 0) == 0);
}

TEST_CASE("stream-train: the run directory is never overwritten") {
  const std::string exe = STREAM_TRAIN_EXE;
  Scratch s;
  fs::create_directories(s.dir / "cli-ok");
  std::ofstream(s.dir / "cli-ok" / "log.txt") << "earlier run\n";
  const std::string root = (s.dir / "cli-ok").string();
  check_bad_input(run(exe, {kData + "valid_minimal.toml", "--set", "run.dir=" + s.dir.string()}), "stream-train",
                  {root + " exists and is not empty; pass --resume or choose another run.name"});
  CHECK(slurp(s.dir / "cli-ok" / "log.txt") == "earlier run\n");
  check_bad_input(run(exe, {kData + "valid_minimal.toml", "--resume", "--set", "run.dir=" + s.dir.string(), "--set",
                            "run.name=\"other\""}),
                  "stream-train", {(s.dir / "other").string() + " does not exist; nothing to resume"});
  CHECK(!fs::exists(s.dir / "other"));
}

TEST_CASE("stream-eval: arguments and config are checked, then a clear not-implemented exit 0") {
  const std::string exe = STREAM_EVAL_EXE;
  Scratch s;
  const fs::path ckpt = s.dir / "model.pt";
  std::ofstream(ckpt) << "x";
  check_bad_input(run(exe, {"--config", kRepo + "/configs/fmnist.toml"}), "stream-eval", {"missing --checkpoint"});
  check_bad_input(run(exe, {"--checkpoint", "/nonexistent/model.pt", "--config", kRepo + "/configs/fmnist.toml"}),
                  "stream-eval", {"--checkpoint: '/nonexistent/model.pt' does not exist"});
  check_bad_input(run(exe, {"--checkpoint", ckpt.string(), "--config", kData + "unknown_key.toml"}), "stream-eval",
                  {"unknown_key.toml:5:1: unknown key train.batchsize"});
  check_bad_input(run(exe, {"--checkpoint", ckpt.string(), "--config", kData + "valid_minimal.toml"}), "stream-eval",
                  {"eval.source = \"none\""});
  const Result ok = run(exe, {"--checkpoint", ckpt.string(), "--config", kRepo + "/configs/fmnist.toml", "--set",
                              "eval.limit=100"});
  CHECK(ok.code == 0);
  CHECK(ok.err.empty());
  CHECK(ok.out.rfind("stream-eval: not yet implemented: evaluating checkpoint " + ckpt.string(), 0) == 0);
  CHECK(run(exe, {"--help"}).out.rfind("usage: stream-eval", 0) == 0);
}

TEST_CASE("stream-bench: arguments and config are checked, then a clear not-implemented exit 0") {
  const std::string exe = STREAM_BENCH_EXE;
  check_bad_input(run(exe, {kData + "wrong_type.toml", "--json"}), "stream-bench", {"wrong_type.toml:5:14"});
  check_bad_input(run(exe, {kData + "valid_minimal.toml", "--fast"}), "stream-bench", {"unknown option --fast"});
  const Result text = run(exe, {kData + "valid_minimal.toml"});
  CHECK(text.code == 0);
  CHECK(text.err.empty());
  CHECK(text.out.rfind("stream-bench: not yet implemented: benchmarking the data stream", 0) == 0);
  const Result json = run(exe, {kData + "valid_minimal.toml", "--json", "--generator-only"});
  CHECK(json.code == 0);
  const auto j = nlohmann::json::parse(json.out);
  CHECK(j["implemented"] == false);
  CHECK(j["what"].get<std::string>().find("image producers") != std::string::npos);
  CHECK(run(exe, {"--help"}).out.rfind("usage: stream-bench", 0) == 0);
}

TEST_CASE("stream-sample: --tokenize prints the 77 ids, --list-prompts the stream, bad input exits 2") {
  const std::string exe = STREAM_SAMPLE_EXE;
  // Prompt 0 of tests/data/tiny-sd/vectors.json; ids checked against the reference in test_prompts.
  const Result tok = run(exe, {"--tokenizer", kRepo + "/configs/data/clip-tokenizer", "--tokenize", "a photo of a cat"});
  REQUIRE(tok.exited);
  CHECK(tok.code == 0);
  std::istringstream ids(tok.out);
  std::vector<long long> v;
  for (long long x; ids >> x;) v.push_back(x);
  REQUIRE(v.size() == 77);
  CHECK(v[0] == 49406);
  CHECK(v[1] == 320);    // "a</w>"
  CHECK(v[2] == 1125);   // "photo</w>"
  CHECK(v[6] == 49407);  // end of text, then padding with it
  CHECK(v[76] == 49407);

  const Result list = run(exe, {"--config", kRepo + "/configs/reference.toml", "--list-prompts", "5", "--start", "100"});
  REQUIRE(list.exited);
  CHECK(list.code == 0);
  std::istringstream lines(list.out);
  std::vector<std::string> rows;
  for (std::string l; std::getline(lines, l);) rows.push_back(l);
  REQUIRE(rows.size() == 6);  // header + 5 entries
  CHECK(rows[1].rfind("100\t", 0) == 0);
  CHECK(rows[5].rfind("104\t", 0) == 0);

  check_bad_input(run(exe, {"--tokenizer", "/nonexistent/tok", "--tokenize", "x"}), "stream-sample",
                  {"/nonexistent/tok/vocab.json"});
  check_bad_input(run(exe, {"--config", kData + "unknown_key.toml", "--list-prompts", "3"}), "stream-sample",
                  {"unknown key train.batchsize"});
  check_bad_input(run(exe, {"--list-prompts", "3"}), "stream-sample", {"--list-prompts needs --config"});
}
