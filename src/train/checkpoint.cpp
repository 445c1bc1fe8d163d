#include "train/checkpoint.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

#include <caffe2/serialize/inline_container.h>

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

// CRC-32 (zip's polynomial), bytewise with a table.
struct CrcTable {
  std::array<uint32_t, 256> v{};
  constexpr CrcTable() {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
      v[i] = c;
    }
  }
};
constexpr CrcTable kCrc;

uint32_t crc32(const uint8_t* p, size_t n) {
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; ++i) c = kCrc.v[(c ^ p[i]) & 0xff] ^ (c >> 8);
  return ~c;
}

uint64_t le(const std::string& b, size_t at, int bytes) {
  if (at + size_t(bytes) > b.size()) throw Error("zip structure runs past its end");
  uint64_t v = 0;
  for (int k = bytes - 1; k >= 0; --k) v = v << 8 | uint8_t(b[at + size_t(k)]);
  return v;
}

std::string read_range(std::ifstream& in, uint64_t at, uint64_t n) {
  std::string out(size_t(n), '\0');
  in.seekg(std::streamoff(at));
  in.read(out.data(), std::streamsize(n));
  if (!in) throw Error("zip structure points past the end of the file");
  return out;
}

// The CRC-32 of every record, by record name without the archive's top folder (as LibTorch's
// reader names them), from the zip's central directory; zip64 end records included. Only the
// central directory has them all: LibTorch's writer puts the CRCs in data descriptors after each
// record, and compresses some (code/), so the local headers cannot say where those are.
//
// It also checks, before LibTorch's reader sees the file, what that reader would otherwise act on
// unchecked: its constructor, when it throws on an archive without records, without a top folder
// or without a version record, leaks its zip state; and it allocates each record's uncompressed
// size as the central directory states it, so a 100-byte file could ask for gigabytes. A record
// may claim at most what deflate can expand its compressed bytes to (1032:1).
std::map<std::string, uint32_t> stored_crcs(const fs::path& file) {
  std::ifstream in(file, std::ios::binary | std::ios::ate);
  const uint64_t size = uint64_t(in.tellg());
  const uint64_t tail_at = size > 65557 ? size - 65557 : 0;  // end record (22) + longest comment
  const std::string tail = read_range(in, tail_at, size - tail_at);
  const size_t eocd = tail.rfind(std::string("PK\x05\x06", 4));
  if (eocd == std::string::npos) throw Error("no zip end record");
  uint64_t entries = le(tail, eocd + 10, 2), cd_size = le(tail, eocd + 12, 4), cd_at = le(tail, eocd + 16, 4);
  if (eocd >= 20 && le(tail, eocd - 20, 4) == 0x07064b50u) {  // zip64 locator -> zip64 end record
    const std::string end64 = read_range(in, le(tail, eocd - 20 + 8, 8), 56);
    if (le(end64, 0, 4) != 0x06064b50u) throw Error("bad zip64 end record");
    entries = le(end64, 32, 8);
    cd_size = le(end64, 40, 8);
    cd_at = le(end64, 48, 8);
  }
  // (zip64 values are 64-bit: cd_at + cd_size could wrap around.)
  if (cd_at > size || cd_size > size - cd_at) throw Error("zip central directory past the end of the file");
  if (entries == 0) throw Error("zip archive has no records");
  const std::string cd = read_range(in, cd_at, cd_size);
  std::map<std::string, uint32_t> crcs;
  size_t at = 0;
  for (uint64_t i = 0; i < entries; ++i) {
    if (le(cd, at, 4) != 0x02014b50u) throw Error("bad zip central directory entry");
    const size_t name_len = size_t(le(cd, at + 28, 2)), extra_len = size_t(le(cd, at + 30, 2));
    if (at + 46 + name_len + extra_len > cd.size()) throw Error("zip structure runs past its end");
    const std::string name = cd.substr(at + 46, name_len);
    if (i == 0 && name.find('/') == std::string::npos) throw Error("zip record '" + name + "' is not in a folder");
    uint64_t compressed = le(cd, at + 20, 4), uncompressed = le(cd, at + 24, 4);
    if (compressed == 0xffffffffu || uncompressed == 0xffffffffu) {
      // The zip64 extended-information extra field (id 1): the 64-bit sizes, uncompressed first.
      bool found = false;
      for (size_t x = at + 46 + name_len; x + 4 <= at + 46 + name_len + extra_len;) {
        const size_t id = size_t(le(cd, x, 2)), len = size_t(le(cd, x + 2, 2));
        if (x + 4 + len > at + 46 + name_len + extra_len) break;
        if (id == 1) {
          size_t f = x + 4;
          if (uncompressed == 0xffffffffu && f + 8 <= x + 4 + len) uncompressed = le(cd, f, 8), f += 8;
          if (compressed == 0xffffffffu && f + 8 <= x + 4 + len) compressed = le(cd, f, 8);
          found = true;
        }
        x += 4 + len;
      }
      if (!found) throw Error("zip record '" + name + "' has 32-bit size markers but no zip64 sizes");
    }
    if (compressed > size || uncompressed / 1032 > compressed)
      throw Error("zip record '" + name + "' claims " + std::to_string(uncompressed) + " bytes from " +
                  std::to_string(compressed) + " compressed in a " + std::to_string(size) + "-byte file");
    crcs[name.substr(name.find('/') + 1)] = uint32_t(le(cd, at + 16, 4));
    at += 46 + name_len + extra_len + size_t(le(cd, at + 32, 2));
  }
  if (!crcs.count("version") && !crcs.count(".data/version")) throw Error("zip archive has no version record");
  return crcs;
}

