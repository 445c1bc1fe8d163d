// The thin mains seen from outside: bad input exits 2 with exactly one line on stderr that names
// the file and key, never a crash or a core dump; short real runs leave a complete run directory;
// --help and the not-yet-implemented paths exit 0.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/child_process.hpp"
#include "support/net.hpp"

namespace fs = std::filesystem;

namespace {

const std::string kData = SYNTH_TEST_DATA "/configs/";
const std::string kRepo = SYNTH_SOURCE_DIR;
// valid_minimal.toml is a synthetic run; its generator is the toy SD model of the test data.
const std::string kTinySd = "generator.model_dir=\"" SYNTH_TEST_DATA "/tiny-sd\"";

using Scratch = synth::test::ScratchDir;
using synth::test::check_bad_input;
using synth::test::Result;
using synth::test::run;
using synth::test::slurp;
using synth::test::spawn;

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
  fs::create_directories(s.path / "cli-ok");
  std::ofstream(s.path / "cli-ok" / "log.txt") << "earlier run\n";
  const std::string root = (s.path / "cli-ok").string();
  check_bad_input(run(exe, {kData + "valid_minimal.toml", "--set", "run.dir=" + s.path.string(), "--set",
                            "data.source=\"fmnist\""}),
                  "stream-train", {root + " exists and is not empty; pass --resume or choose another run.name"});
  CHECK(slurp(s.path / "cli-ok" / "log.txt") == "earlier run\n");
  check_bad_input(run(exe, {kData + "valid_minimal.toml", "--resume", "--set", "run.dir=" + s.path.string(), "--set",
                            "run.name=\"other\"", "--set", "data.source=\"fmnist\""}),
                  "stream-train", {(s.path / "other").string() + " does not exist; nothing to resume"});
  CHECK(!fs::exists(s.path / "other"));
}

// A short real run of configs/fmnist.toml: 1024 Fashion-MNIST images, checkpoints at 512 and 1024.
std::vector<std::string> tiny_run_args(const Scratch& s, const std::string& name) {
  return {kRepo + "/configs/fmnist.toml", "--set", "run.dir=" + s.path.string(), "--set", "run.name=\"" + name + "\"",
          "--set", "train.total_images=1024", "--set", "train.checkpoint_every_images=512", "--set", "eval.limit=500",
          "--set", "train.batch_size=128", "--set", "run.sample_every_images=512"};
}

std::vector<nlohmann::json> read_metrics(const fs::path& file) {
  std::vector<nlohmann::json> lines;
  std::ifstream in(file);
  for (std::string l; std::getline(in, l);) lines.push_back(nlohmann::json::parse(l));  // throws on a bad line
  return lines;
}

