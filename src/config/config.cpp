// Strict, table-driven TOML binding for Config. The only translation unit that includes TOML++.
//
// kBindings is the single list of keys: each line names the field (its dotted path doubles as the
// TOML key), the allowed range or choices and a one-line doc. Loading walks the parsed document,
// rejects every key that is not in the list (with the closest valid key as a suggestion), converts
// and range-checks each value with the file:line:column of the value, applies --set overrides, and
// finally checks rules that involve several keys and the input paths.
// TOML++ 3.3.0 (Debian 12) asserts that a table header's key starts with a key character, which
// malformed input such as "[+a]" or "[[[1]]]" breaks (marzer/tomlplusplus#294, fixed upstream by
// #301): a debug build aborted on such a typo in a config. Release builds (NDEBUG, gcc) skip the
// check and report the parse error; this makes every build do that. Found by tests/fuzz.
#ifndef NDEBUG
#define TOML_ASSERT(expr) static_cast<void>(0)
#endif
#include <toml++/toml.h>

#include <algorithm>
#include <charconv>
#include <climits>
#include <cstdio>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <sstream>
#include <tuple>
#include <variant>

#include "config/eval_sets.hpp"
#include "config/load.hpp"
#include "core/device.hpp"
#include "core/error.hpp"

namespace synth {
namespace {

using FieldRef = std::variant<int*, int64_t*, uint64_t*, double*, bool*, std::string*, std::vector<double>*,
                              std::vector<std::string>*>;
constexpr double kInf = std::numeric_limits<double>::infinity();

// What a value may be: a numeric interval (optionally open at the bottom) or a list of strings.
struct Allowed {
  double lo = -kInf, hi = kInf;
  bool lo_open = false;
  std::vector<std::string> choices;
  bool non_empty = false;  // strings and string arrays
  bool device = false;     // a device value (core/device.hpp), checked by validate()
};

Allowed any_value() { return {}; }
Allowed at_least(double lo) { return {lo, kInf, false, {}, false}; }
Allowed between(double lo, double hi) { return {lo, hi, false, {}, false}; }
Allowed above(double lo, double hi = kInf) { return {lo, hi, true, {}, false}; }
Allowed one_of(std::vector<std::string> choices) { return {-kInf, kInf, false, std::move(choices), false}; }
Allowed non_empty() { return {-kInf, kInf, false, {}, true}; }
Allowed device_value() { return {-kInf, kInf, false, {}, true, true}; }
Allowed non_empty_one_of(std::vector<std::string> choices) { return {-kInf, kInf, false, std::move(choices), true}; }

struct Binding {
  const char* key;
  FieldRef (*field)(Config&);
  Allowed allowed;
  const char* doc;
};

// The dotted key is the field's path inside Config, so key and field can never disagree.
#define SYNTH_BIND(path, allowed, doc) \
  Binding { #path, [](Config& c) -> FieldRef { return &c.path; }, allowed, doc }

const std::vector<Binding>& bindings() {
  static const std::vector<Binding> table = {
      SYNTH_BIND(run.name, non_empty(), "run directory name under run.dir (no '/')"),
      SYNTH_BIND(run.dir, non_empty(), "folder holding all run directories"),
      SYNTH_BIND(run.seed, at_least(0), "root of every counter-based RNG key"),
      SYNTH_BIND(run.progress_seconds, above(0, 86400), "seconds between console progress lines"),
      SYNTH_BIND(run.note, any_value(), "a line logged at the start of the run"),
      SYNTH_BIND(run.sample_every_images, between(0, 1e15), "sample sheet period in trained images (0 = never)"),

      SYNTH_BIND(data.source, one_of({"fmnist", "image_folder", "synthetic"}), "where training images come from"),
      SYNTH_BIND(data.train_path, any_value(), "IDX folder (fmnist) or ImageFolder root (image_folder)"),
      SYNTH_BIND(data.class_file, any_value(), "optional class-id list fixing the folder -> label mapping"),
      SYNTH_BIND(data.on_corrupt, one_of({"error", "skip"}), "corrupt image: stop with its name, or count and skip"),
      SYNTH_BIND(data.limit, between(0, 1e15), "use only the first N training images (0 = all)"),
      SYNTH_BIND(data.decode_threads, between(1, 256), "producer threads decoding into the ring"),

      SYNTH_BIND(ring.slots, between(1, 1 << 20), "ring buffer slots (images in flight)"),
      SYNTH_BIND(ring.max_height, between(1, 16384), "largest image height a slot holds, pixels"),
      SYNTH_BIND(ring.max_width, between(1, 16384), "largest image width a slot holds, pixels"),

      SYNTH_BIND(augment.kind, one_of({"simple", "dino"}), "simple = random resized crop + flip; dino = multi-crop"),
      SYNTH_BIND(augment.crop_size, between(1, 4096), "side of the square training crop, pixels"),
      SYNTH_BIND(augment.scale_min, above(0, 1), "random resized crop: smallest area fraction"),
      SYNTH_BIND(augment.scale_max, above(0, 1), "random resized crop: largest area fraction"),
      SYNTH_BIND(augment.ratio_min, above(0, 100), "random resized crop: smallest aspect ratio w/h"),
      SYNTH_BIND(augment.ratio_max, above(0, 100), "random resized crop: largest aspect ratio w/h"),
      SYNTH_BIND(augment.flip_p, between(0, 1), "probability of a horizontal flip"),
      SYNTH_BIND(augment.mean, between(-10, 10), "per-channel (RGB) mean subtracted after scaling to [0,1]"),
      SYNTH_BIND(augment.std, above(0, 10), "per-channel (RGB) std dividing after the mean"),
      SYNTH_BIND(augment.dino.global_crops, between(1, 64), "DINO: global crops per image"),
      SYNTH_BIND(augment.dino.global_size, between(1, 4096), "DINO: side of a global crop, pixels"),
      SYNTH_BIND(augment.dino.global_scale_min, above(0, 1), "DINO: smallest area fraction of a global crop"),
      SYNTH_BIND(augment.dino.global_scale_max, above(0, 1), "DINO: largest area fraction of a global crop"),
      SYNTH_BIND(augment.dino.local_crops, between(0, 64), "DINO: local crops per image"),
      SYNTH_BIND(augment.dino.local_size, between(1, 4096), "DINO: side of a local crop, pixels"),
      SYNTH_BIND(augment.dino.local_scale_min, above(0, 1), "DINO: smallest area fraction of a local crop"),
      SYNTH_BIND(augment.dino.local_scale_max, above(0, 1), "DINO: largest area fraction of a local crop"),
      SYNTH_BIND(augment.dino.ratio_min, above(0, 100), "DINO: smallest aspect ratio w/h (log-uniform)"),
      SYNTH_BIND(augment.dino.ratio_max, above(0, 100), "DINO: largest aspect ratio w/h (log-uniform)"),
      SYNTH_BIND(augment.dino.flip_p, between(0, 1), "DINO: probability of a horizontal flip"),
      SYNTH_BIND(augment.dino.jitter_p, between(0, 1), "DINO: probability of applying colour jitter"),
      SYNTH_BIND(augment.dino.brightness, between(0, 10), "DINO: brightness factor drawn from [max(0,1-b), 1+b]"),
      SYNTH_BIND(augment.dino.contrast, between(0, 10), "DINO: contrast factor drawn from [max(0,1-c), 1+c]"),
      SYNTH_BIND(augment.dino.saturation, between(0, 10), "DINO: saturation factor drawn from [max(0,1-s), 1+s]"),
      SYNTH_BIND(augment.dino.hue, between(0, 0.5), "DINO: hue shift drawn from [-h, h]"),
      SYNTH_BIND(augment.dino.grayscale_p, between(0, 1), "DINO: probability of converting to grayscale"),
      SYNTH_BIND(augment.dino.blur_p_first, between(0, 1), "DINO: blur probability of first-type global crops"),
      SYNTH_BIND(augment.dino.blur_p_second, between(0, 1), "DINO: blur probability of second-type global crops"),
      SYNTH_BIND(augment.dino.blur_p_local, between(0, 1), "DINO: blur probability of local crops"),
      SYNTH_BIND(augment.dino.blur_sigma_min, above(0, 100), "DINO: smallest Gaussian blur sigma, pixels"),
      SYNTH_BIND(augment.dino.blur_sigma_max, above(0, 100), "DINO: largest Gaussian blur sigma, pixels"),
      SYNTH_BIND(augment.dino.solarize_p, between(0, 1), "DINO: solarization probability of second-type global crops"),

      SYNTH_BIND(model.arch, one_of({"resnet18", "resnet34", "resnet50"}), "torchvision ResNet variant"),
      SYNTH_BIND(model.width, above(0, 8), "channel multiplier of every stage (1 = torchvision)"),
      SYNTH_BIND(model.num_classes, between(2, 1000000), "classifier outputs"),

      SYNTH_BIND(optim.lr, above(0, 100), "peak SGD learning rate at batch 256 (scaled by batch/256)"),
      SYNTH_BIND(optim.momentum, between(0, 0.9999), "SGD momentum"),
      SYNTH_BIND(optim.weight_decay, between(0, 1), "L2 weight decay"),
      SYNTH_BIND(optim.decay_bn_and_bias, any_value(), "also decay BatchNorm parameters and biases"),
      SYNTH_BIND(optim.warmup_fraction, between(0, 1), "linear warm-up length as a fraction of all steps"),
      SYNTH_BIND(optim.final_lr_fraction, between(0, 1), "cosine floor as a fraction of the peak lr"),
      SYNTH_BIND(optim.label_smoothing, between(0, 0.9999), "label smoothing of the cross-entropy"),

      SYNTH_BIND(train.batch_size, between(1, 1 << 20), "global batch, images per step"),
      SYNTH_BIND(train.total_images, between(1, 1e15), "run length in images (the stream has no epochs)"),
      SYNTH_BIND(train.device, device_value(), "where the model trains (cuda = cuda:LOCAL_RANK of the rank)"),
      SYNTH_BIND(train.precision, one_of({"fp32", "fp16", "bf16"}), "autocast precision of forward/backward"),
      SYNTH_BIND(train.threads, between(0, 1024), "intra-op threads (0 = LibTorch default)"),
      SYNTH_BIND(train.checkpoint_every_images, between(0, 1e15), "checkpoint period in images (0 = only at the end)"),
      SYNTH_BIND(train.keep_checkpoints, between(1, 1000), "newest checkpoints kept on disk"),

      SYNTH_BIND(eval.source, one_of({"fmnist", "image_folder", "none"}), "held-out real images (none = no evaluation)"),
      SYNTH_BIND(eval.path, any_value(), "IDX folder (t10k split) or ImageFolder root of the eval set"),
      SYNTH_BIND(eval.sets, any_value(), "more sets, each \"NAME=PATH[,option=value]...\" (docs/EVALUATION.md)"),
      SYNTH_BIND(eval.every_images, between(0, 1e15), "evaluation period in trained images (0 = only at the end)"),
      SYNTH_BIND(eval.limit, between(0, 1e15), "evaluate only the first N images of each set (0 = all)"),
      SYNTH_BIND(eval.batch_size, between(1, 1 << 16), "images per evaluation batch"),
      SYNTH_BIND(eval.resize, between(1, 4096), "shorter side after resizing, before the centre crop, pixels"),
      SYNTH_BIND(eval.crop, between(1, 4096), "side of the centre crop, pixels"),
      SYNTH_BIND(eval.on_corrupt, one_of({"error", "skip"}), "unreadable image: stop naming it, or count and skip it"),
      SYNTH_BIND(eval.decode_threads, between(1, 256), "threads decoding and preprocessing evaluation images"),
      SYNTH_BIND(eval.cache_mb, between(0, 1 << 24), "MiB of preprocessed evaluation images kept between evaluations"),

      SYNTH_BIND(prompts.class_file, non_empty(), "class file (TSV: id, name, hypernyms, definition)"),
      SYNTH_BIND(prompts.scene_file, non_empty(), "Places365 scene list for the 'inside b' template"),
      SYNTH_BIND(prompts.templates, non_empty_one_of({"c", "c_hc", "c_dc", "multiple_c_hc", "multiple_different_c_hc", "c_hc_inside_b"}),
                 "prompt templates of the mixture"),
      SYNTH_BIND(prompts.template_weights, between(0, 1e9), "mixture weight per template ([] = uniform)"),
      SYNTH_BIND(prompts.block_multiplier, between(1, 1 << 20), "k: each class appears k times per block of N*k images"),
      SYNTH_BIND(prompts.class_weights_file, any_value(), "per-class weights file ('' = exactly balanced classes)"),

      SYNTH_BIND(generator.model_dir, any_value(), "diffusers Stable Diffusion v1 directory (data.source = synthetic)"),
      SYNTH_BIND(generator.scheduler, one_of({"pndm", "ddim", "dpmpp2m", "euler"}), "sampler"),
      SYNTH_BIND(generator.steps, between(1, 1000), "denoising steps"),
      SYNTH_BIND(generator.guidance, between(0, 100), "classifier-free guidance scale"),
      SYNTH_BIND(generator.width, between(8, 4096), "generated image width, pixels (multiple of 8)"),
      SYNTH_BIND(generator.height, between(8, 4096), "generated image height, pixels (multiple of 8)"),
      SYNTH_BIND(generator.batch_size, between(1, 4096), "images per sampler call"),
      SYNTH_BIND(generator.device, device_value(), "where the generator runs (cuda = cuda:LOCAL_RANK of the rank)"),
      SYNTH_BIND(generator.dtype, one_of({"fp32", "fp16"}), "weights/activations dtype of the U-Net, VAE and text encoder"),
      SYNTH_BIND(generator.instances, between(1, 64), "generator threads, each with its own model copy"),
      SYNTH_BIND(generator.unique_images, between(0, 1e15), "0 = stream; N: image i is image i mod N (a fixed dataset repeated)"),

      SYNTH_BIND(dist.backend, one_of({"auto", "gloo", "nccl"}), "collectives: auto = nccl for cuda training, else gloo"),
      SYNTH_BIND(dist.trainer_ranks, between(0, 1 << 20), "ranks [0, k) train, the rest only generate (0 = all train)"),
      SYNTH_BIND(dist.timeout_s, above(0, 1e7), "seconds a collective or the rendezvous may wait"),
      SYNTH_BIND(dist.lost_rank_s, between(2, 1e6), "seconds without a rank's heartbeat before the job stops, exit 3"),
      SYNTH_BIND(dist.bucket_mb, between(1, 1 << 14), "gradient all-reduce bucket size, MiB"),
      SYNTH_BIND(dist.sync_batch_norm, any_value(), "batch-norm statistics over all trainer ranks (false: per rank)"),
  };
  return table;
}
#undef SYNTH_BIND

const Binding* find_binding(const std::string& key) {
  for (const auto& b : bindings())
    if (key == b.key) return &b;
  return nullptr;
}

std::string section_of(const std::string& key) { return key.substr(0, key.find('.')); }
// The key inside its top-level section: "dino.global_crops" for augment.dino.global_crops, written
// by to_toml as a TOML dotted key under [augment].
std::string key_in_section(const std::string& key) {
  const auto dot = key.find('.');
  return dot == std::string::npos ? key : key.substr(dot + 1);
}
std::string leaf_of(const std::string& key) {
  const auto dot = key.rfind('.');
  return dot == std::string::npos ? key : key.substr(dot + 1);
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

// ---- value formatting (shared by to_toml, docs and error messages) ----

std::string format_number(double v) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

std::string toml_double(double v) {
  std::string s = format_number(v);
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  if (std::isnan(v)) return "nan";
  if (s.find_first_of(".eE") == std::string::npos) s += ".0";  // keep it a TOML float
  return s;
}

std::string toml_string(const std::string& s) {
  std::string out = "\"";
  for (const unsigned char ch : s) {
    switch (ch) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (ch < 0x20 || ch == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04X", ch);
          out += buf;
        } else {
          out += char(ch);
        }
    }
  }
  return out + "\"";
}

std::string value_toml(const FieldRef& f) {
  struct {
    std::string operator()(int* v) const { return std::to_string(*v); }
    std::string operator()(int64_t* v) const { return std::to_string(*v); }
    std::string operator()(uint64_t* v) const { return std::to_string(*v); }
    std::string operator()(double* v) const { return toml_double(*v); }
    std::string operator()(bool* v) const { return *v ? "true" : "false"; }
    std::string operator()(std::string* v) const { return toml_string(*v); }
    std::string operator()(std::vector<double>* v) const {
      std::string s = "[";
      for (size_t i = 0; i < v->size(); ++i) s += (i ? ", " : "") + toml_double((*v)[i]);
      return s + "]";
    }
    std::string operator()(std::vector<std::string>* v) const {
      std::string s = "[";
      for (size_t i = 0; i < v->size(); ++i) s += (i ? ", " : "") + toml_string((*v)[i]);
      return s + "]";
    }
  } visitor;
  return std::visit(visitor, f);
}

std::string type_name(const FieldRef& f) {
  switch (f.index()) {
    case 0: case 1: case 2: return "integer";
    case 3: return "float";
    case 4: return "boolean";
    case 5: return "string";
    case 6: return "array of floats";
    default: return "array of strings";
  }
}

std::string allowed_text(const Allowed& a) {
  if (!a.choices.empty()) {
    std::string s;
    for (size_t i = 0; i < a.choices.size(); ++i) s += (i ? " | " : "") + a.choices[i];
    return s;
  }
  if (a.device) return "cpu | cuda | cuda:N";
  if (a.non_empty) return "non-empty";
  const bool has_lo = std::isfinite(a.lo), has_hi = std::isfinite(a.hi);
  if (has_lo && has_hi) {
    if (a.lo_open) return "> " + format_number(a.lo) + " and <= " + format_number(a.hi);
    return format_number(a.lo) + " .. " + format_number(a.hi);
  }
  if (has_lo) return (a.lo_open ? "> " : ">= ") + format_number(a.lo);
  if (has_hi) return "<= " + format_number(a.hi);
  return "any";
}

const char* node_type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
    default: return "nothing";
  }
}

// ---- loading ----

// One value seen in the document or in a --set override, with where it came from.
struct Leaf {
  std::string key;
  const toml::node* node = nullptr;
  std::string where;      // of the value: "file:line:column" or "--set key=value"
  std::string key_where;  // of the key itself (unknown-key errors point here)
  uint64_t line = 0, column = 0;
};

std::string where_of(const toml::source_region& r, const std::string& fallback) {
  const std::string path = r.path ? *r.path : fallback;
  if (r.begin.line == 0) return path;
  return path + ":" + std::to_string(r.begin.line) + ":" + std::to_string(r.begin.column);
}

[[noreturn]] void fail(const std::string& where, const std::string& message) {
  throw InputError(where.empty() ? message : where + ": " + message);
}

bool is_section_prefix(const std::string& path) {
  for (const auto& b : bindings())
    if (std::string(b.key).rfind(path + ".", 0) == 0) return true;
  return false;
}

std::string unknown_key_message(const std::string& key) {
  std::string msg = "unknown key " + key;
  const std::string best = closest_key(key);
  if (!best.empty()) return msg + " (did you mean " + best + "?)";
  const std::string section = section_of(key);
  std::string valid;
  for (const auto& b : bindings())
    if (section_of(b.key) == section) valid += std::string(valid.empty() ? "" : ", ") + b.key;
  if (!valid.empty()) return msg + " (valid keys in [" + section + "]: " + valid + ")";
  return msg + " (sections: run, data, ring, augment, model, optim, train, eval)";
}

void flatten(const toml::table& t, const std::string& prefix, const std::string& file, std::vector<Leaf>& out) {
  for (auto&& [k, v] : t) {
    const std::string path = prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
    const toml::table* sub = v.as_table();
    // Descend into tables that are sections of bound keys, and into unknown non-empty tables so the
    // error names the full dotted key; a bound key holding a table is reported as a type error.
    if (sub && !find_binding(path) && (!sub->empty() || is_section_prefix(path))) {
      flatten(*sub, path, file, out);
      continue;
    }
    out.push_back(Leaf{path, &v, where_of(v.source(), file), where_of(k.source(), file), k.source().begin.line,
                       k.source().begin.column});
  }
}

bool in_allowed(double x, const Allowed& a) {
  if (!std::isfinite(x)) return false;
  if (a.lo_open ? !(x > a.lo) : !(x >= a.lo)) return false;
  return x <= a.hi;
}

void check_number(const Leaf& leaf, double x, const std::string& shown) {
  const Allowed& a = find_binding(leaf.key)->allowed;
  if (!in_allowed(x, a))
    fail(leaf.where, leaf.key + " = " + shown + " is out of range (allowed: " + allowed_text(a) + ")");
}

double numeric(const Leaf& leaf, const toml::node& n, const std::string& what) {
  if (const auto* i = n.as_integer()) return double(i->get());
  if (const auto* d = n.as_floating_point()) return d->get();
  fail(leaf.where, leaf.key + ": expected " + what + ", got " + node_type_name(n));
}

int64_t integer(const Leaf& leaf) {
  const auto* i = leaf.node->as_integer();
  if (!i) fail(leaf.where, leaf.key + ": expected an integer, got " + node_type_name(*leaf.node));
  check_number(leaf, double(i->get()), std::to_string(i->get()));
  return i->get();
}

void assign(const Leaf& leaf, Config& cfg) {
  const Binding& b = *find_binding(leaf.key);
  const toml::node& n = *leaf.node;
  const FieldRef f = b.field(cfg);
  if (auto* p = std::get_if<int*>(&f)) {
    const int64_t v = integer(leaf);
    if (v < INT_MIN || v > INT_MAX) fail(leaf.where, leaf.key + " = " + std::to_string(v) + " is out of range");
    **p = int(v);
  } else if (auto* p = std::get_if<int64_t*>(&f)) {
    **p = integer(leaf);
  } else if (auto* p = std::get_if<uint64_t*>(&f)) {
    **p = uint64_t(integer(leaf));
  } else if (auto* p = std::get_if<double*>(&f)) {
    const double v = numeric(leaf, n, "a number");
    check_number(leaf, v, format_number(v));
    **p = v;
  } else if (auto* p = std::get_if<bool*>(&f)) {
    const auto* v = n.as_boolean();
    if (!v) fail(leaf.where, leaf.key + ": expected a boolean (true/false), got " + node_type_name(n));
    **p = v->get();
  } else if (auto* p = std::get_if<std::string*>(&f)) {
    const auto* v = n.as_string();
    if (!v) fail(leaf.where, leaf.key + ": expected a string, got " + node_type_name(n));
    const std::string s = v->get();
    if (b.allowed.non_empty && s.empty()) fail(leaf.where, leaf.key + " must not be empty");
    if (!b.allowed.choices.empty() &&
        std::find(b.allowed.choices.begin(), b.allowed.choices.end(), s) == b.allowed.choices.end())
      fail(leaf.where, leaf.key + " = " + toml_string(s) + " is not one of " + allowed_text(b.allowed));
    **p = s;
  } else if (auto* p = std::get_if<std::vector<double>*>(&f)) {
    const auto* arr = n.as_array();
    if (!arr) fail(leaf.where, leaf.key + ": expected an array of numbers, got " + node_type_name(n));
    std::vector<double> values;
    for (size_t i = 0; i < arr->size(); ++i) {
      const toml::node& e = *arr->get(i);
      Leaf elem{leaf.key + "[" + std::to_string(i) + "]", &e, where_of(e.source(), leaf.where), leaf.key_where};
      if (leaf.where.rfind("--set ", 0) == 0) elem.where = leaf.where;
      const double x = numeric(elem, e, "a number");
      if (!in_allowed(x, b.allowed))
        fail(elem.where, elem.key + " = " + format_number(x) + " is out of range (allowed: " + allowed_text(b.allowed) + ")");
      values.push_back(x);
    }
    **p = values;
  } else if (auto* p = std::get_if<std::vector<std::string>*>(&f)) {
    const auto* arr = n.as_array();
    if (!arr) fail(leaf.where, leaf.key + ": expected an array of strings, got " + node_type_name(n));
    std::vector<std::string> values;
    for (size_t i = 0; i < arr->size(); ++i) {
      const toml::node& e = *arr->get(i);
      const std::string elem_key = leaf.key + "[" + std::to_string(i) + "]";
      const std::string elem_where = leaf.where.rfind("--set ", 0) == 0 ? leaf.where : where_of(e.source(), leaf.where);
      const auto* str = e.as_string();
      if (!str) fail(elem_where, elem_key + ": expected a string, got " + node_type_name(e));
      const std::string v = str->get();
      if (!b.allowed.choices.empty() &&
          std::find(b.allowed.choices.begin(), b.allowed.choices.end(), v) == b.allowed.choices.end())
        fail(elem_where, elem_key + " = " + toml_string(v) + " is not one of " + allowed_text(b.allowed));
      values.push_back(v);
    }
    if (b.allowed.non_empty && values.empty()) fail(leaf.where, leaf.key + " must not be empty");
    **p = values;
  }
}

using Locations = std::map<std::string, std::string>;

// Cross-field rules, and the input paths of `inputs`. `loc` maps keys to where they were set, for
// messages pointing at the file.
void validate(const Config& c, const Locations& loc, const std::string& file, ConfigInputs inputs) {
  const auto where = [&](const std::string& key) {
    auto it = loc.find(key);
    return it != loc.end() ? it->second : file;
  };
  const auto require = [&](bool ok, const std::string& key, const std::string& message) {
    if (!ok) fail(where(key), message);
  };
  require(c.run.name.find('/') == std::string::npos && c.run.name != "." && c.run.name != "..", "run.name",
          "run.name = " + toml_string(c.run.name) + " must be a plain directory name (no '/', not . or ..)");
  require(c.augment.scale_min <= c.augment.scale_max, "augment.scale_min",
          "augment.scale_min (" + format_number(c.augment.scale_min) + ") must be <= augment.scale_max (" +
              format_number(c.augment.scale_max) + ")");
  require(c.augment.ratio_min <= c.augment.ratio_max, "augment.ratio_min",
          "augment.ratio_min (" + format_number(c.augment.ratio_min) + ") must be <= augment.ratio_max (" +
              format_number(c.augment.ratio_max) + ")");
  for (const char* kind : {"global", "local"}) {
    const bool g = kind[0] == 'g';
    const double lo = g ? c.augment.dino.global_scale_min : c.augment.dino.local_scale_min;
    const double hi = g ? c.augment.dino.global_scale_max : c.augment.dino.local_scale_max;
    const std::string key = std::string("augment.dino.") + kind + "_scale_min";
    require(lo <= hi, key, key + " (" + format_number(lo) + ") must be <= augment.dino." + kind + "_scale_max (" +
                               format_number(hi) + ")");
  }
  require(c.augment.dino.ratio_min <= c.augment.dino.ratio_max, "augment.dino.ratio_min",
          "augment.dino.ratio_min (" + format_number(c.augment.dino.ratio_min) + ") must be <= augment.dino.ratio_max (" +
              format_number(c.augment.dino.ratio_max) + ")");
  require(c.augment.dino.blur_sigma_min <= c.augment.dino.blur_sigma_max, "augment.dino.blur_sigma_min",
          "augment.dino.blur_sigma_min (" + format_number(c.augment.dino.blur_sigma_min) +
              ") must be <= augment.dino.blur_sigma_max (" + format_number(c.augment.dino.blur_sigma_max) + ")");
  // Images reach the model as N x 3 x H x W (gray sources are replicated), so one value per channel.
  require(c.augment.mean.size() == 3, "augment.mean",
          "augment.mean must have 3 values (R, G, B), got " + std::to_string(c.augment.mean.size()));
  require(c.augment.std.size() == 3, "augment.std",
          "augment.std must have 3 values (R, G, B), got " + std::to_string(c.augment.std.size()));
  require(c.eval.crop <= c.eval.resize, "eval.crop",
          "eval.crop (" + std::to_string(c.eval.crop) + ") must be <= eval.resize (" + std::to_string(c.eval.resize) + ")");
  // The trainer assembles a batch from ring slots it holds at once.
  require(int64_t(c.ring.slots) >= c.train.batch_size, "ring.slots",
          "ring.slots (" + std::to_string(c.ring.slots) + ") must be >= train.batch_size (" +
              std::to_string(c.train.batch_size) + ")");
  const double ring_bytes = double(c.ring.slots) * c.ring.max_height * c.ring.max_width * 3;
  require(ring_bytes <= 64.0 * (1ull << 30), "ring.slots",
          "ring.slots * ring.max_height * ring.max_width * 3 = " + format_number(ring_bytes / (1ull << 30)) +
              " GiB exceeds the 64 GiB limit");
  require(c.train.total_images >= c.train.batch_size, "train.total_images",
          "train.total_images (" + std::to_string(c.train.total_images) + ") must be >= train.batch_size (" +
              std::to_string(c.train.batch_size) + ")");
  // Device values: cpu | cuda (the rank's LOCAL_RANK GPU) | cuda:N, parsed as the stages resolve them.
  for (const auto& [key, value] : {std::make_pair("train.device", &c.train.device),
                                   std::make_pair("generator.device", &c.generator.device)}) {
    try {
      parse_device_spec(*value, key);
    } catch (const InputError& e) {
      fail(where(key), e.what());
    }
  }
  require(c.train.precision != "fp16" || is_cuda_spec(c.train.device), "train.precision",
          "train.precision = \"fp16\" needs train.device = \"cuda\" (use fp32 or bf16 on cpu)");

  namespace fs = std::filesystem;
  std::error_code ec;
  if (c.data.source == "synthetic") {
    const GeneratorConfig& g = c.generator;
    if (inputs & kTrainData) {
      require(!g.model_dir.empty(), "generator.model_dir", "generator.model_dir is empty (data.source = \"synthetic\")");
      require(fs::is_regular_file(fs::path(g.model_dir) / "model_index.json", ec), "generator.model_dir",
              "generator.model_dir: '" + g.model_dir + "' is not a diffusers model directory (no model_index.json)");
    }
    require(g.width % 8 == 0 && g.height % 8 == 0, "generator.width",
            "generator.width x generator.height (" + std::to_string(g.width) + "x" + std::to_string(g.height) +
                ") must be multiples of 8");
    require(g.dtype != "fp16" || is_cuda_spec(g.device), "generator.dtype",
            "generator.dtype = \"fp16\" needs generator.device = \"cuda\"");
    require(c.ring.max_height >= g.height && c.ring.max_width >= g.width, "ring.max_height",
            "ring.max_height x ring.max_width (" + std::to_string(c.ring.max_height) + "x" +
                std::to_string(c.ring.max_width) + ") cannot hold a generated " + std::to_string(g.height) + "x" +
                std::to_string(g.width) + " image");
    // Each generator holds a whole sampler batch of slots while it generates (slots are taken before
    // indices are claimed), on top of the trainer's batch: see stream/batcher.hpp.
    const int64_t need = c.train.batch_size + g.batch_size * g.instances;
    require(int64_t(c.ring.slots) >= need, "ring.slots",
            "ring.slots (" + std::to_string(c.ring.slots) + ") must be >= train.batch_size + generator.batch_size * " +
                "generator.instances (" + std::to_string(need) + ")");
  } else if (inputs & kTrainData) {
    require(!c.data.train_path.empty(), "data.train_path", "data.train_path is empty (data.source = " + toml_string(c.data.source) + ")");
    require(fs::is_directory(c.data.train_path, ec), "data.train_path",
            "data.train_path: '" + c.data.train_path + "' does not exist or is not a directory");
  }
  if (!c.data.class_file.empty() && (inputs & (kTrainData | kEvalSets)))
    require(fs::is_regular_file(c.data.class_file, ec), "data.class_file",
            "data.class_file: '" + c.data.class_file + "' does not exist or is not a file");
  if (c.eval.source != "none" && (inputs & kEvalSets)) {
    require(!c.eval.path.empty(), "eval.path", "eval.path is empty (eval.source = " + toml_string(c.eval.source) + ")");
    require(fs::is_directory(c.eval.path, ec), "eval.path",
            "eval.path: '" + c.eval.path + "' does not exist or is not a directory");
  }
  try {
    check_eval_sets(c, (inputs & kEvalSets) != 0);
  } catch (const InputError& e) {
    fail(where("eval.sets"), std::string("eval.sets: ") + e.what());
  }
}

// TOML++ 3.3.0's is_non_ascii_horizontal_whitespace reaches TOML_UNREACHABLE (undefined
// behaviour in release builds: __builtin_unreachable) for most code points in U+00A1..U+0499,
// U+2C8E..U+3087 and U+FB06..U+FEFE (marzer/tomlplusplus#190, #295; fixed upstream by #305). The
// parser asks it about the character after a value or key, between tokens, and in a multi-line
// basic string after a backslash and after a line-ending backslash's white space. So before TOML++
// sees a text: a non-ASCII character outside strings and comments (never valid TOML 1.0, which
// allows only ASCII there, a leading byte-order mark aside) or right after a backslash in a
// multi-line basic string (no valid escape) is an error here; the first character after a
// line-ending backslash, valid TOML, is handed on as the equivalent \uXXXX escape. Found by
// tests/fuzz (fuzz_config).
struct TomlGuard {
  std::string text;   // what toml::parse may read
  std::string error;  // empty when the text is safe
  uint64_t line = 0, column = 0;
};

TomlGuard guard_toml_text(const std::string& in) {
  enum class State { normal, comment, basic, literal, ml_basic, ml_literal } st = State::normal;
  TomlGuard g;
  g.text.reserve(in.size());
  uint64_t line = 1, column = 1;
  const auto at = [&](size_t i, const char* s) { return in.compare(i, std::char_traits<char>::length(s), s) == 0; };
  const auto stop = [&](const std::string& why) {
    g.error = why;
    g.line = line;
    g.column = column;
    return g;
  };
  size_t i = at(0, "\xEF\xBB\xBF") ? 3 : 0;  // a UTF-8 byte-order mark, which TOML++ skips
  g.text.append(in, 0, i);
  // Copies n bytes, counting lines and columns (in code points, as TOML++ does).
  const auto copy = [&](size_t n) {
    for (size_t k = 0; k < n && i < in.size(); ++k, ++i) {
      const auto c = static_cast<unsigned char>(in[i]);
      g.text += char(c);
      if (c == '\n') line += 1, column = 1;
      else if ((c & 0xC0) != 0x80) column += 1;
    }
  };
  while (i < in.size()) {
    const auto c = static_cast<unsigned char>(in[i]);
    switch (st) {
      case State::normal:
        if (c >= 0x80) return stop("non-ASCII character outside a string or comment");
        if (c == '#') {
          st = State::comment;
        } else if (at(i, "\"\"\"")) {
          st = State::ml_basic;
          copy(2);
        } else if (c == '"') {
          st = State::basic;
        } else if (at(i, "'''")) {
          st = State::ml_literal;
          copy(2);
        } else if (c == '\'') {
          st = State::literal;
        }
        copy(1);
        break;
      case State::comment:
        if (c == '\n') st = State::normal;
        copy(1);
        break;
      case State::basic:
      case State::literal: {
        const bool escape = st == State::basic && c == '\\' && i + 1 < in.size() && in[i + 1] != '\n';
        if (c == '\n' || (st == State::basic ? c == '"' : c == '\'')) st = State::normal;
        copy(escape ? 2 : 1);  // \" does not end the string
        break;
      }
      case State::ml_literal:
      case State::ml_basic: {
        const char* close = st == State::ml_basic ? "\"\"\"" : "'''";
        if (at(i, close)) {
          copy(3);
          while (i < in.size() && in[i] == close[0]) copy(1);  // """" and """"" end with quotes
          st = State::normal;
        } else if (st == State::ml_basic && c == '\\' && i + 1 < in.size()) {
          const auto n = static_cast<unsigned char>(in[i + 1]);
          if (n >= 0x80) {
            copy(1);
            return stop("invalid escape: a backslash followed by a non-ASCII character");
          }
          if (n == ' ' || n == '\t' || n == '\r' || n == '\n') {
            // A line-ending backslash: white space and newlines up to the next character are
            // dropped; that character goes to TOML++ as an escape when it is not ASCII.
            copy(1);
            while (i < in.size() && (in[i] == ' ' || in[i] == '\t' || in[i] == '\r' || in[i] == '\n')) copy(1);
            if (i < in.size() && static_cast<unsigned char>(in[i]) >= 0x80) {
              const auto b0 = static_cast<unsigned char>(in[i]);
              const size_t len = (b0 & 0xE0) == 0xC0 ? 2 : (b0 & 0xF0) == 0xE0 ? 3 : (b0 & 0xF8) == 0xF0 ? 4 : 0;
              uint32_t cp = len == 2 ? b0 & 0x1Fu : len == 3 ? b0 & 0x0Fu : b0 & 0x07u;
              bool ok = len > 0 && i + len <= in.size();
              for (size_t k = 1; ok && k < len; ++k) {
                const auto cc = static_cast<unsigned char>(in[i + k]);
                ok = (cc & 0xC0) == 0x80;
                cp = (cp << 6) | (cc & 0x3Fu);
              }
              if (!ok) return stop("invalid UTF-8 after a line-ending backslash");
              char esc[16];
              std::snprintf(esc, sizeof esc, cp > 0xFFFF ? "\\U%08X" : "\\u%04X", unsigned(cp));
              g.text += esc;  // TOML++ checks the code point (surrogates, range) as for any escape
              i += len;
              column += 1;
            }
          } else {
            copy(2);  // an escape pair: \" does not end the string
          }
        } else {
          copy(1);
        }
        break;
      }
    }
  }
  return g;
}

toml::table parse_text(const std::string& text, const std::string& source_name) {
  const TomlGuard g = guard_toml_text(text);
  if (!g.error.empty())
    fail(source_name + ":" + std::to_string(g.line) + ":" + std::to_string(g.column), "Error while parsing: " + g.error);
  try {
    return toml::parse(g.text, source_name);
  } catch (const toml::parse_error& e) {
    fail(where_of(e.source(), source_name), std::string(e.description()));
  }
}

// Whether s is well-formed UTF-8 (no overlong forms, surrogates or code points past U+10FFFF), as
// TOML requires of every string: the bare --set string below bypasses TOML++'s own check.
bool valid_utf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t len = 0;
    uint32_t cp = 0, min = 0;
    if (c < 0x80) len = 1, cp = c;
    else if ((c & 0xE0) == 0xC0) len = 2, cp = c & 0x1Fu, min = 0x80;
    else if ((c & 0xF0) == 0xE0) len = 3, cp = c & 0x0Fu, min = 0x800;
    else if ((c & 0xF8) == 0xF0) len = 4, cp = c & 0x07u, min = 0x10000;
    else return false;
    if (i + len > s.size()) return false;
    for (size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3Fu);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

// Parses one "--set key=value" into a leaf; the value is TOML, or a bare string for string keys.
Leaf parse_override(const std::string& text, std::vector<std::unique_ptr<toml::table>>& keep) {
  const std::string label = "--set " + text;
  const auto eq = text.find('=');
  if (eq == std::string::npos) fail(label, "expected key=value");
  auto trim = [](std::string s) {
    const auto b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
    return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
  };
  const std::string key = trim(text.substr(0, eq)), value = trim(text.substr(eq + 1));
  const Binding* b = find_binding(key);
  if (!b) fail(label, unknown_key_message(key));
  Config scratch;
  const bool is_string = std::holds_alternative<std::string*>(b->field(scratch));
  auto table = std::make_unique<toml::table>();
  bool parsed = false;
  std::string parse_message;
  try {
    const TomlGuard g = guard_toml_text("v = " + value);
    if (!g.error.empty()) {
      parse_message = g.error;
    } else {
      *table = toml::parse(g.text, label);
      parsed = table->size() == 1 && table->contains("v");
      if (!parsed) parse_message = "the value must be a single TOML value";
    }
  } catch (const toml::parse_error& e) {
    parse_message = std::string(e.description());
  }
  if (!parsed) {
    if (!is_string) fail(label, key + ": '" + value + "' is not a TOML value (" + parse_message + ")");
    // Written back by to_toml (the run's config.toml), the value must be a TOML string.
    if (!valid_utf8(value)) fail(label, key + ": the value is not valid UTF-8 (TOML strings are Unicode text)");
    *table = toml::table{};
    table->insert("v", value);
  }
  Leaf leaf{key, table->get("v"), label, label, 0, 0};
  keep.push_back(std::move(table));
  return leaf;
}

Config bind(const toml::table& doc, const std::string& source_name, const std::vector<std::string>& overrides,
            ConfigInputs inputs) {
  std::vector<Leaf> leaves;
  flatten(doc, "", source_name, leaves);
  std::stable_sort(leaves.begin(), leaves.end(), [](const Leaf& a, const Leaf& b) {
    return std::tie(a.line, a.column) < std::tie(b.line, b.column);
  });
  for (const Leaf& leaf : leaves)
    if (!find_binding(leaf.key)) fail(leaf.key_where, unknown_key_message(leaf.key));

  std::vector<std::unique_ptr<toml::table>> keep;
  for (const std::string& text : overrides) {
    Leaf leaf = parse_override(text, keep);
    leaves.erase(std::remove_if(leaves.begin(), leaves.end(), [&](const Leaf& l) { return l.key == leaf.key; }),
                 leaves.end());
    leaves.push_back(leaf);
  }

  Config cfg;
  Locations loc;
  for (const Leaf& leaf : leaves) {
    assign(leaf, cfg);
    loc[leaf.key] = leaf.where;
  }
  cfg.source_file = source_name;
  validate(cfg, loc, source_name, inputs);
  return cfg;
}

}  // namespace

