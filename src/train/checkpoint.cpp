#include "train/checkpoint.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "core/error.hpp"
#include "run/run_dir.hpp"

namespace synth {
namespace fs = std::filesystem;
namespace {

constexpr int64_t kFormat = 1;
constexpr const char* kPrefix = "ckpt-";
constexpr const char* kSuffix = ".pt";

torch::Tensor bytes_tensor(const std::string& s) {
  torch::Tensor t = torch::empty({int64_t(s.size())}, torch::kUInt8);
  if (!s.empty()) std::copy(s.begin(), s.end(), reinterpret_cast<char*>(t.data_ptr<uint8_t>()));
  return t;
}

std::string tensor_bytes(const torch::Tensor& t) {
  const torch::Tensor c = t.to(torch::kUInt8).contiguous();
  return std::string(reinterpret_cast<const char*>(c.data_ptr<uint8_t>()), size_t(c.numel()));
}

// Parses "ckpt-000000123456.pt" -> 123456; -1 for any other name (temp files included).
int64_t images_of(const fs::path& p) {
  const std::string name = p.filename().string();
  const size_t pre = std::char_traits<char>::length(kPrefix), suf = std::char_traits<char>::length(kSuffix);
  if (name.size() <= pre + suf || name.compare(0, pre, kPrefix) != 0 || name.compare(name.size() - suf, suf, kSuffix) != 0)
    return -1;
  const std::string digits = name.substr(pre, name.size() - pre - suf);
  if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos) return -1;
  return std::stoll(digits);
}

void fsync_dir(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

// A fresh tensor per read: InputArchive::read into a defined tensor set_()s it in place, keeping
// the old dtype.
torch::Tensor read_tensor(torch::serialize::InputArchive& a, const char* key) {
  torch::Tensor t;
  a.read(key, t);
  return t;
}

int64_t read_int(torch::serialize::InputArchive& a, const char* key) { return read_tensor(a, key).item<int64_t>(); }

struct Opened {
  torch::serialize::InputArchive archive;
  TrainState state;
};

void open_into(const fs::path& file, Opened& o) {
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) throw InputError("checkpoint '" + file.string() + "' does not exist");
  try {
    o.archive.load_from(file.string());
    if (read_int(o.archive, "synth.format") != kFormat) throw InputError("unsupported checkpoint format");
    TrainState& s = o.state;
    s.step = read_int(o.archive, "synth.step");
    s.images_seen = uint64_t(read_int(o.archive, "synth.images_seen"));
    s.seed = uint64_t(read_int(o.archive, "synth.seed"));
    s.num_classes = read_int(o.archive, "synth.num_classes");
    s.ledger = tensor_bytes(read_tensor(o.archive, "synth.ledger"));
    s.arch = tensor_bytes(read_tensor(o.archive, "synth.arch"));
    s.width = read_tensor(o.archive, "synth.width").item<double>();
    torch::Tensor scale;
    if (o.archive.try_read("synth.loss_scale", scale)) {
      s.loss_scale = scale[0].item<double>();
      s.loss_scale_good_steps = int64_t(scale[1].item<double>());
    }
  } catch (const InputError& e) {
    throw InputError("checkpoint '" + file.string() + "': " + e.what());
  } catch (const std::exception& e) {
    // LibTorch's zip reader reports truncation, bad CRCs and missing records as c10::Error with
    // a multi-line backtrace; keep its first line.
    std::string what = e.what();
    what = what.substr(0, what.find('\n'));
    throw InputError("checkpoint '" + file.string() + "' is unreadable, truncated or corrupt: " + what);
  }
}

}  // namespace

fs::path save_checkpoint(const fs::path& dir, const TrainState& state, torch::nn::Module& model,
                         torch::optim::Optimizer& optimizer, int keep) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error("cannot create checkpoint directory '" + dir.string() + "': " + ec.message());
  torch::serialize::OutputArchive archive;
  archive.write("synth.format", torch::tensor(kFormat, torch::kInt64));
  archive.write("synth.step", torch::tensor(state.step, torch::kInt64));
  archive.write("synth.images_seen", torch::tensor(int64_t(state.images_seen), torch::kInt64));
  archive.write("synth.seed", torch::tensor(int64_t(state.seed), torch::kInt64));
  archive.write("synth.num_classes", torch::tensor(state.num_classes, torch::kInt64));
  archive.write("synth.width", torch::full({1}, state.width, torch::TensorOptions().dtype(torch::kFloat64)));
  archive.write("synth.ledger", bytes_tensor(state.ledger));
  archive.write("synth.arch", bytes_tensor(state.arch));
  archive.write("synth.loss_scale",
                torch::tensor({state.loss_scale, double(state.loss_scale_good_steps)}, torch::kFloat64));
  torch::serialize::OutputArchive model_archive, optim_archive;
  model.save(model_archive);
  optimizer.save(optim_archive);
  archive.write("model", model_archive);
  archive.write("optimizer", optim_archive);

  std::ostringstream bytes;
  archive.save_to(bytes);
  char name[64];
  std::snprintf(name, sizeof name, "%s%012llu%s", kPrefix, (unsigned long long)state.images_seen, kSuffix);
  const fs::path file = dir / name;
  write_file_atomic(file, bytes.str());
  fsync_dir(dir);

  std::vector<fs::path> all = list_checkpoints(dir);
  for (size_t i = 0; i + size_t(std::max(keep, 1)) < all.size(); ++i) fs::remove(all[i], ec);
  return file;
}

std::vector<fs::path> list_checkpoints(const fs::path& dir) {
  std::vector<std::pair<int64_t, fs::path>> found;
  std::error_code ec;
  if (fs::is_directory(dir, ec))
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      const int64_t n = images_of(entry.path());
      if (n >= 0 && entry.is_regular_file(ec)) found.emplace_back(n, entry.path());
    }
  std::sort(found.begin(), found.end());
  std::vector<fs::path> out;
  for (auto& f : found) out.push_back(f.second);
  return out;
}

TrainState read_checkpoint_state(const fs::path& file) {
  Opened o;
  open_into(file, o);
  return o.state;
}

TrainState load_checkpoint(const fs::path& file, torch::nn::Module& model, torch::optim::Optimizer* optimizer,
                           const std::string& arch, double width, int64_t num_classes) {
  Opened o;
  open_into(file, o);
  const TrainState& s = o.state;
  if (s.arch != arch || s.width != width || s.num_classes != num_classes) {
    auto describe = [](const std::string& a, double w, int64_t n) {
      std::ostringstream o;
      o << a << " width " << w << " with " << n << " classes";
      return o.str();
    };
    throw InputError("checkpoint '" + file.string() + "' holds " + describe(s.arch, s.width, s.num_classes) +
                     ", the config asks for " + describe(arch, width, num_classes));
  }
  try {
    torch::serialize::InputArchive model_archive;
    o.archive.read("model", model_archive);
    model.load(model_archive);
    if (optimizer) {
      torch::serialize::InputArchive optim_archive;
      o.archive.read("optimizer", optim_archive);
      optimizer->load(optim_archive);
    }
  } catch (const std::exception& e) {
    std::string what = e.what();
    what = what.substr(0, what.find('\n'));
    throw InputError("checkpoint '" + file.string() + "': cannot restore the model/optimizer: " + what);
  }
  return s;
}

}  // namespace synth
