// eval.sets entries: the "NAME=PATH[,option=value]..." syntax, the eval.source set in front, and
// the checks load_config runs on them (errors point at the file, line and column of eval.sets).
#include <doctest/doctest.h>

#include <filesystem>
#include <functional>
#include <string>

#include "config/eval_sets.hpp"
#include "config/load.hpp"
#include "core/error.hpp"
#include "support/scratch_dir.hpp"
#include "support/input_error.hpp"

namespace {

using synth::test::input_error;

}  // namespace

TEST_CASE("eval set entries parse into typed sets; bad entries are InputErrors quoting them") {
  const synth::EvalSetConfig d = synth::parse_eval_set("in1k-val=/data/val");
  CHECK(d.name == "in1k-val");
  CHECK(d.path == "/data/val");
  CHECK(d.layout == "wnid");
  CHECK(d.classes == "complete");
  CHECK(d.unknown == "error");
  CHECK(d.limit == 0);
  const synth::EvalSetConfig s =
      synth::parse_eval_set(" v2 = /data/v2 , layout=index, index_ids=/x/ids.txt,classes=partial,unknown=skip,limit=50");
  CHECK(s.name == "v2");
  CHECK(s.path == "/data/v2");
  CHECK(s.layout == "index");
  CHECK(s.index_ids == "/x/ids.txt");
  CHECK(s.classes == "partial");
  CHECK(s.unknown == "skip");
  CHECK(s.limit == 50);
  CHECK(synth::parse_eval_set("r=/r,classes=present").classes == "present");

  const auto err = [](const std::string& entry) { return input_error([&] { synth::parse_eval_set(entry); }); };
  CHECK(err("/data/val") == "\"/data/val\": expected NAME=PATH[,option=value]...");
  CHECK(err("a b=/x").find("name 'a b' must be") != std::string::npos);
  CHECK(err("a=") == "\"a=\": empty path");
  CHECK(err("a=/x,layout=flat") == "\"a=/x,layout=flat\": layout = 'flat' is not one of wnid | index | sorted | idx");
  CHECK(err("a=/x,classes=some").find("classes = 'some' is not one of complete | partial | present") != std::string::npos);
  CHECK(err("a=/x,limit=-3").find("limit = '-3' is not an integer >= 0") != std::string::npos);
  CHECK(err("a=/x,limit=3k").find("limit = '3k'") != std::string::npos);
  CHECK(err("a=/x,colour=red").find("unknown option 'colour' (options: layout, index_ids, classes, unknown, limit)") !=
        std::string::npos);
  CHECK(err("a=/x,present").find("option 'present' is not key=value") != std::string::npos);
  CHECK(err("a=/x,limit=1,limit=2").find("option limit given twice") != std::string::npos);
  CHECK(err("a=/x,index_ids=/ids").find("index_ids needs layout=index") != std::string::npos);
}

TEST_CASE("eval_sets: the eval.source set first, then the entries; eval.limit is their default limit") {
  synth::Config c;
  c.eval.limit = 9;
  c.eval.sets = {"a=/a", "b=/b,limit=2"};
  auto sets = synth::eval_sets(c);
  REQUIRE(sets.size() == 3);
  CHECK(sets[0].name == "fmnist-t10k");
  CHECK(sets[0].layout == "idx");
  CHECK(sets[0].limit == 9);
  CHECK(sets[1].name == "a");
  CHECK(sets[1].limit == 9);
  CHECK(sets[2].limit == 2);

  c.eval.source = "image_folder";
  c.eval.path = "/data/imagenet100/val/";
  CHECK(synth::eval_sets(c)[0].name == "val");
  CHECK(synth::eval_sets(c)[0].layout == "sorted");  // no class file: sorted folder names, as before
  CHECK(synth::eval_sets(c)[0].classes == "partial");
  c.data.source = "synthetic";  // the stream's labels are the rows of prompts.class_file
  CHECK(synth::eval_class_file(c) == c.prompts.class_file);
  CHECK(synth::eval_sets(c)[0].layout == "wnid");
  c.data.class_file = "configs/classes/imagenet1k.tsv";
  CHECK(synth::eval_class_file(c) == "configs/classes/imagenet1k.tsv");
  c.eval.source = "none";
  CHECK(synth::eval_sets(c).size() == 2);
  c.eval.sets.clear();
  CHECK(synth::eval_sets(c).empty());
}

TEST_CASE("load_config checks eval.sets once, naming where it was set") {
  synth::test::ScratchDir dir("eval_sets");
  std::filesystem::create_directories(dir.path / "r");
  const std::string r = (dir.path / "r").string();
  const std::string head = "[data]\nclass_file = \"" SYNTH_SOURCE_DIR "/configs/classes/imagenet1k.tsv\"\n[eval]\n";
  const synth::Config ok = synth::parse_config(head + "sets = [\"r=" + r + ",classes=present\"]\n", "mem.toml");
  REQUIRE(ok.eval.sets.size() == 1);
  CHECK(synth::eval_sets(ok).size() == 2);
  // to_toml writes them back.
  CHECK(synth::same_settings(synth::parse_config(synth::to_toml(ok), "again.toml"), ok));

  CHECK(input_error([&] { synth::parse_config(head + "sets = [\"r=" + r + ",colour=red\"]\n", "mem.toml"); })
            .find("mem.toml:4:8: eval.sets: \"r=") == 0);
  CHECK(input_error([&] { synth::parse_config(head + "sets = [\"r=/nonexistent/r\"]\n", "mem.toml"); }) ==
        "mem.toml:4:8: eval.sets: set 'r': '/nonexistent/r' does not exist or is not a directory");
  CHECK(input_error([&] {
          synth::parse_config(head + "sets = [\"r=" + r + ",layout=index,index_ids=/nonexistent/ids.txt\"]\n", "mem.toml");
        }).find("index_ids '/nonexistent/ids.txt' does not exist") != std::string::npos);
  CHECK(input_error([&] { synth::parse_config(head + "sets = [\"r=" + r + "\", \"r=" + r + "\"]\n", "mem.toml"); })
            .find("two evaluation sets are named 'r'") != std::string::npos);
  CHECK(input_error([&] { synth::parse_config(head + "sets = [\"fmnist-t10k=" + r + "\"]\n", "mem.toml"); })
            .find("two evaluation sets are named 'fmnist-t10k'") != std::string::npos);
  CHECK(input_error([&] { synth::parse_config("[eval]\nsets = [\"r=" + r + "\"]\n", "mem.toml"); })
            .find("set 'r' (layout wnid) needs a class file mapping ids to logits: set data.class_file") !=
        std::string::npos);
  CHECK(input_error([&] { synth::parse_config("", "mem.toml", {"eval.sets=[\"r=/nonexistent/r\"]"}); })
            .find("--set eval.sets=[\"r=/nonexistent/r\"]: eval.sets: set 'r'") == 0);
  CHECK(input_error([&] { synth::parse_config("[eval]\non_corrupt = \"ignore\"\n", "mem.toml"); })
            .find("eval.on_corrupt = \"ignore\" is not one of error | skip") != std::string::npos);
}