// LibTorch's zip reader does not check the CRC-32s (its miniz is built without), so a flipped bit
// in a tensor would load silently as a wrong weight or ledger. Checks every record, as the reader
// returns it (inflated where compressed), against the CRC its writer stored. The central directory
// is checked first, by stored_crcs, before LibTorch's reader opens the file.
void verify_records(const fs::path& file) {
  const std::map<std::string, uint32_t> crcs = stored_crcs(file);
  caffe2::serialize::PyTorchStreamReader reader(file.string());
  for (const std::string& name : reader.getAllRecords()) {
    const auto [data, size] = reader.getRecord(name);
    const auto stored = crcs.find(name);
    if (stored == crcs.end()) throw Error("record '" + name + "' is not in the zip central directory");
    if (crc32(static_cast<const uint8_t*>(data.get()), size) != stored->second)
      throw Error("record '" + name + "' fails its CRC-32 check");
  }
}

// The first line of a c10::Error (the rest is a backtrace), without miniz's advice paragraph.
std::string first_line(const std::string& what) {
  std::string line = what.substr(0, what.find('\n'));
  return line.substr(0, line.find(" This is an internal miniz error"));
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

void read_state(torch::serialize::InputArchive& a, TrainState& s) {
  s.step = read_int(a, "synth.step");
  s.images_seen = uint64_t(read_int(a, "synth.images_seen"));
  s.seed = uint64_t(read_int(a, "synth.seed"));
  s.num_classes = read_int(a, "synth.num_classes");
  s.ledger = tensor_bytes(read_tensor(a, "synth.ledger"));
  s.arch = tensor_bytes(read_tensor(a, "synth.arch"));
  s.width = read_tensor(a, "synth.width").item<double>();
  torch::Tensor scale;
  if (a.try_read("synth.loss_scale", scale)) {
    s.loss_scale = scale[0].item<double>();
    s.loss_scale_good_steps = int64_t(scale[1].item<double>());
  }
}

// Damage (DamagedCheckpoint) is anything that stops the archive or its synth.* records from
// reading back as written; an intact archive of another format is a plain InputError.
void open_into(const fs::path& file, Opened& o) {
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) throw DamagedCheckpoint("checkpoint '" + file.string() + "' does not exist");
  int64_t format = 0;
  try {
    verify_records(file);
    // Onto the CPU whatever device the tensors were saved from: a checkpoint of a CUDA run must
    // load where there is no GPU (stream-eval, stream-export), or on another GPU than it was
    // written from. The weights are copied into the live tensors afterwards, on their device.
    o.archive.load_from(file.string(), torch::Device(torch::kCPU));
    format = read_int(o.archive, "synth.format");
    if (format == kFormat) read_state(o.archive, o.state);
  } catch (const std::exception& e) {
    // LibTorch's zip reader reports truncation and missing records as c10::Error with a
    // multi-line backtrace; keep its first line.
    throw DamagedCheckpoint("checkpoint '" + file.string() + "' is unreadable, truncated or corrupt: " + first_line(e.what()));
  }
  if (format != kFormat)
    throw InputError("checkpoint '" + file.string() + "': unsupported checkpoint format " + std::to_string(format) +
                     " (this build reads " + std::to_string(kFormat) + ")");
}