Config parse_config(const std::string& toml_text, const std::string& source_name,
                    const std::vector<std::string>& overrides, ConfigInputs inputs) {
  return bind(parse_text(toml_text, source_name), source_name, overrides, inputs);
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides, ConfigInputs inputs) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) throw InputError("config file '" + path + "' does not exist or is not a file");
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in && !in.eof()) throw InputError("config file '" + path + "' could not be read");
  return parse_config(text.str(), path, overrides, inputs);
}

void validate_config(const Config& cfg, ConfigInputs inputs) { validate(cfg, {}, cfg.source_file, inputs); }

std::string to_toml(const Config& cfg) {
  Config copy = cfg;
  std::string out = "# Effective synthstream configuration (every key; see configs/reference.toml).\n";
  std::string section;
  for (const auto& b : bindings()) {
    const std::string key = b.key;
    if (section_of(key) != section) {
      section = section_of(key);
      out += "\n[" + section + "]\n";
    }
    out += "# " + std::string(b.doc) + "\n" + key_in_section(key) + " = " + value_toml(b.field(copy)) + "\n";
  }
  return out;
}

const std::vector<ConfigKey>& config_keys() {
  static const std::vector<ConfigKey> keys = [] {
    std::vector<ConfigKey> out;
    Config defaults;
    for (const auto& b : bindings()) {
      const FieldRef f = b.field(defaults);
      out.push_back({b.key, type_name(f), allowed_text(b.allowed), b.doc, value_toml(f)});
    }
    return out;
  }();
  return keys;
}

std::vector<std::string> diff_settings(const Config& a, const Config& b) {
  Config ca = a, cb = b;
  std::vector<std::string> differ;
  for (const auto& bind : bindings()) {
    const FieldRef fa = bind.field(ca), fb = bind.field(cb);
    const bool same = std::visit([&](auto* pa) { return *pa == *std::get<decltype(pa)>(fb); }, fa);
    if (!same) differ.push_back(bind.key);
  }
  return differ;
}

std::string closest_key(const std::string& key) {
  std::string best;
  size_t best_d = SIZE_MAX;
  for (const auto& b : bindings()) {
    // A right leaf under the wrong section ("optim.batch_size") costs one edit beyond the leaf's.
    const size_t d = std::min(edit_distance(key, b.key), edit_distance(leaf_of(key), leaf_of(b.key)) + 1);
    if (d < best_d) best_d = d, best = b.key;
  }
  const size_t limit = std::max<size_t>(2, leaf_of(key).size() / 3);
  return best_d <= limit ? best : std::string();
}

}  // namespace synth
