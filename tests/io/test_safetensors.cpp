// safetensors: exact round trips for every dtype the SD checkpoints use, and an InputError naming
// the file (and tensor) for each kind of corrupt file, built byte by byte in a temp directory.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <torch/torch.h>

#include "core/error.hpp"
#include "io/safetensors.hpp"
#include "support/scratch_dir.hpp"

namespace fs = std::filesystem;
using synth::InputError;
using synth::SafeTensorsFile;

namespace {

using TempDir = synth::test::ScratchDir;

// A raw safetensors file: header text as given, then `data_bytes` zero bytes.
void write_raw(const std::string& path, const std::string& header, size_t data_bytes, int64_t header_len = -1) {
  std::ofstream out(path, std::ios::binary);
  const uint64_t n = header_len < 0 ? header.size() : uint64_t(header_len);
  for (int i = 0; i < 8; ++i) out.put(char(n >> (8 * i)));
  out << header;
  out << std::string(data_bytes, '\0');
}

// Expects InputError mentioning every needle.
template <class F>
void expect_input_error(F&& f, const std::vector<std::string>& needles) {
  bool thrown = false;
  try {
    f();
  } catch (const InputError& e) {
    thrown = true;
    const std::string msg = e.what();
    for (const auto& n : needles) {
      INFO("message: " << msg << " | expected to contain: " << n);
      CHECK(msg.find(n) != std::string::npos);
    }
  }
  CHECK_MESSAGE(thrown, "expected synth::InputError");
}

}  // namespace

TEST_CASE("safetensors round trip keeps values, dtypes, shapes and metadata") {
  TempDir tmp;
  const std::string path = tmp.file("rt.safetensors");
  torch::manual_seed(3);
  auto f32 = torch::randn({3, 5, 7});
  auto f16 = torch::randn({4, 6}).to(torch::kFloat16);
  auto bf16 = (torch::randn({2, 3, 4}) * 100).to(torch::kBFloat16);
  auto i64 = torch::tensor({int64_t(-1), int64_t(1) << 40, int64_t(49407)});
  auto scalar = torch::tensor(2.5);
  auto empty = torch::zeros({0, 3});
  auto strided = torch::arange(24, torch::kFloat32).view({4, 6}).t();  // non-contiguous
  synth::save_safetensors(path, {{"a.f32", f32}, {"b.f16", f16}, {"c.bf16", bf16}, {"d.i64", i64},
                                 {"e.scalar", scalar}, {"f.empty", empty}, {"g.strided", strided}},
                          {{"format", "pt"}});
  const auto file = SafeTensorsFile::open(path);
  CHECK(file.names() == std::vector<std::string>{"a.f32", "b.f16", "c.bf16", "d.i64", "e.scalar", "f.empty", "g.strided"});
  CHECK(file.metadata().at("format") == "pt");
  CHECK(file.info("b.f16").dtype == "F16");
  CHECK(file.info("c.bf16").dtype == "BF16");
  CHECK(file.info("d.i64").shape == std::vector<int64_t>{3});
  CHECK(file.info("e.scalar").shape.empty());
  CHECK(torch::equal(file.tensor("a.f32"), f32));
  // fp16/bf16 -> fp32 is exact: converting back gives the stored bits.
  CHECK(torch::equal(file.tensor("b.f16"), f16.to(torch::kFloat32)));
  CHECK(torch::equal(file.tensor("b.f16").to(torch::kFloat16), f16));
  CHECK(torch::equal(file.tensor("c.bf16"), bf16.to(torch::kFloat32)));
  CHECK(torch::equal(file.tensor_raw("c.bf16"), bf16));
  CHECK(file.tensor("d.i64", torch::kInt64).equal(i64));
  CHECK(file.tensor("e.scalar").item<float>() == 2.5f);
  CHECK(file.tensor("f.empty").sizes().vec() == std::vector<int64_t>{0, 3});
  CHECK(torch::equal(file.tensor("g.strided"), strided));
  // read_into: straight copy, converting copy, strided destination, wrong shape.
  auto same = torch::empty({3, 5, 7});
  file.read_into("a.f32", same);
  CHECK(torch::equal(same, f32));
  auto widened = torch::empty({4, 6}, torch::kFloat64);
  file.read_into("b.f16", widened);
  CHECK(torch::equal(widened, f16.to(torch::kFloat64)));
  auto view = torch::empty({6, 4}).t();  // [4, 6] non-contiguous
  file.read_into("b.f16", view);
  CHECK(torch::equal(view, f16.to(torch::kFloat32)));
  auto wrong = torch::empty({6, 4});
  CHECK_THROWS_AS(file.read_into("b.f16", wrong), InputError);
  // The data section starts 8-byte aligned.
  std::ifstream in(path, std::ios::binary);
  uint64_t n = 0;
  in.read(reinterpret_cast<char*>(&n), 8);
  CHECK(n % 8 == 0);
  // No temporary file is left behind by the atomic write.
  int files = 0;
  for (const auto& e : fs::directory_iterator(tmp.path)) files += e.is_regular_file();
  CHECK(files == 1);
  // A tensor outlives the file object that produced it.
  torch::Tensor kept;
  {
    const auto again = SafeTensorsFile::open(path);
    kept = again.tensor("a.f32");
  }
  CHECK(torch::equal(kept, f32));
}