// Copies the archive's parameters and buffers into module's own tensors, keeping their device,
// dtype and memory format (channels-last on GPUs). torch::nn::Module::load would instead set_()
// each tensor to the archive's, moving a CUDA model to the CPU the archive was mapped to.
void copy_into(torch::nn::Module& module, torch::serialize::InputArchive& archive, const std::string& prefix) {
  auto copy = [&](const std::string& key, torch::Tensor live, bool is_buffer) {
    torch::Tensor saved;
    archive.read(key, saved, is_buffer);
    if (saved.sizes() != live.sizes() || saved.scalar_type() != live.scalar_type())
      throw InputError("'" + prefix + key + "' is " + c10::toString(saved.scalar_type()) + " " +
                       c10::str(saved.sizes()) + ", the model has " + c10::toString(live.scalar_type()) + " " +
                       c10::str(live.sizes()));
    live.copy_(saved);
  };
  torch::NoGradGuard no_grad;
  for (auto& p : module.named_parameters(/*recurse=*/false)) copy(p.key(), p.value(), false);
  for (auto& b : module.named_buffers(/*recurse=*/false)) copy(b.key(), b.value(), true);
  for (const auto& child : module.named_children()) {
    torch::serialize::InputArchive sub;
    archive.read(child.key(), sub);
    copy_into(*child.value(), sub, prefix + child.key() + ".");
  }
}

// The optimizer state was read onto the CPU with the rest; SGD's momentum buffers must sit beside
// their parameters, in their layout, as SGD makes them. SGD is the only optimizer here
// (train/optimizer.hpp).
void move_state_to_params(torch::optim::Optimizer& optimizer) {
  torch::NoGradGuard no_grad;
  for (auto& group : optimizer.param_groups())
    for (const torch::Tensor& p : group.params()) {
      auto it = optimizer.state().find(p.unsafeGetTensorImpl());
      if (it == optimizer.state().end()) continue;
      auto* sgd = dynamic_cast<torch::optim::SGDParamState*>(it->second.get());
      if (!sgd) throw Error("checkpoint: cannot place optimizer state other than SGD's on the parameters' device");
      if (!sgd->momentum_buffer().defined()) continue;
      torch::Tensor placed = torch::empty_like(p);  // p's device, dtype and memory format
      placed.copy_(sgd->momentum_buffer());
      sgd->momentum_buffer(placed);
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
  try {
    write_file_atomic(file, bytes.str());  // removes its temp file when the write fails
  } catch (const Error& e) {
    throw Error("checkpoint '" + file.string() + "' not written, the previous ones are kept: " + e.what());
  }
  fsync_dir(dir);

  // Files beyond this one belong to a future that a resume abandoned (damaged ones it skipped).
  // Left, they would count towards `keep`, and the intact older ones would be deleted first.
  std::vector<fs::path> all = list_checkpoints(dir);
  while (!all.empty() && images_of(all.back()) > int64_t(state.images_seen)) {
    fs::remove(all.back(), ec);
    all.pop_back();
  }
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
    copy_into(model, model_archive, "");
    if (optimizer) {
      torch::serialize::InputArchive optim_archive;
      o.archive.read("optimizer", optim_archive);
      optimizer->load(optim_archive);
      move_state_to_params(*optimizer);
    }
  } catch (const InputError& e) {
    throw InputError("checkpoint '" + file.string() + "': cannot restore the model: " + e.what());
  } catch (const std::exception& e) {
    throw InputError("checkpoint '" + file.string() + "': cannot restore the model/optimizer: " + first_line(e.what()));
  }
  return s;
}

Resumed load_newest_checkpoint(const fs::path& dir, torch::nn::Module& model, torch::optim::Optimizer* optimizer,
                               const std::string& arch, double width, int64_t num_classes,
                               const std::function<void(const std::string&)>& warn) {
  const std::vector<fs::path> all = list_checkpoints(dir);
  std::string damaged;
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    try {
      // A damaged file throws before model or optimizer is touched (open_into reads it whole).
      return Resumed{*it, load_checkpoint(*it, model, optimizer, arch, width, num_classes)};
    } catch (const DamagedCheckpoint& e) {
      if (warn) warn(std::string("warning: ") + e.what() + "; skipped, trying an older checkpoint");
      damaged += (damaged.empty() ? "" : ", ") + it->filename().string();
    }
  }
  if (!damaged.empty())
    throw InputError("every checkpoint in '" + dir.string() + "' is damaged (" + damaged +
                     "): there is nothing intact to resume from");
  return {};
}

}  // namespace synth
