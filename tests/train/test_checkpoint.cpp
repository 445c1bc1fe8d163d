// Checkpoints restore a run exactly, keep the newest N, and refuse damaged files with an error
// naming them - a flipped bit included - and a crash mid-write (a leftover temp file) never hides
// the previous checkpoint. The resume loader skips damaged newer files for the newest intact one,
// and a full disk fails a save by name, leaving the previous checkpoint as it was.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <caffe2/serialize/inline_container.h>
#include <torch/cuda.h>

#include "core/error.hpp"
#include "support/scratch_dir.hpp"
#include "support/tmpfs_mount.hpp"
#include "train/checkpoint.hpp"
#include "train/optimizer.hpp"
#include "train/resnet.hpp"

namespace fs = std::filesystem;
using synth::ResNet;
using synth::ResNetSpec;

namespace {

void train_steps(ResNet& m, torch::optim::Optimizer& opt, int steps, int seed) {
  torch::manual_seed(seed);
  for (int i = 0; i < steps; ++i) {
    opt.zero_grad();
    const torch::Tensor x = torch::randn({4, 3, 32, 32});
    torch::nn::functional::cross_entropy(m->forward(x), torch::tensor({0, 1, 2, 0}, torch::kInt64)).backward();
    opt.step();
  }
}

bool same_state(ResNet& a, ResNet& b) {
  auto pb = b->named_parameters();
  for (const auto& p : a->named_parameters())
    if (!torch::equal(p.value(), pb[p.key()])) return false;
  auto bb = b->named_buffers();
  for (const auto& p : a->named_buffers())
    if (!torch::equal(p.value(), bb[p.key()])) return false;
  return true;
}

synth::TrainState state_at(uint64_t images) {
  synth::TrainState s;
  s.step = int64_t(images / 4);
  s.images_seen = images;
  s.seed = 7;
  s.ledger = "low=" + std::to_string(images) + ";dup=0;sparse=";
  s.arch = "resnet18";
  s.width = 0.125;
  s.num_classes = 3;
  return s;
}

// --- A checkpoint "saved from cuda:1", made without a GPU -------------------------------------
// torch::serialize archives are TorchScript zips: archive/data.pkl pickles every tensor as a
// persistent id ('storage', <dtype>Storage, key, location, numel) whose location is the device
// string it was saved from ('cpu', 'cuda:1'); the bytes are in archive/data/<key> whatever the
// device. The pickler memoizes strings, so 'cpu' is spelled out once (BINUNICODE: 'X', uint32 LE
// length, bytes) and referenced after; rewriting that one string moves every tensor to cuda:1.
// The string grows, so the zip is written anew (stored records; LibTorch's reader does not need
// its writer's 64-byte alignment of records).

uint32_t crc32(const std::string& data) {
  uint32_t c = 0xffffffffu;
  for (const unsigned char b : data) {
    c ^= b;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
  }
  return ~c;
}

void put16(std::string& out, uint32_t v) {
  out += char(v & 0xff);
  out += char((v >> 8) & 0xff);
}
void put32(std::string& out, uint32_t v) {
  put16(out, v & 0xffff);
  put16(out, v >> 16);
}

using Records = std::vector<std::pair<std::string, std::string>>;  // full zip name, bytes

void write_stored_zip(const fs::path& file, const Records& records) {
  std::string out, central;
  for (const auto& [name, data] : records) {
    const uint32_t offset = uint32_t(out.size());
    // From "version needed" to "extra length": the same in the local and the central header.
    auto common = [&](std::string& h) {
      for (const uint32_t v : {20u, 0u, 0u, 0u, 0x21u}) put16(h, v);  // version, flags, stored, time, date
      put32(h, crc32(data));
      put32(h, uint32_t(data.size()));
      put32(h, uint32_t(data.size()));
      put16(h, uint32_t(name.size()));
      put16(h, 0);
    };
    put32(out, 0x04034b50);
    common(out);
    out += name + data;
    put32(central, 0x02014b50);
    put16(central, 20);
    common(central);
    for (int k = 0; k < 3; ++k) put16(central, 0);  // comment length, disk, internal attributes
    put32(central, 0);                              // external attributes
    put32(central, offset);
    central += name;
  }
  const uint32_t central_offset = uint32_t(out.size()), n = uint32_t(records.size());
  out += central;
  put32(out, 0x06054b50);
  for (const uint32_t v : {0u, 0u, n, n}) put16(out, v);
  put32(out, uint32_t(central.size()));
  put32(out, central_offset);
  put16(out, 0);
  std::ofstream(file, std::ios::binary) << out;
}

// Copies checkpoint `from` to `to` with every tensor's storage location rewritten to `device`.
void fake_saved_device(const fs::path& from, const fs::path& to, const std::string& device) {
  caffe2::serialize::PyTorchStreamReader reader(from.string());
  const std::string cpu = std::string("X\x03\x00\x00\x00", 5) + "cpu";
  std::string moved = "X";
  put32(moved, uint32_t(device.size()));
  moved += device;
  Records records;
  int rewritten = 0;
  for (const std::string& name : reader.getAllRecords()) {
    auto [ptr, size] = reader.getRecord(name);
    std::string data(static_cast<const char*>(ptr.get()), size);
    if (name == "data.pkl")
      for (size_t at = data.find(cpu); at != std::string::npos; at = data.find(cpu, at + moved.size()), ++rewritten)
        data.replace(at, cpu.size(), moved);
    records.emplace_back("archive/" + name, data);  // any folder name: the reader takes the first
  }
  REQUIRE(rewritten == 1);  // one spelled-out 'cpu', memoized for every other tensor
  write_stored_zip(to, records);
}

// Flips one bit in the middle of the checkpoint's largest record (a weight or momentum tensor).
// The zip structure stays valid: only the records' CRC-32s can tell.
void flip_tensor_bit(const fs::path& file) {
  size_t at = 0, largest = 0;
  {
    caffe2::serialize::PyTorchStreamReader reader(file.string());
    for (const std::string& name : reader.getAllRecords())
      if (reader.getRecordSize(name) > largest) {
        largest = reader.getRecordSize(name);
        at = reader.getRecordOffset(name) + largest / 2;
      }
  }
  std::fstream f(file, std::ios::binary | std::ios::in | std::ios::out);
  f.seekg(std::streamoff(at));
  const char c = char(f.get());
  f.seekp(std::streamoff(at));
  f.put(char(c ^ 0x10));
  REQUIRE(f.good());
}

void truncate_half(const fs::path& file) { fs::resize_file(file, fs::file_size(file) / 2); }

std::string bytes_of(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<const void*> data_ptrs(ResNet& m) {
  std::vector<const void*> out;
  for (const auto& t : m->parameters()) out.push_back(t.data_ptr());
  for (const auto& t : m->buffers()) out.push_back(t.data_ptr());
  return out;
}

}  // namespace

TEST_CASE("a checkpoint saved from cuda:1 loads without a GPU, into the model's own tensors") {
  synth::test::ScratchDir dir;
  const ResNetSpec spec{"resnet18", 0.125, 3};
  synth::OptimConfig oc;
  torch::manual_seed(1);
  ResNet a(spec);
  auto opt_a = synth::make_sgd(*a, oc);
  train_steps(a, *opt_a, 3, 10);
  const fs::path saved = synth::save_checkpoint(dir.path, state_at(12), *a, *opt_a, 2);
  const fs::path cuda1 = dir.path / "from_cuda1.pt";
  fake_saved_device(saved, cuda1, "cuda:1");
  if (torch::cuda::device_count() < 2) {
    // The fake is real: read as saved, its tensors go to cuda:1, which this machine lacks.
    torch::serialize::InputArchive as_saved;
    CHECK_THROWS(as_saved.load_from(cuda1.string()));
  }

  CHECK(synth::read_checkpoint_state(cuda1).images_seen == 12);
  torch::manual_seed(2);
  ResNet b(spec);
  auto opt_b = synth::make_sgd(*b, oc);
  const std::vector<const void*> before = data_ptrs(b);
  synth::TrainState s;
  REQUIRE_NOTHROW(s = synth::load_checkpoint(cuda1, *b, opt_b.get(), "resnet18", 0.125, 3));
  CHECK(s.images_seen == 12);
  CHECK(same_state(a, b));
  // Copied into the live tensors (a CUDA model stays on its GPU), not swapped for the archive's.
  CHECK(data_ptrs(b) == before);
  for (const auto& t : b->parameters()) CHECK(t.device() == torch::Device(torch::kCPU));
  // Momentum came back, beside its parameters: the next steps agree bit for bit.
  train_steps(a, *opt_a, 2, 11);
  train_steps(b, *opt_b, 2, 11);
  CHECK(same_state(a, b));
}

TEST_CASE("a checkpoint restores model, BN statistics, momentum and the stream position exactly") {
  synth::test::ScratchDir dir;
  const ResNetSpec spec{"resnet18", 0.125, 3};
  synth::OptimConfig oc;
  torch::manual_seed(1);
  ResNet a(spec);
  auto opt_a = synth::make_sgd(*a, oc);
  train_steps(a, *opt_a, 3, 10);
  const fs::path file = synth::save_checkpoint(dir.path, state_at(12), *a, *opt_a, 2);
  CHECK(file.filename() == "ckpt-000000000012.pt");

  torch::manual_seed(2);
  ResNet b(spec);
  auto opt_b = synth::make_sgd(*b, oc);
  CHECK(!same_state(a, b));
  const synth::TrainState s = synth::load_checkpoint(file, *b, opt_b.get(), "resnet18", 0.125, 3);
  CHECK(s.step == 3);
  CHECK(s.images_seen == 12);
  CHECK(s.seed == 7);
  CHECK(s.ledger == "low=12;dup=0;sparse=");
  CHECK(same_state(a, b));
  // Momentum buffers came back too: the next steps agree bit for bit.
  train_steps(a, *opt_a, 2, 11);
  train_steps(b, *opt_b, 2, 11);
  CHECK(same_state(a, b));
}

TEST_CASE("only the newest keep_checkpoints files stay; temp files are never taken for checkpoints") {
  synth::test::ScratchDir dir;
  synth::OptimConfig oc;
  ResNet m(ResNetSpec{"resnet18", 0.125, 3});
  auto opt = synth::make_sgd(*m, oc);
  for (uint64_t images : {4, 8, 12, 16}) synth::save_checkpoint(dir.path, state_at(images), *m, *opt, 2);
  auto all = synth::list_checkpoints(dir.path);
  REQUIRE(all.size() == 2);
  CHECK(all[0].filename() == "ckpt-000000000012.pt");
  CHECK(all[1].filename() == "ckpt-000000000016.pt");
  // A crash mid-write leaves "<name>.tmp<pid>": ignored, and the previous file loads.
  std::ofstream(dir.path / "ckpt-000000000020.pt.tmp123") << "half written";
  all = synth::list_checkpoints(dir.path);
  REQUIRE(all.size() == 2);
  CHECK(synth::read_checkpoint_state(all.back()).images_seen == 16);
}

TEST_CASE("truncated, corrupt, foreign or mismatched checkpoints are InputErrors naming the file") {
  synth::test::ScratchDir dir;
  synth::OptimConfig oc;
  ResNet m(ResNetSpec{"resnet18", 0.125, 3});
  auto opt = synth::make_sgd(*m, oc);
  const fs::path good = synth::save_checkpoint(dir.path, state_at(8), *m, *opt, 5);
  const auto size = fs::file_size(good);

  const fs::path truncated = dir.path / "truncated.pt";
  fs::copy_file(good, truncated);
  fs::resize_file(truncated, size / 2);
  const fs::path garbage = dir.path / "garbage.pt";
  std::ofstream(garbage) << "not a checkpoint at all";
  const fs::path empty = dir.path / "empty.pt";
  std::ofstream(empty).flush();
  const fs::path foreign = dir.path / "foreign.pt";
  {
    torch::serialize::OutputArchive a;
    a.write("weights", torch::ones({3}));
    a.save_to(foreign.string());
  }
  for (const fs::path& bad : {truncated, garbage, empty, foreign, dir.path / "missing.pt"}) {
    CAPTURE(bad);
    bool thrown = false;
    try {
      synth::read_checkpoint_state(bad);
    } catch (const synth::InputError& e) {
      thrown = true;
      CHECK(std::string(e.what()).find(bad.string()) != std::string::npos);
      CHECK(std::string(e.what()).find('\n') == std::string::npos);
    }
    CHECK(thrown);
  }
  ResNet other(ResNetSpec{"resnet18", 0.25, 3});
  CHECK_THROWS_WITH_AS(synth::load_checkpoint(good, *other, nullptr, "resnet18", 0.25, 3),
                       doctest::Contains("the config asks for resnet18 width 0.25"), synth::InputError);
  // The good file is untouched by all of this.
  CHECK(synth::read_checkpoint_state(good).images_seen == 8);
}

TEST_CASE("a flipped bit in a weight fails the CRC-32 check instead of loading as a wrong weight") {
  synth::test::ScratchDir dir;
  synth::OptimConfig oc;
  ResNet m(ResNetSpec{"resnet18", 0.125, 3});
  auto opt = synth::make_sgd(*m, oc);
  train_steps(m, *opt, 1, 10);
  const fs::path file = synth::save_checkpoint(dir.path, state_at(4), *m, *opt, 2);
  flip_tensor_bit(file);
  // LibTorch alone reads it without complaint: the check is ours.
  torch::serialize::InputArchive as_torch_reads_it;
  CHECK_NOTHROW(as_torch_reads_it.load_from(file.string()));
  CHECK_THROWS_WITH_AS(synth::read_checkpoint_state(file), doctest::Contains((file.string() + "' is unreadable, truncated or corrupt: record").c_str()),
                       synth::DamagedCheckpoint);
  CHECK_THROWS_WITH_AS(synth::read_checkpoint_state(file), doctest::Contains("fails its CRC-32 check"), synth::DamagedCheckpoint);
}

TEST_CASE("the resume loader skips damaged newer checkpoints, one warning line each, for the newest intact one") {
  synth::test::ScratchDir dir;
  const ResNetSpec spec{"resnet18", 0.125, 3};
  synth::OptimConfig oc;
  torch::manual_seed(1);
  ResNet a(spec);
  auto opt_a = synth::make_sgd(*a, oc);
  train_steps(a, *opt_a, 3, 10);
  const fs::path intact = synth::save_checkpoint(dir.path, state_at(12), *a, *opt_a, 5);
  ResNet at12(spec);  // a as it was at image 12, to compare with
  auto opt_at12 = synth::make_sgd(*at12, oc);
  synth::load_checkpoint(intact, *at12, opt_at12.get(), "resnet18", 0.125, 3);
  train_steps(a, *opt_a, 1, 11);
  const fs::path flipped = synth::save_checkpoint(dir.path, state_at(16), *a, *opt_a, 5);
  train_steps(a, *opt_a, 1, 12);
  const fs::path truncated = synth::save_checkpoint(dir.path, state_at(20), *a, *opt_a, 5);
  flip_tensor_bit(flipped);
  truncate_half(truncated);

  torch::manual_seed(2);
  ResNet b(spec);
  auto opt_b = synth::make_sgd(*b, oc);
  std::vector<std::string> warnings;
  const synth::Resumed r = synth::load_newest_checkpoint(dir.path, *b, opt_b.get(), "resnet18", 0.125, 3,
                                                         [&](const std::string& line) { warnings.push_back(line); });
  CHECK(r.file == intact);
  CHECK(r.state.images_seen == 12);
  CHECK(r.state.ledger == "low=12;dup=0;sparse=");
  REQUIRE(warnings.size() == 2);  // newest first
  for (const std::string& w : warnings) {
    CAPTURE(w);
    CHECK(w.rfind("warning: checkpoint '", 0) == 0);
    CHECK(w.find('\n') == std::string::npos);
    CHECK(w.find("is unreadable, truncated or corrupt") != std::string::npos);
  }
  CHECK(warnings[0].find(truncated.string()) != std::string::npos);
  CHECK(warnings[1].find(flipped.string()) != std::string::npos);
  CHECK(warnings[1].find("CRC-32") != std::string::npos);
  // Weights, statistics and momentum are those of image 12: the next steps agree bit for bit.
  CHECK(same_state(b, at12));
  CHECK(!same_state(b, a));
  train_steps(b, *opt_b, 2, 13);
  train_steps(at12, *opt_at12, 2, 13);
  CHECK(same_state(b, at12));
}

TEST_CASE("the resume loader: no checkpoint is a fresh start; all damaged or a mismatch is an error, never skipped") {
  synth::test::ScratchDir dir;
  const ResNetSpec spec{"resnet18", 0.125, 3};
  synth::OptimConfig oc;
  std::vector<std::string> warnings;
  auto warn = [&](const std::string& line) { warnings.push_back(line); };
  torch::manual_seed(2);
  ResNet b(spec), twin{nullptr};
  torch::manual_seed(2);
  twin = ResNet(spec);
  auto opt_b = synth::make_sgd(*b, oc);
  CHECK(synth::load_newest_checkpoint(dir.path / "none", *b, opt_b.get(), "resnet18", 0.125, 3, warn).file.empty());
  CHECK(warnings.empty());

  torch::manual_seed(1);
  ResNet a(spec);
  auto opt_a = synth::make_sgd(*a, oc);
  train_steps(a, *opt_a, 1, 10);
  const fs::path first = synth::save_checkpoint(dir.path, state_at(4), *a, *opt_a, 5);
  const fs::path second = synth::save_checkpoint(dir.path, state_at(8), *a, *opt_a, 5);

  // An intact checkpoint of another model is a config problem: older ones would not fit either.
  ResNet wide(ResNetSpec{"resnet18", 0.25, 3});
  CHECK_THROWS_WITH_AS(synth::load_newest_checkpoint(dir.path, *wide, nullptr, "resnet18", 0.25, 3, warn),
                       doctest::Contains((second.string() + "' holds resnet18 width 0.125").c_str()), synth::InputError);
  CHECK(warnings.empty());

  truncate_half(second);
  flip_tensor_bit(first);
  const std::string first_bytes = bytes_of(first);
  std::string what;
  try {
    synth::load_newest_checkpoint(dir.path, *b, opt_b.get(), "resnet18", 0.125, 3, warn);
  } catch (const synth::InputError& e) {
    what = e.what();
  }
  CAPTURE(what);
  CHECK(what.find("every checkpoint in '" + dir.str() + "' is damaged (ckpt-000000000008.pt, ckpt-000000000004.pt)") == 0);
  CHECK(warnings.size() == 2);
  CHECK(same_state(b, twin));  // nothing of a damaged file reached the model
  CHECK(bytes_of(first) == first_bytes);  // nor was anything deleted or rewritten
  CHECK(synth::list_checkpoints(dir.path).size() == 2);
}

TEST_CASE("resumed before a damaged checkpoint, the next save drops it rather than the intact ones") {
  synth::test::ScratchDir dir;
  synth::OptimConfig oc;
  ResNet m(ResNetSpec{"resnet18", 0.125, 3});
  auto opt = synth::make_sgd(*m, oc);
  const fs::path intact = synth::save_checkpoint(dir.path, state_at(4), *m, *opt, 5);
  truncate_half(synth::save_checkpoint(dir.path, state_at(8), *m, *opt, 5));
  REQUIRE(synth::load_newest_checkpoint(dir.path, *m, opt.get(), "resnet18", 0.125, 3, nullptr).file == intact);
  // keep = 1: counting the damaged ckpt-8 as the newest would delete ckpt-4 and the new ckpt-6.
  const fs::path next = synth::save_checkpoint(dir.path, state_at(6), *m, *opt, 1);
  const auto all = synth::list_checkpoints(dir.path);
  REQUIRE(all.size() == 1);
  CHECK(all[0] == next);
  CHECK(synth::read_checkpoint_state(next).images_seen == 6);
}

static const char* const kDiskFull = "a full disk fails the save by name and leaves the previous checkpoint intact";
TEST_CASE(kDiskFull * synth::test::skip_unless_root(kDiskFull)) {
  synth::test::ScratchDir dir;
  synth::OptimConfig oc;
  ResNet m(ResNetSpec{"resnet18", 0.125, 3});
  auto opt = synth::make_sgd(*m, oc);
  train_steps(m, *opt, 1, 10);
  // Room for one checkpoint and a half: the second one's temp file cannot be written.
  const auto size = fs::file_size(synth::save_checkpoint(dir.path / "sizing", state_at(4), *m, *opt, 1));
  std::unique_ptr<synth::test::TmpfsMount> small;
  REQUIRE_NOTHROW(small = std::make_unique<synth::test::TmpfsMount>(dir.path / "small", size + size / 2));
  const fs::path first = synth::save_checkpoint(small->dir, state_at(4), *m, *opt, 2);
  const std::string first_bytes = bytes_of(first);

  std::string what;
  try {
    synth::save_checkpoint(small->dir, state_at(8), *m, *opt, 2);
  } catch (const synth::Error& e) {
    what = e.what();
  }
  CAPTURE(what);
  CHECK(what.find("checkpoint '" + (small->dir / "ckpt-000000000008.pt").string() + "' not written") == 0);
  CHECK(what.find("No space left on device") != std::string::npos);
  CHECK(what.find('\n') == std::string::npos);
  // The previous checkpoint is all there is - no temp file left - and it loads.
  std::vector<fs::path> left;
  for (const auto& e : fs::directory_iterator(small->dir)) left.push_back(e.path());
  CHECK(left == std::vector<fs::path>{first});
  CHECK(bytes_of(first) == first_bytes);
  ResNet back(ResNetSpec{"resnet18", 0.125, 3});
  auto opt_back = synth::make_sgd(*back, oc);
  CHECK(synth::load_checkpoint(first, *back, opt_back.get(), "resnet18", 0.125, 3).images_seen == 4);
  CHECK(same_state(back, m));
}