TEST_CASE("safetensors reads the reference file written by the Python safetensors library") {
  const auto file = SafeTensorsFile::open(std::string(SYNTH_TEST_DATA) + "/tiny-sd/vectors.safetensors");
  CHECK(file.info("tokenizer.input_ids").dtype == "I64");
  CHECK(file.info("tokenizer.input_ids").shape == std::vector<int64_t>{10, 77});
  auto ids = file.tensor("tokenizer.input_ids", torch::kInt64);
  CHECK(ids[0][0].item<int64_t>() == 49406);  // <|startoftext|>
  CHECK(file.metadata().is_object());
}

TEST_CASE("safetensors rejects corrupt files with an InputError naming the file and tensor") {
  TempDir tmp;
  const std::string good = R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})";

  SUBCASE("missing file") {
    expect_input_error([&] { SafeTensorsFile::open(tmp.file("nope.safetensors")); }, {"nope.safetensors"});
  }
  SUBCASE("truncated: shorter than the 8-byte length") {
    const auto p = tmp.file("short.safetensors");
    std::ofstream(p, std::ios::binary) << "abc";
    expect_input_error([&] { SafeTensorsFile::open(p); }, {p, "truncated"});
  }
  SUBCASE("truncated: data cut off") {
    const auto p = tmp.file("cut.safetensors");
    write_raw(p, good, 10);
    expect_input_error([&] { SafeTensorsFile::open(p); }, {p, "'w'", "beyond the data"});
  }
  SUBCASE("header length beyond the file") {
    const auto p = tmp.file("hlen.safetensors");
    write_raw(p, good, 16, 5000);
    expect_input_error([&] { SafeTensorsFile::open(p); }, {p, "header length 5000"});
  }
  SUBCASE("absurd header length") {
    const auto p = tmp.file("huge.safetensors");
    write_raw(p, good, 16, int64_t(1) << 62);
    expect_input_error([&] { SafeTensorsFile::open(p); }, {p, "absurd"});
  }
  SUBCASE("bad JSON") {
    const auto p = tmp.file("json.safetensors");
    write_raw(p, R"({"w":{"dtype":"F32",)", 16);
    expect_input_error([&] { SafeTensorsFile::open(p); }, {p, "JSON"});
  }
  SUBCASE("unknown dtype") {
    const auto p = tmp.file("dtype.safetensors");
    write_raw(p, R"({"w":{"dtype":"F128","shape":[2],"data_offsets":[0,32]}})", 32);
    expect_input_error([&] { SafeTensorsFile::open(p); }, {p, "'w'", "F128"});
  }
  SUBCASE("size mismatch between shape and offsets") {
    const auto p = tmp.file("size.safetensors");
    write_raw(p, R"({"w":{"dtype":"F16","shape":[2,3],"data_offsets":[0,16]}})", 16);
    expect_input_error([&] { SafeTensorsFile::open(p); }, {p, "'w'", "needs 12 bytes"});
  }
  SUBCASE("shape overflow does not allocate") {
    const auto p = tmp.file("ovf.safetensors");
    write_raw(p, R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,16]}})", 16);
    expect_input_error([&] { SafeTensorsFile::open(p); }, {p, "'w'", "overflows"});
  }
  SUBCASE("negative dimension") {
    const auto p = tmp.file("neg.safetensors");
    write_raw(p, R"({"w":{"dtype":"F32","shape":[-1,4],"data_offsets":[0,16]}})", 16);
    expect_input_error([&] { SafeTensorsFile::open(p); }, {p, "'w'"});
  }
  SUBCASE("overlapping offsets") {
    const auto p = tmp.file("overlap.safetensors");
    write_raw(p, R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", 16);
    expect_input_error([&] { SafeTensorsFile::open(p); }, {p, "'a'", "'b'", "overlapping"});
  }
  SUBCASE("offsets in the wrong order") {
    const auto p = tmp.file("order.safetensors");
    write_raw(p, R"({"w":{"dtype":"U8","shape":[0],"data_offsets":[8,4]}})", 16);
    expect_input_error([&] { SafeTensorsFile::open(p); }, {p, "'w'"});
  }
  SUBCASE("missing tensor") {
    const auto p = tmp.file("ok.safetensors");
    write_raw(p, good, 16);
    const auto f = SafeTensorsFile::open(p);
    CHECK(f.contains("w"));
    CHECK_FALSE(f.contains("v"));
    CHECK(f.tensor("w").sizes().vec() == std::vector<int64_t>{2, 2});
    expect_input_error([&] { f.tensor("v"); }, {p, "no tensor 'v'"});
    expect_input_error([&] { f.info("v"); }, {p, "no tensor 'v'"});
  }
  SUBCASE("writer refuses duplicate names") {
    const auto p = tmp.file("dup.safetensors");
    expect_input_error([&] { synth::save_safetensors(p, {{"x", torch::zeros({1})}, {"x", torch::ones({1})}}); },
                       {p, "'x'", "duplicate"});
    CHECK_FALSE(fs::exists(p));
  }
}