TEST_CASE("stream-train: a short real run fills its run directory; resume and bad data keep checkpoints intact") {
  const std::string exe = STREAM_TRAIN_EXE;
  Scratch s;
  const Result ok = run(exe, tiny_run_args(s, "tiny"));
  INFO("stderr: " << ok.err);
  REQUIRE(ok.code == 0);
  const fs::path root = s.path / "tiny";
  CHECK(fs::is_regular_file(root / "config.toml"));
  CHECK(slurp(root / "config.toml").find("total_images = 1024") != std::string::npos);
  const std::string log = slurp(root / "log.txt");
  CHECK(log.find("eval fmnist-t10k at 1.02k images: top-1 ") != std::string::npos);
  CHECK(ok.out.find("done: 1024 images decoded, 1024 trained in 8 steps") != std::string::npos);
  const auto metrics = read_metrics(root / "metrics.jsonl");
  int train_lines = 0, evals = 0;
  for (const auto& m : metrics) {
    if (m.contains("loss")) {
      ++train_lines;
      for (const char* k : {"step", "images", "lr", "images_per_s", "ring_occupancy"}) CHECK(m.contains(k));
    }
    if (m.value("event", "") == "eval") {
      ++evals;
      CHECK(m["top1"].get<double>() > 0.0);
    }
  }
  CHECK(train_lines == 1);  // every 10 steps and the last
  CHECK(evals == 1);
  CHECK(metrics.back()["event"] == "summary");
  CHECK(metrics.back()["duplicates"] == 0);
  CHECK(metrics.back()["gaps"] == 0);
  CHECK(slurp(root / "report.html").find("<svg") != std::string::npos);
  // Sample sheets at 512 and 1024 images, linked from the report; the .txt names each image's file.
  CHECK(fs::file_size(root / "samples" / "stream-000000000512.png") > 100);
  CHECK(fs::file_size(root / "samples" / "crops-000000001024.png") > 100);
  const std::string listing = slurp(root / "samples" / "stream-000000000512.txt");
  CHECK(std::count(listing.begin(), listing.end(), '\n') == 17);  // header + 16 images
  CHECK(listing.find("train-images-idx3-ubyte") != std::string::npos);
  CHECK(slurp(root / "report.html").find("samples/crops-000000001024.png") != std::string::npos);
  std::vector<fs::path> ckpts;
  for (const auto& e : fs::directory_iterator(root / "checkpoints")) ckpts.push_back(e.path());
  REQUIRE(ckpts.size() == 2);
  const fs::path newest = root / "checkpoints" / "ckpt-000000001024.pt";
  const std::string newest_bytes = slurp(newest);
  REQUIRE(!newest_bytes.empty());

  // Resuming a finished run trains nothing more and evaluates again.
  auto resume_args = tiny_run_args(s, "tiny");
  resume_args.push_back("--resume");
  const Result again = run(exe, resume_args);
  CHECK(again.code == 0);
  CHECK(again.out.find("resume: ckpt-000000001024.pt at step 8") != std::string::npos);
  CHECK(slurp(newest) == newest_bytes);

  // A truncated training IDX file: one line naming it, exit 2, the run's checkpoints untouched.
  const fs::path idx = s.path / "idx";
  fs::create_directories(idx);
  fs::copy_file("/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz", idx / "train-labels-idx1-ubyte.gz");
  fs::copy_file("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", idx / "train-images-idx3-ubyte.gz");
  fs::resize_file(idx / "train-images-idx3-ubyte.gz", fs::file_size(idx / "train-images-idx3-ubyte.gz") / 2);
  auto truncated = resume_args;
  truncated.insert(truncated.end(), {"--set", "data.train_path=\"" + idx.string() + "\""});
  check_bad_input(run(exe, truncated), "stream-train", {(idx / "train-images-idx3-ubyte.gz").string()});
  CHECK(slurp(newest) == newest_bytes);

  // A corrupt JPEG in an ImageFolder tree: named, exit 2.
  const fs::path tree = s.path / "tree";
  for (const char* cls : {"cat", "dog"}) {
    fs::create_directories(tree / cls);
    std::ofstream(tree / cls / "broken.jpg") << "\xff\xd8\xff\xe0 this is not a JPEG";
  }
  check_bad_input(run(exe, {kRepo + "/configs/smoke.toml", "--set", "run.dir=" + s.path.string(), "--set",
                            "run.name=\"jpeg\"", "--set", "data.source=\"image_folder\"", "--set",
                            "data.train_path=\"" + tree.string() + "\"", "--set", "eval.source=\"none\""}),
                  "stream-train", {"broken.jpg"}, true);

  // A damaged newest checkpoint: test_checkpoint_faults.cpp (--resume falls back to an older one).

  // The older checkpoint is intact and evaluates.
  const Result ev = run(STREAM_EVAL_EXE, {"--checkpoint", (root / "checkpoints" / "ckpt-000000000512.pt").string(),
                                          "--config", (root / "config.toml").string(), "--json"});
  INFO("stream-eval stderr: " << ev.err);
  REQUIRE(ev.code == 0);
  const auto j = nlohmann::json::parse(ev.out);
  CHECK(j["images"] == 500);
  CHECK(j["images_trained"] == 512);
}

