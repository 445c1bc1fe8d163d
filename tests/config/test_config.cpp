// The strict loader: every error names the key and points at file:line:column; overrides go
// through the same checks; reference.toml documents exactly the bound keys with their defaults.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "config/eval_sets.hpp"
#include "config/load.hpp"
#include "core/error.hpp"
#include "support/scratch_dir.hpp"
#include "support/input_error.hpp"

using namespace synth;

namespace {

const std::string kData = SYNTH_TEST_DATA "/configs/";
const std::string kRepo = SYNTH_SOURCE_DIR;

using synth::test::input_error;

std::string parse_error(const std::string& text, const std::vector<std::string>& overrides = {}) {
  return input_error([&] { parse_config(text, "mem.toml", overrides); });
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// Minimal TOML reading for the documentation check: "[section]" headers and "key = value" lines.
struct RefKey {
  std::string key;
  bool commented;
};
std::vector<RefKey> reference_keys(const std::string& path) {
  std::ifstream in(path);
  REQUIRE(in.good());
  std::vector<RefKey> keys;
  std::string line, section, previous;
  while (std::getline(in, line)) {
    if (!line.empty() && line[0] == '[') {
      section = line.substr(1, line.find(']') - 1);
    } else if (!line.empty() && line[0] != '#' && line.find('=') != std::string::npos) {
      std::string key = line.substr(0, line.find('='));
      key = key.substr(0, key.find_last_not_of(' ') + 1);
      keys.push_back({section + "." + key, !previous.empty() && previous[0] == '#'});
    }
    previous = line;
  }
  return keys;
}

}  // namespace

TEST_CASE("reference.toml documents exactly the bound keys and loads to the defaults") {
  const auto ref = reference_keys(kRepo + "/configs/reference.toml");
  std::set<std::string> in_file, bound;
  for (const auto& k : ref) {
    INFO(k.key);
    CHECK(k.commented);
    CHECK(in_file.insert(k.key).second);
  }
  for (const auto& k : config_keys()) {
    CHECK(bound.insert(k.key).second);
    CHECK(!k.doc.empty());
  }
  for (const auto& k : bound) {
    INFO("bound but missing from reference.toml: " << k);
    CHECK(in_file.count(k) == 1);
  }
  for (const auto& k : in_file) {
    INFO("in reference.toml but not bound: " << k);
    CHECK(bound.count(k) == 1);
  }

  const Config loaded = load_config(kRepo + "/configs/reference.toml", {});
  const auto diff = diff_settings(loaded, Config{});
  for (const auto& k : diff) INFO("differs from the struct default: " << k);
  CHECK(diff.empty());
  CHECK(loaded.source_file == kRepo + "/configs/reference.toml");
}

TEST_CASE("fmnist.toml loads") {
  const Config c = load_config(kRepo + "/configs/fmnist.toml", {});
  CHECK(c.model.arch == "resnet18");
  CHECK(c.model.num_classes == 10);
  CHECK(c.augment.crop_size == 28);
  CHECK(c.eval.source == "fmnist");
  CHECK(c.train.total_images == 600000);
  CHECK(c.augment.mean == std::vector<double>{0.286, 0.286, 0.286});
}

TEST_CASE("unknown keys name the full dotted path and suggest the closest key") {
  const std::string e = input_error([&] { load_config(kData + "unknown_key.toml", {}); });
  CHECK(e == kData + "unknown_key.toml:5:1: unknown key train.batchsize (did you mean train.batch_size?)");
  // Right leaf, wrong section.
  CHECK(contains(parse_error("[optim]\nbatch_size = 3\n"), "did you mean train.batch_size?"));
  // Misspelled section: the whole dotted path is compared.
  CHECK(parse_error("[trian]\nbatch_size = 3\n") ==
        "mem.toml:2:1: unknown key trian.batch_size (did you mean train.batch_size?)");
  // Nothing close: list the section's keys instead of guessing.
  const std::string far = parse_error("[eval]\nzzzzzzzzzzzzzz = 1\n");
  CHECK(contains(far, "unknown key eval.zzzzzzzzzzzzzz (valid keys in [eval]: eval.source, eval.path"));
  // An unknown empty table is not silently accepted.
  CHECK(contains(parse_error("[trainn]\n"), "unknown key trainn"));
  CHECK(closest_key("model.widht") == "model.width");
  CHECK(closest_key("completely.different") == "");
}

TEST_CASE("wrong types point at the value with file:line:column") {
  CHECK(input_error([&] { load_config(kData + "wrong_type.toml", {}); }) ==
        kData + "wrong_type.toml:5:14: train.batch_size: expected an integer, got a string");
  CHECK(parse_error("[train]\nbatch_size = 64.0\n") == "mem.toml:2:14: train.batch_size: expected an integer, got a float");
  CHECK(parse_error("[optim]\ndecay_bn_and_bias = 1\n") ==
        "mem.toml:2:21: optim.decay_bn_and_bias: expected a boolean (true/false), got an integer");
  CHECK(parse_error("[run]\nname = 5\n") == "mem.toml:2:8: run.name: expected a string, got an integer");
  CHECK(parse_error("[train.batch_size]\nx = 1\n") == "mem.toml:1:1: train.batch_size: expected an integer, got a table");
  // An integer is a valid float.
  CHECK(parse_config("[optim]\nlr = 1\n", "mem.toml").optim.lr == 1.0);
  // Arrays: element type and count.
  CHECK(parse_error("[augment]\nmean = [0.5, \"x\", 0.5]\n") ==
        "mem.toml:2:14: augment.mean[1]: expected a number, got a string");
  CHECK(contains(parse_error("[augment]\nstd = [0.5, 0.5]\n"), "augment.std must have 3 values (R, G, B), got 2"));
  CHECK(parse_error("[augment]\nmean = 0.5\n") == "mem.toml:2:8: augment.mean: expected an array of numbers, got a float");
}

TEST_CASE("out-of-range values and bad choices") {
  CHECK(input_error([&] { load_config(kData + "out_of_range.toml", {}); }) ==
        kData + "out_of_range.toml:2:10: augment.flip_p = 1.5 is out of range (allowed: 0 .. 1)");
  CHECK(parse_error("[train]\nbatch_size = 0\n") == "mem.toml:2:14: train.batch_size = 0 is out of range (allowed: 1 .. 1048576)");
  CHECK(parse_error("[optim]\nlr = 0.0\n") == "mem.toml:2:6: optim.lr = 0 is out of range (allowed: > 0 and <= 100)");
  CHECK(parse_error("[optim]\nlr = nan\n") == "mem.toml:2:6: optim.lr = nan is out of range (allowed: > 0 and <= 100)");
  CHECK(parse_error("[run]\nseed = -1\n") == "mem.toml:2:8: run.seed = -1 is out of range (allowed: >= 0)");
  CHECK(parse_error("[augment]\nstd = [0.2, 0.0, 0.2]\n") ==
        "mem.toml:2:13: augment.std[1] = 0 is out of range (allowed: > 0 and <= 10)");
  CHECK(parse_error("[train]\ndevice = \"gpu\"\n") ==
        "mem.toml:2:10: train.device = \"gpu\" is not a device (cpu | cuda = this rank's GPU, LOCAL_RANK | cuda:N = GPU N)");
  CHECK(parse_error("[run]\nname = \"\"\n") == "mem.toml:2:8: run.name must not be empty");
  CHECK(contains(parse_error("[run]\nname = \"a/b\"\n"), "mem.toml:2:8: run.name = \"a/b\" must be a plain directory name"));
}

TEST_CASE("TOML syntax errors carry file:line:column") {
  const std::string e = input_error([&] { load_config(kData + "syntax_error.toml", {}); });
  INFO(e);
  CHECK(e.rfind(kData + "syntax_error.toml:3:", 0) == 0);
  CHECK(e.find('\n') == std::string::npos);
  const std::string dup = parse_error("[train]\nbatch_size = 1\nbatch_size = 2\n");
  INFO(dup);
  CHECK(dup.rfind("mem.toml:3:", 0) == 0);
  CHECK(contains(input_error([] { load_config("/nonexistent/x.toml", {}); }), "config file '/nonexistent/x.toml' does not exist"));
}

TEST_CASE("--set overrides are parsed as TOML and checked like file values") {
  const Config c = parse_config("[train]\nbatch_size = 128\n", "mem.toml",
                                {"train.batch_size=64", "run.name=\"x y\"", "run.dir=plain", "augment.mean=[0.5, 0.25, 1]",
                                 "optim.lr = 0.05", "optim.decay_bn_and_bias=true", "run.seed=18446744"});
  CHECK(c.train.batch_size == 64);
  CHECK(c.run.name == "x y");
  CHECK(c.run.dir == "plain");  // not valid TOML, taken as a bare string for a string key
  CHECK(c.augment.mean == std::vector<double>{0.5, 0.25, 1.0});
  CHECK(c.optim.lr == 0.05);
  CHECK(c.optim.decay_bn_and_bias);
  CHECK(c.run.seed == 18446744u);
  // The last override of a key wins.
  CHECK(parse_config("", "mem.toml", {"train.batch_size=8", "train.batch_size=16"}).train.batch_size == 16);

  CHECK(parse_error("", {"train.batchsize=64"}) ==
        "--set train.batchsize=64: unknown key train.batchsize (did you mean train.batch_size?)");
  CHECK(parse_error("", {"train.batch_size=abc"}).rfind(
            "--set train.batch_size=abc: train.batch_size: 'abc' is not a TOML value", 0) == 0);
  CHECK(parse_error("", {"train.batch_size=\"64\""}) ==
        "--set train.batch_size=\"64\": train.batch_size: expected an integer, got a string");
  CHECK(parse_error("", {"train.batch_size=0"}) ==
        "--set train.batch_size=0: train.batch_size = 0 is out of range (allowed: 1 .. 1048576)");
  CHECK(parse_error("", {"augment.std=[1, -1, 1]"}) ==
        "--set augment.std=[1, -1, 1]: augment.std[1] = -1 is out of range (allowed: > 0 and <= 10)");
  CHECK(parse_error("", {"train.batch_size"}) == "--set train.batch_size: expected key=value");
  CHECK(contains(parse_error("", {"train.batch_size=1\nx=2"}), "the value must be a single TOML value"));

  // Overrides are applied before the cross-field checks.
  const std::string ring = kData + "ring_too_small.toml";
  CHECK(input_error([&] { load_config(ring, {}); }) ==
        ring + ":3:9: ring.slots (64) must be >= train.batch_size (128)");
  CHECK(load_config(ring, {"train.batch_size=64"}).ring.slots == 64);
  CHECK(input_error([&] { load_config(ring, {"ring.slots=32", "train.batch_size=64"}); }) ==
        "--set ring.slots=32: ring.slots (32) must be >= train.batch_size (64)");
}

TEST_CASE("cross-field rules name the keys") {
  CHECK(parse_error("[augment]\nscale_min = 0.9\nscale_max = 0.5\n") ==
        "mem.toml:2:13: augment.scale_min (0.9) must be <= augment.scale_max (0.5)");
  CHECK(parse_error("[augment]\nratio_min = 2.0\n") ==
        "mem.toml:2:13: augment.ratio_min (2) must be <= augment.ratio_max (1.3333333333333333)");
  CHECK(parse_error("[eval]\ncrop = 300\n") == "mem.toml:2:8: eval.crop (300) must be <= eval.resize (256)");
  CHECK(parse_error("[train]\ntotal_images = 100\n") ==
        "mem.toml:2:16: train.total_images (100) must be >= train.batch_size (256)");
  CHECK(parse_error("[train]\nprecision = \"fp16\"\n") ==
        "mem.toml:2:13: train.precision = \"fp16\" needs train.device = \"cuda\" (use fp32 or bf16 on cpu)");
  CHECK(contains(parse_error("[ring]\nmax_height = 16384\nmax_width = 16384\n"),
                 "mem.toml: ring.slots * ring.max_height * ring.max_width * 3 = 384 GiB exceeds the 64 GiB limit"));
}

TEST_CASE("input paths must exist when they are used") {
  CHECK(input_error([&] { load_config(kData + "missing_path.toml", {}); }) ==
        kData + "missing_path.toml:2:14: data.train_path: '/nonexistent/synthstream-data' does not exist or is not a directory");
  CHECK(parse_error("", {"eval.path=/nonexistent/eval"}) ==
        "--set eval.path=/nonexistent/eval: eval.path: '/nonexistent/eval' does not exist or is not a directory");
  CHECK(parse_error("[data]\nclass_file = \"/nonexistent/classes.txt\"\n") ==
        "mem.toml:2:14: data.class_file: '/nonexistent/classes.txt' does not exist or is not a file");
  // A file is not a dataset folder.
  CHECK(contains(parse_error("", {"data.train_path=" SYNTH_SOURCE_DIR "/configs/reference.toml"}),
                 "does not exist or is not a directory"));
  // Unused paths are not checked.
  const Config c = load_config(kData + "valid_minimal.toml", {"data.train_path=/nonexistent/a", "eval.path=/nonexistent/b",
                                                              "generator.model_dir=\"" SYNTH_TEST_DATA "/tiny-sd\""});
  CHECK(c.data.source == "synthetic");
  CHECK(c.eval.source == "none");
  // validate_config applies the same rules to a Config built in code.
  Config built;
  built.data.train_path = "/nonexistent/c";
  CHECK(input_error([&] { validate_config(built); }) == "data.train_path: '/nonexistent/c' does not exist or is not a directory");
  CHECK_NOTHROW(validate_config(Config{}));
}

namespace {

// The working directory for one test: the configs' relative paths resolve against it.
struct InFolder {
  std::filesystem::path before = std::filesystem::current_path();
  explicit InFolder(const std::filesystem::path& dir) { std::filesystem::current_path(dir); }
  ~InFolder() { std::filesystem::current_path(before); }
};

}  // namespace

TEST_CASE("a command's inputs decide which paths must exist; every other error is reported whatever they are") {
  // The paper config from a folder without its SD weights, ImageNet folders or class files.
  const synth::test::ScratchDir empty("no_inputs");
  const InFolder cwd(empty.path);
  const std::string in100 = kRepo + "/configs/in100_stream.toml";
  CHECK(load_config(in100, {}, kNoInputs).augment.kind == "dino");
  const std::string model_dir = "generator.model_dir: 'models/stable-diffusion-v1-4' is not a diffusers model directory";
  CHECK(contains(input_error([&] { load_config(in100, {}); }), in100 + ":25:13: " + model_dir));
  CHECK(contains(input_error([&] { load_config(in100, {}, kTrainData); }), model_dir));
  // Evaluation: the class file labelling the sets, eval.path, the eval.sets folders; no SD weights.
  CHECK(contains(input_error([&] { load_config(in100, {}, kEvalSets); }),
                 "data.class_file: 'configs/classes/imagenet100.tsv' does not exist"));
  std::vector<std::string> sets = {"data.class_file=\"" + kRepo + "/configs/classes/imagenet100.tsv\""};
  CHECK(contains(input_error([&] { load_config(in100, sets, kEvalSets); }),
                 "eval.path: 'data/imagenet100/val' does not exist"));
  sets.push_back("eval.path=\"" SYNTH_TEST_DATA "\"");
  CHECK(contains(input_error([&] { load_config(in100, sets, kEvalSets); }),
                 "eval.sets: set 'imagenet-v2': 'data/imagenetv2-matched-frequency' does not exist"));
  sets.push_back("eval.sets=[]");
  CHECK_NOTHROW(load_config(in100, sets, kEvalSets));
  CHECK(contains(input_error([&] { load_config(in100, sets); }), model_dir));  // training still needs them

  // Real data: the training folder for training, the evaluation folder for evaluation.
  CHECK_NOTHROW(parse_config("", "mem.toml", {"data.train_path=/nonexistent/a"}, kEvalSets));
  CHECK(contains(parse_error("", {"data.train_path=/nonexistent/a"}), "data.train_path: '/nonexistent/a'"));
  CHECK_NOTHROW(parse_config("", "mem.toml", {"eval.path=/nonexistent/b"}, kTrainData));
  CHECK_NOTHROW(parse_config("", "mem.toml", {"data.class_file=\"/nonexistent/c\""}, kNoInputs));
  Config built;
  built.data.train_path = "/nonexistent/c";
  CHECK_NOTHROW(validate_config(built, kEvalSets));
  CHECK_THROWS_AS(validate_config(built, kTrainData), synth::InputError);

  // A typo is a typo, a bad value a bad value, whatever the command reads.
  const auto none_error = [](const std::string& text, const std::vector<std::string>& overrides = {}) {
    return input_error([&] { parse_config(text, "mem.toml", overrides, kNoInputs); });
  };
  CHECK(none_error("[train]\nbatchsize = 8\n") == "mem.toml:2:1: unknown key train.batchsize (did you mean train.batch_size?)");
  CHECK(none_error("[augment]\nscale_min = 0.9\nscale_max = 0.5\n") ==
        "mem.toml:2:13: augment.scale_min (0.9) must be <= augment.scale_max (0.5)");
  CHECK(contains(none_error("", {"eval.sets=[\"r=/nonexistent/r,colour=red\"]"}), "unknown option 'colour'"));
  CHECK(contains(none_error("", {"eval.sets=[\"r=/nonexistent/r\"]"}), "needs a class file"));
  // ... but an evaluation folder is only looked for when the command evaluates.
  CHECK_NOTHROW(parse_config("", "mem.toml", {"eval.sets=[\"r=/nonexistent/r,layout=sorted\"]"}, kNoInputs));
  CHECK(contains(parse_error("", {"eval.sets=[\"r=/nonexistent/r,layout=sorted\"]"}), "'/nonexistent/r' does not exist"));
}

TEST_CASE("to_toml round trip reproduces every setting exactly") {
  Config c;
  c.run.name = "quote\" back\\slash tab\t unicode \xc3\xa9 ctl \x01";
  c.run.seed = 9223372036854775807ull;
  c.run.progress_seconds = 0.1 + 0.2;  // not representable in short decimal
  c.data.source = "synthetic";
  c.generator.model_dir = SYNTH_TEST_DATA "/tiny-sd";
  c.data.limit = 123456789012;
  c.augment.mean = {1.0 / 3.0, -0.0, 1e-300};
  c.augment.std = {1e-9, 2.5, 7.0};
  c.augment.scale_min = 0.08;
  c.optim.lr = 3.0;
  c.optim.weight_decay = 5e-5;
  c.optim.decay_bn_and_bias = true;
  c.train.total_images = 1000000000000ll;
  c.eval.source = "none";
  c.eval.path = "";
  const std::string text = to_toml(c);
  const Config back = parse_config(text, "roundtrip.toml");
  const auto diff = diff_settings(c, back);
  for (const auto& k : diff) INFO("round trip changed " << k);
  CHECK(diff.empty());
  CHECK(back.run.name == c.run.name);
  CHECK(back.run.progress_seconds == 0.1 + 0.2);
  CHECK(to_toml(back) == text);
  // Every key is written, each after its doc comment.
  for (const auto& k : config_keys()) {
    const std::string leaf = k.key.substr(k.key.find('.') + 1);
    CHECK(contains(text, "# " + k.doc + "\n" + leaf + " = "));
  }
  // diff_settings really looks at values.
  Config d = c;
  d.augment.std[2] = 7.000000000000001;
  CHECK(diff_settings(c, d) == std::vector<std::string>{"augment.std"});
  CHECK(!same_settings(Config{}, c));
}

TEST_CASE("string arrays: prompts.templates takes only known template names") {
  const Config ok = parse_config("[prompts]\ntemplates = [\"c\", \"c_hc_inside_b\"]\ntemplate_weights = [1, 3]\n", "t.toml");
  CHECK(ok.prompts.templates == std::vector<std::string>{"c", "c_hc_inside_b"});
  CHECK(ok.prompts.template_weights == std::vector<double>{1, 3});
  CHECK(to_toml(parse_config(to_toml(ok), "round.toml")) == to_toml(ok));
  try {
    parse_config("[prompts]\ntemplates = [\"c\", \"c_hx\"]\n", "t.toml");
    FAIL("an unknown template was accepted");
  } catch (const synth::InputError& e) {
    CHECK(std::string(e.what()).find("t.toml:2:") == 0);
    CHECK(std::string(e.what()).find("prompts.templates[1] = \"c_hx\" is not one of") != std::string::npos);
  }
  CHECK_THROWS_AS(parse_config("[prompts]\ntemplates = [1]\n", "t.toml"), synth::InputError);
  CHECK_THROWS_AS(parse_config("[prompts]\ntemplates = []\n", "t.toml"), synth::InputError);
}

// The paper configs name their test sets relative to the working directory, as a user runs them
// from the folder holding data/; this runs them from a scratch folder with those (empty) folders
// and the id list the v2 set names, since load_config checks that they exist.
struct PaperDataFolder {
  synth::test::ScratchDir dir{"paper_data"};
  std::filesystem::path before = std::filesystem::current_path();
  PaperDataFolder() {
    namespace fs = std::filesystem;
    for (const char* d : {"data/imagenetv2-matched-frequency", "data/imagenet-sketch", "data/imagenet-r", "data/imagenet-a",
                          "configs/data"})
      fs::create_directories(dir.path / d);
    fs::copy_file(kRepo + "/configs/data/imagenet1k_wnids.txt", dir.path / "configs/data/imagenet1k_wnids.txt");
    fs::current_path(dir.path);
  }
  ~PaperDataFolder() { std::filesystem::current_path(before); }
};

TEST_CASE("the paper's configs load (model and data paths supplied) and hold its protocol") {
  const PaperDataFolder cwd;
  for (const char* name : {"in100_stream", "in1k_stream"}) {
    CAPTURE(name);
    const bool in100 = std::string(name) == "in100_stream";
    const std::string classes = std::string(SYNTH_SOURCE_DIR "/configs/classes/") + (in100 ? "imagenet100.tsv" : "imagenet1k.tsv");
    const Config c = load_config(std::string(SYNTH_SOURCE_DIR "/configs/") + name + ".toml",
                                 {"generator.model_dir=\"" SYNTH_TEST_DATA "/tiny-sd\"", "eval.path=\"" SYNTH_TEST_DATA "\"",
                                  "data.class_file=\"" + classes + "\""});
    CHECK(c.data.source == "synthetic");
    CHECK(c.generator.scheduler == "pndm");
    CHECK(c.generator.steps == 50);
    CHECK(c.generator.guidance == 7.5);
    CHECK(c.generator.width == 512);
    CHECK(c.generator.height == 384);
    CHECK(c.prompts.templates.size() == 6);
    CHECK(c.prompts.template_weights.empty());  // uniform mixture of the six
    CHECK(c.augment.kind == "dino");
    CHECK(c.augment.dino.global_crops == 1);
    CHECK(c.augment.dino.global_size == 224);
    CHECK(c.augment.dino.local_crops == 8);
    CHECK(c.augment.dino.local_size == 96);
    CHECK(c.model.arch == "resnet50");
    CHECK(c.model.num_classes == (in100 ? 100 : 1000));
    CHECK(c.optim.momentum == 0.9);
    CHECK(c.optim.weight_decay == 1e-4);
    CHECK(c.optim.warmup_fraction == 0.1);
    CHECK(c.train.batch_size == 256);
    CHECK(c.train.total_images == (in100 ? 12668900 : 128116700));  // 100 epochs of the real set
    CHECK(c.train.precision == "fp16");
    // Evaluation on ImageNet val, v2, Sketch, R and A; R and A rank only the logits of their classes.
    const std::vector<EvalSetConfig> sets = eval_sets(c);
    REQUIRE(sets.size() == 5);
    CHECK(sets[1].name == "imagenet-v2");
    CHECK(sets[1].layout == "index");
    CHECK(sets[1].index_ids == "configs/data/imagenet1k_wnids.txt");
    CHECK(sets[2].name == "imagenet-sketch");
    CHECK(sets[2].layout == "wnid");
    for (size_t i : {3, 4}) {
      CHECK(sets[i].layout == "wnid");
      CHECK(sets[i].classes == "present");
    }
    CHECK(sets[3].name == "imagenet-r");
    CHECK(sets[4].name == "imagenet-a");
    // ImageNet-100 covers only part of each set's classes; ImageNet-1K all of them.
    for (size_t i = 1; i < 5; ++i) CHECK(sets[i].unknown == (in100 ? "skip" : "error"));
  }
}