namespace {

// root.scale (parameter), root.step (buffer), then body = Sequential(Linear without bias, BatchNorm1d).
struct TinyNet : torch::nn::Module {
  TinyNet() {
    scale = register_parameter("scale", torch::randn({2}));
    step = register_buffer("step", torch::zeros({}, torch::kLong));
    body = register_module("body", torch::nn::Sequential(torch::nn::Linear(torch::nn::LinearOptions(3, 4).bias(false)),
                                                        torch::nn::BatchNorm1d(4)));
  }
  torch::Tensor scale, step;
  torch::nn::Sequential body{nullptr};
};

}  // namespace

TEST_CASE("module_state_dict: PyTorch's keys and order; saved and loaded back bitwise") {
  TempDir tmp;
  torch::manual_seed(3);
  TinyNet a;
  a.step.fill_(7);
  a.body->ptr(1)->named_buffers()["running_mean"].uniform_();
  const auto state = synth::module_state_dict(a);
  std::vector<std::string> keys;
  for (const auto& [k, t] : state) keys.push_back(k);
  // torch.nn.Module.state_dict order: own parameters, own buffers, then each child in turn.
  CHECK(keys == std::vector<std::string>{"scale", "step", "body.0.weight", "body.1.weight", "body.1.bias",
                                         "body.1.running_mean", "body.1.running_var", "body.1.num_batches_tracked"});
  CHECK((state[1].second.scalar_type() == torch::kLong));
  CHECK(state[0].second.data_ptr() == a.scale.data_ptr());  // the module's own tensors

  synth::save_safetensors(tmp.file("tiny.safetensors"), state);
  torch::manual_seed(4);
  TinyNet b;
  CHECK(!torch::equal(b.scale, a.scale));
  synth::load_module_weights(b, SafeTensorsFile::open(tmp.file("tiny.safetensors")));
  const auto loaded = synth::module_state_dict(b);
  REQUIRE(loaded.size() == state.size());
  for (size_t i = 0; i < state.size(); ++i) {
    INFO(state[i].first);
    CHECK(loaded[i].first == state[i].first);
    CHECK((loaded[i].second.scalar_type() == state[i].second.scalar_type()));
    CHECK(torch::equal(loaded[i].second, state[i].second));
  }
}