TEST_CASE("stream-train: the synthetic stream survives kill -9; resumed, every index is trained exactly once") {
  const std::string exe = STREAM_TRAIN_EXE;
  Scratch s;
  const std::vector<std::string> args = {kRepo + "/configs/smoke.toml", "--set", "run.dir=" + s.path.string(), "--set",
                                         "train.total_images=640", "--set", "train.checkpoint_every_images=128",
                                         "--set", "train.keep_checkpoints=10", "--set", "eval.limit=200"};
  const fs::path root = s.path / "smoke", ckpts = root / "checkpoints";
  // Start the run (from the repo: smoke.toml's paths are relative to it) and SIGKILL it once a
  // checkpoint exists, i.e. between checkpoints with images in flight.
  const pid_t pid = spawn(exe, args, kRepo, "");
  REQUIRE(pid >= 0);
  auto checkpoint_count = [&] {
    int n = 0;
    std::error_code ec;
    if (fs::is_directory(ckpts, ec))
      for (const auto& e : fs::directory_iterator(ckpts, ec))
        if (e.path().extension() == ".pt") ++n;
    return n;
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (checkpoint_count() < 1 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  REQUIRE(WIFSIGNALED(status));  // killed mid-run, not finished
  const int before = checkpoint_count();
  REQUIRE(before >= 1);
  INFO("checkpoints at the kill: " << before);

  auto resume = args;
  resume.push_back("--resume");
  const Result r = run(exe, resume, kRepo);
  INFO("stderr: " << r.err);
  REQUIRE(r.code == 0);
  const auto metrics = read_metrics(root / "metrics.jsonl");
  const auto& summary = metrics.back();
  REQUIRE(summary["event"] == "summary");
  CHECK(summary["images_seen"] == 640);
  CHECK(summary["exactly_once"] == true);
  CHECK(summary["duplicates"] == 0);
  CHECK(summary["gaps"] == 0);
  // This invocation generated exactly what the checkpointed model had not seen.
  CHECK(summary["images_produced"] == summary["images_trained"]);
  CHECK(summary["images_trained"].get<int>() == 640 - 128 * (before));
}

TEST_CASE("stream-train: SIGTERM checkpoints where it stands and exits 130; --resume finishes exactly once") {
  const std::string exe = STREAM_TRAIN_EXE;
  Scratch s;
  auto args = tiny_run_args(s, "term");
  // 8,000 images: long enough that SIGTERM lands mid-run (the first loss line comes at ~1.2k), short
  // enough that the resumed rest fits its child timeout on a loaded 2-core CI machine (~110 img/s).
  args.insert(args.end(), {"--set", "train.total_images=8000", "--set", "train.checkpoint_every_images=0"});
  const fs::path root = s.path / "term";
  const pid_t pid = spawn(exe, args, s.path.string(), (s.path / "term.out").string());
  REQUIRE(pid >= 0);
  // Wait until it trains (a metrics line with a loss), then ask it to stop.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (slurp(root / "metrics.jsonl").find("\"loss\"") == std::string::npos && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ::kill(pid, SIGTERM);
  int status = 0;
  ::waitpid(pid, &status, 0);
  INFO("output: " << slurp(s.path / "term.out"));
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 130);
  const auto stopped = read_metrics(root / "metrics.jsonl").back();
  REQUIRE(stopped["event"] == "summary");
  CHECK(stopped["interrupted"] == true);
  CHECK(stopped["exactly_once"] == true);
  const int64_t at = stopped["images_seen"].get<int64_t>();
  CHECK(at > 0);
  CHECK(at < 8000);
  char name[64];
  std::snprintf(name, sizeof name, "ckpt-%012lld.pt", (long long)at);
  CHECK(fs::exists(root / "checkpoints" / name));

  auto resume = args;
  resume.push_back("--resume");
  const Result r = run(exe, resume, "", 400);
  INFO("stderr: " << r.err);
  REQUIRE(r.code == 0);
  const auto done = read_metrics(root / "metrics.jsonl").back();
  CHECK(done["interrupted"] == false);
  CHECK(done["images_seen"] == 8000);
  CHECK(done["images_trained"].get<int64_t>() == 8000 - at);
  CHECK(done["exactly_once"] == true);
}

TEST_CASE("stream-eval: bad input exits 2; a checkpoint's accuracy equals the trainer's own evaluation") {
  const std::string exe = STREAM_EVAL_EXE;
  Scratch s;
  const fs::path ckpt = s.path / "model.pt";
  std::ofstream(ckpt) << "x";
  check_bad_input(run(exe, {"--config", kRepo + "/configs/fmnist.toml"}), "stream-eval", {"missing --checkpoint"});
  check_bad_input(run(exe, {"--checkpoint", "/nonexistent/model.pt", "--config", kRepo + "/configs/fmnist.toml"}),
                  "stream-eval", {"--checkpoint: '/nonexistent/model.pt' does not exist"});
  check_bad_input(run(exe, {"--checkpoint", ckpt.string(), "--config", kData + "unknown_key.toml"}), "stream-eval",
                  {"unknown_key.toml:5:1: unknown key train.batchsize"});
  check_bad_input(run(exe, {"--checkpoint", ckpt.string(), "--config", kData + "valid_minimal.toml", "--set", kTinySd}),
                  "stream-eval",
                  {"eval.source = \"none\""});
  check_bad_input(run(exe, {"--checkpoint", ckpt.string(), "--config", kRepo + "/configs/fmnist.toml"}), "stream-eval",
                  {ckpt.string(), "truncated or corrupt"});
  CHECK(run(exe, {"--help"}).out.rfind("usage: stream-eval", 0) == 0);

  // Two sets: eval.source's and a second one of eval.sets (the first 300 test images).
  std::vector<std::string> args = tiny_run_args(s, "ev");
  for (const std::string& a : {std::string("--set"),
                               std::string("eval.sets=[\"fmnist-300=/usr/share/datasets/fashion-mnist,layout=idx,limit=300\"]")})
    args.push_back(a);
  const Result ok = run(STREAM_TRAIN_EXE, args);
  INFO("stderr: " << ok.err);
  REQUIRE(ok.code == 0);
  const fs::path root = s.path / "ev";
  std::map<std::string, double> logged;
  const auto metrics = read_metrics(root / "metrics.jsonl");
  for (const auto& m : metrics)
    if (m.value("event", "") == "eval") logged[m["set"].get<std::string>()] = m["top1"].get<double>();
  CHECK(logged.size() == 2);
  const auto& summary = metrics.back();
  REQUIRE(summary["event"] == "summary");
  CHECK(summary["eval_set"] == "fmnist-t10k");  // the headline figure: the first set
  REQUIRE(summary["eval"].size() == 2);
  CHECK(summary["eval"][1]["set"] == "fmnist-300");
  CHECK(summary["eval"][1]["images"] == 300);
  CHECK(ok.out.find("; fmnist-300 top-1 ") != std::string::npos);
  CHECK(slurp(root / "report.html").find("<tr><td>fmnist-300</td><td>300</td><td>0</td>") != std::string::npos);

  const Result ev = run(exe, {"--checkpoint", (root / "checkpoints" / "ckpt-000000001024.pt").string(), "--config",
                              (root / "config.toml").string(), "--json"});
  REQUIRE(ev.code == 0);
  std::istringstream lines(ev.out);
  int rows = 0;
  for (std::string line; std::getline(lines, line); ++rows) {
    const auto j = nlohmann::json::parse(line);
    CAPTURE(line);
    REQUIRE(logged.count(j["set"].get<std::string>()) == 1);
    CHECK(j["top1"].get<double>() == doctest::Approx(logged[j["set"].get<std::string>()]).epsilon(1e-9));
  }
  CHECK(rows == 2);
  check_bad_input(run(exe, {"--checkpoint", (root / "checkpoints" / "ckpt-000000001024.pt").string(), "--config",
                            (root / "config.toml").string(), "--set", "model.width=0.5"}),
                  "stream-eval", {"the config asks for resnet18 width 0.5"});
}

TEST_CASE("stream-bench: measures generator, augmentation and trainer on the toy SD model; bad input exits 2") {
  const std::string exe = STREAM_BENCH_EXE;
  check_bad_input(run(exe, {kData + "wrong_type.toml", "--json"}), "stream-bench", {"wrong_type.toml:5:14"});
  check_bad_input(run(exe, {kData + "valid_minimal.toml", "--fast"}), "stream-bench", {"unknown option --fast"});
  const std::vector<std::string> small = {kData + "valid_minimal.toml", "--set", kTinySd, "--set", "generator.width=32",
                                          "--set", "generator.height=32", "--set", "generator.steps=2", "--set",
                                          "generator.batch_size=4", "--set", "model.arch=\"resnet18\"", "--set",
                                          "model.width=0.125", "--set", "train.batch_size=8", "--set",
                                          "augment.crop_size=32", "--set", "prompts.class_file=\"" + kRepo +
                                              "/configs/classes/fmnist.tsv\"", "--set", "model.num_classes=10",
                                          "--set", "prompts.templates=[\"c\"]"};
  auto json_args = small;
  json_args.insert(json_args.end(), {"--json", "--images", "8", "--steps", "2"});
  const Result json = run(exe, json_args);
  INFO("stderr: " << json.err);
  REQUIRE(json.code == 0);
  const auto j = nlohmann::json::parse(json.out);
  REQUIRE(j["stages"].size() == 3);
  CHECK(j["stages"][0]["stage"] == "generate");
  CHECK(j["stages"][0]["images"] == 8);
  CHECK(j["stages"][1]["stage"] == "augment");
  CHECK(j["stages"][2]["stage"] == "train");
  for (const auto& s : j["stages"]) CHECK(s["images_per_s"].get<double>() > 0);
  // The stream figures follow from the stages' own rates: pipelined on separate devices it runs
  // at the slowest stage's rate; sharing one device the stages take turns (1 / sum of per-image
  // times); the trainer keeps train/generate generator devices busy.
  double slowest = 1e300, per_image = 0;
  for (const auto& s : j["stages"]) {
    slowest = std::min(slowest, s["images_per_s"].get<double>());
    per_image += 1.0 / s["images_per_s"].get<double>();
  }
  CHECK(j["stream_images_per_s_pipelined"].get<double>() == doctest::Approx(slowest).epsilon(1e-9));
  CHECK(j["stream_images_per_s_shared_device"].get<double>() == doctest::Approx(1.0 / per_image).epsilon(1e-9));
  CHECK(j["producers_per_trainer"].get<double>() ==
        doctest::Approx(j["stages"][2]["images_per_s"].get<double>() / j["stages"][0]["images_per_s"].get<double>()).epsilon(1e-9));
  auto text_args = small;
  text_args.insert(text_args.end(), {"--images", "4", "--generator-only"});
  const Result text = run(exe, text_args);
  CHECK(text.code == 0);
  CHECK(text.out.find("generate") != std::string::npos);
  CHECK(text.out.find("stream: ") != std::string::npos);
  check_bad_input(run(exe, {kData + "valid_minimal.toml", "--set", kTinySd, "--images", "0"}), "stream-bench",
                  {"--images must be >= 1"});
  CHECK(run(exe, {"--help"}).out.rfind("usage: stream-bench", 0) == 0);
}

TEST_CASE("stream-sample: --tokenize prints the 77 ids, --list-prompts the stream, bad input exits 2") {
  const std::string exe = STREAM_SAMPLE_EXE;
  // Prompt 0 of tests/fixtures/tiny-sd/vectors.json; ids checked against the reference in test_prompts.
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

  // Relative paths in a config (prompts.class_file) are relative to the working directory: the repo.
  const Result list =
      run(exe, {"--config", kRepo + "/configs/reference.toml", "--list-prompts", "5", "--start", "100"}, kRepo);
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

namespace {

uint32_t png_crc(const std::string& bytes) {
  uint32_t c = 0xffffffffu;
  for (const unsigned char b : bytes) {
    c ^= b;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
  }
  return ~c;
}

std::string be32(uint32_t v) { return {char(v >> 24), char(v >> 16), char(v >> 8), char(v)}; }

// A side x side RGB gradient as a PNG, deflate "stored" (uncompressed) so no zlib is needed here:
// stream-augment needs an IMAGE and the repository holds none.
void write_test_png(const fs::path& file, int side) {
  std::string raw;
  for (int y = 0; y < side; ++y) {
    raw += '\0';  // filter: none
    for (int x = 0; x < side; ++x) raw += {char(4 * x), char(4 * y), char(128)};
  }
  REQUIRE(raw.size() < 65536);  // one stored block
  uint32_t a = 1, b = 0;         // Adler-32 of the raw bytes
  for (const unsigned char c : raw) a = (a + c) % 65521, b = (b + a) % 65521;
  const uint16_t len = uint16_t(raw.size());
  const std::string zlib = std::string("\x78\x01\x01", 3) + char(len & 0xff) + char(len >> 8) + char(~len & 0xff) +
                           char((~len >> 8) & 0xff) + raw + be32((b << 16) | a);
  auto chunk = [](const std::string& type, const std::string& data) {
    return be32(uint32_t(data.size())) + type + data + be32(png_crc(type + data));
  };
  const std::string ihdr = be32(uint32_t(side)) + be32(uint32_t(side)) + std::string("\x08\x02\x00\x00\x00", 5);
  std::ofstream(file, std::ios::binary) << std::string("\x89PNG\r\n\x1a\n", 8) << chunk("IHDR", ihdr)
                                        << chunk("IDAT", zlib) << chunk("IEND", "");
}

}  // namespace

// The paper configs name SD weights and ImageNet folders that this machine lacks: a command fails
// only on the inputs it reads.
TEST_CASE("the paper configs: each command checks only the input paths it reads") {
  Scratch s;  // the working directory of the failing runs: no models/, no data/, no configs/
  const fs::path image = s.path / "image.png";
  write_test_png(image, 64);
  for (const char* name : {"in100_stream", "in1k_stream"}) {
    CAPTURE(name);
    const std::string cfg = kRepo + "/configs/" + name + ".toml";
    check_bad_input(run(STREAM_TRAIN_EXE, {cfg}, s.str()), "stream-train",
                    {cfg + ":25:13: generator.model_dir: 'models/stable-diffusion-v1-4' is not a diffusers model directory"});

    const fs::path out = s.path / name;
    const Result augment =
        run(STREAM_AUGMENT_EXE, {"--config", cfg, "--index", "7", "--out", out.string(), image.string()}, s.str());
    INFO("stderr: " << augment.err);
    CHECK(augment.code == 0);
    CHECK(fs::is_regular_file(out / "global_0.png"));
    CHECK(fs::is_regular_file(out / "local_7.png"));  // the paper's 1 global + 8 local crops

    // Relative prompts files: from the repository, as a user runs it.
    const Result list = run(STREAM_SAMPLE_EXE, {"--config", cfg, "--list-prompts", "5"}, kRepo);
    INFO("stderr: " << list.err);
    CHECK(list.code == 0);
    CHECK(std::count(list.out.begin(), list.out.end(), '\n') == 6);  // header + 5 entries

    // Evaluation reads the class file and the evaluation folders, never the SD weights.
    const std::string classes = "data.class_file=\"" + kRepo + "/configs/classes/" +
                                (std::string(name) == "in100_stream" ? "imagenet100.tsv" : "imagenet1k.tsv") + "\"";
    check_bad_input(run(STREAM_EVAL_EXE, {"--checkpoint", image.string(), "--config", cfg, "--set", classes}, s.str()),
                    "stream-eval", {"eval.path: 'data/"});
  }
  // What the prompt stream reads must still be there.
  check_bad_input(run(STREAM_SAMPLE_EXE, {"--config", kRepo + "/configs/in100_stream.toml", "--list-prompts", "5", "--set",
                                          "prompts.class_file=\"/nonexistent/classes.tsv\""},
                      kRepo),
                  "stream-sample", {"/nonexistent/classes.tsv"});
  // A typo is still a typo.
  check_bad_input(run(STREAM_AUGMENT_EXE, {"--config", kRepo + "/configs/in100_stream.toml", "--index", "0", "--out",
                                           (s.path / "typo").string(), "--set", "augment.dino.local_crop=2", image.string()},
                      s.str()),
                  "stream-augment", {"unknown key augment.dino.local_crop (did you mean augment.dino.local_crops?)"});
}

namespace {

// torchrun's environment for `ranks` processes on this host, on a port free right now.
std::vector<std::vector<std::string>> torchrun_env(int ranks) {
  const int port = synth::test::free_port();
  std::vector<std::vector<std::string>> envs;
  for (int r = 0; r < ranks; ++r)
    envs.push_back({"RANK=" + std::to_string(r), "LOCAL_RANK=" + std::to_string(r), "WORLD_SIZE=" + std::to_string(ranks),
                    "MASTER_ADDR=127.0.0.1", "MASTER_PORT=" + std::to_string(port)});
  return envs;
}

// Runs one process per rank as torchrun would; returns each one's result (stdout, stderr).
std::vector<Result> run_ranks(const std::string& exe, const std::vector<std::string>& args, int ranks,
                              const std::string& workdir) {
  Scratch logs;
  const auto envs = torchrun_env(ranks);
  std::vector<pid_t> pids;
  for (int r = 0; r < ranks; ++r) {
    const std::string stem = (logs.path / ("rank" + std::to_string(r))).string();
    pids.push_back(spawn(exe, args, workdir, stem + ".out", stem + ".err", envs[size_t(r)]));
    REQUIRE(pids.back() >= 0);
  }
  std::vector<Result> results;
  for (int r = 0; r < ranks; ++r) {
    int status = 0;
    REQUIRE(::waitpid(pids[size_t(r)], &status, 0) == pids[size_t(r)]);
    Result res;
    res.exited = WIFEXITED(status);
    res.code = res.exited ? WEXITSTATUS(status) : -1;
    const std::string stem = (logs.path / ("rank" + std::to_string(r))).string();
    res.out = slurp(stem + ".out");
    res.err = slurp(stem + ".err");
    results.push_back(res);
  }
  return results;
}

}  // namespace

TEST_CASE("stream-train: 2 processes (torchrun environment, Gloo) stream the synthetic run exactly once") {
  const std::string exe = STREAM_TRAIN_EXE;
  Scratch s;
  const std::vector<std::string> args = {kRepo + "/configs/smoke.toml", "--set", "run.dir=" + s.path.string(), "--set",
                                         "train.total_images=320", "--set", "train.checkpoint_every_images=128",
                                         "--set", "eval.limit=200"};
  const std::vector<Result> r = run_ranks(exe, args, 2, kRepo);
  for (const Result& x : r) {
    INFO("stderr: " << x.err);
    REQUIRE(x.code == 0);
  }
  const fs::path root = s.path / "smoke";
  const std::string log = slurp(root / "log.txt");
  CHECK(log.find("2 trainer ranks, 32 images each per step, gradients and batch norm synchronized over gloo") !=
        std::string::npos);
  CHECK(r[1].out.empty());  // rank 1 trains silently; rank 0 owns the console and the run directory
  const auto metrics = read_metrics(root / "metrics.jsonl");
  const auto& summary = metrics.back();
  REQUIRE(summary["event"] == "summary");
  CHECK(summary["images_seen"] == 320);
  CHECK(summary["images_produced"] == 320);  // generated by both ranks together, each its own shard
  CHECK(summary["images_trained"] == 320);
  CHECK(summary["exactly_once"] == true);
  CHECK(summary["duplicates"] == 0);
  CHECK(summary["gaps"] == 0);
  CHECK(summary["eval_images"] == 200);
  // The generators (on the same 2 cores) are the slow side here: the trainer waits for images.
  CHECK(summary["trainer_stall"].get<double>() > 0.0);
  CHECK(summary["trainer_stall"].get<double>() <= 1.0);
  int checkpoints = 0;
  for (const auto& e : fs::directory_iterator(root / "checkpoints"))
    if (e.path().extension() == ".pt") ++checkpoints;
  CHECK(checkpoints == 2);  // keep_checkpoints = 2 of 128, 256, 320: written once, by rank 0

  // Resumed on one process: nothing left to train, and the ledger of both ranks holds.
  auto again = args;
  again.push_back("--resume");
  const Result one = run(exe, again, kRepo);
  INFO("stderr: " << one.err);
  CHECK(one.code == 0);
  CHECK(read_metrics(root / "metrics.jsonl").back()["exactly_once"] == true);

  // A refused run directory stops every rank with exit 2, not only rank 0.
  const std::vector<Result> refused = run_ranks(exe, args, 2, kRepo);
  for (const Result& x : refused) {
    INFO("stderr: " << x.err);
    CHECK(x.code == 2);
  }
  CHECK(refused[0].err.find("exists and is not empty") != std::string::npos);
  CHECK(refused[1].err.find("rank 0 stopped before training") != std::string::npos);

  // So does an evaluation set that rank 0 cannot use (an empty folder: no class folders), which
  // only rank 0 opens, instead of leaving rank 1 waiting for the run directory.
  fs::create_directories(s.path / "empty_set");
  auto bad_eval = args;
  for (const std::string& a : {std::string("run.name=bad_eval"), "eval.sets=[\"empty=" + (s.path / "empty_set").string() + ",layout=sorted\"]"}) {
    bad_eval.push_back("--set");
    bad_eval.push_back(a);
  }
  const std::vector<Result> unusable = run_ranks(exe, bad_eval, 2, kRepo);
  for (const Result& x : unusable) {
    INFO("stderr: " << x.err);
    CHECK(x.code == 2);
  }
  CHECK(unusable[0].err.find((s.path / "empty_set").string() + ": evaluation set has no class folders") != std::string::npos);
  CHECK(unusable[1].err.find("rank 0 stopped before training") != std::string::npos);
  CHECK(!fs::exists(s.path / "bad_eval"));
}

TEST_CASE("stream-train: a dedicated generator process feeds a trainer process; every index once, across a resume") {
  const std::string exe = STREAM_TRAIN_EXE;
  Scratch s;
  std::vector<std::string> args = {kRepo + "/configs/smoke.toml", "--set", "run.dir=" + s.path.string(), "--set",
                                   "train.total_images=192", "--set", "train.checkpoint_every_images=64",
                                   "--set", "eval.limit=200", "--set", "dist.trainer_ranks=1"};
  std::vector<Result> r = run_ranks(exe, args, 2, kRepo);  // rank 0 trains, rank 1 generates
  for (const Result& x : r) {
    INFO("stderr: " << x.err);
    REQUIRE(x.code == 0);
  }
  const fs::path root = s.path / "smoke";
  CHECK(slurp(root / "log.txt").find("fed by 1 dedicated generator rank(s)") != std::string::npos);
  auto summary = read_metrics(root / "metrics.jsonl").back();
  REQUIRE(summary["event"] == "summary");
  CHECK(summary["images_seen"] == 192);
  CHECK(summary["images_produced"] == 192);  // received from the generator rank
  CHECK(summary["images_trained"] == 192);
  CHECK(summary["exactly_once"] == true);
  CHECK(summary["duplicates"] == 0);
  CHECK(summary["gaps"] == 0);

  // Longer run resumed with the same placement: the generator starts where the checkpoint stands.
  args.insert(args.end(), {"--set", "train.total_images=320", "--resume"});
  r = run_ranks(exe, args, 2, kRepo);
  for (const Result& x : r) {
    INFO("stderr: " << x.err);
    REQUIRE(x.code == 0);
  }
  summary = read_metrics(root / "metrics.jsonl").back();
  CHECK(summary["images_seen"] == 320);
  CHECK(summary["images_produced"] == 128);
  CHECK(summary["images_trained"] == 128);
  CHECK(summary["exactly_once"] == true);
}

// Memory limits (ulimit -v, as a batch system or a container sets them): an allocation the machine
// cannot give is one line naming the size and what to lower, exit 2, never a crash or a hang.
// The binaries map ~3 GB of address space for LibTorch and its CUDA libraries before main().
TEST_CASE("stream-train under ulimit -v: a ring that does not fit is one line naming its size, exit 2") {
  Scratch s;
  auto limited = [&](long kb, const std::vector<std::string>& args) {
    std::vector<std::string> sh = {"-c", "ulimit -v " + std::to_string(kb) + " && exec \"$0\" \"$@\"", STREAM_TRAIN_EXE};
    sh.insert(sh.end(), args.begin(), args.end());
    return run("/bin/sh", sh, kRepo);
  };
  const std::vector<std::string> smoke = {kRepo + "/configs/smoke.toml", "--set", "run.dir=" + s.path.string(),
                                          "--set", "train.total_images=256", "--set", "eval.limit=200"};
  // A 3 GiB ring under a 4 GB address-space limit.
  auto ring = smoke;
  ring.insert(ring.end(), {"--set", "run.name=ring", "--set", "ring.slots=4096", "--set", "ring.max_height=512", "--set",
                           "ring.max_width=512"});
  check_bad_input(limited(4000000, ring), "stream-train", {"ring: could not allocate 3.00 GiB", "lower ring.slots"}, true);
}
