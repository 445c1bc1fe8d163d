// Class files from WordNet 3.0: the paper's c / h_c / d_c fields (Sariyildiz et al. 2023, Sec. 3.1)
// for known classes, the shipped ImageNet-100/1K files against data.noun, and the file format.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "core/error.hpp"
#include "prompts/classes.hpp"
#include "prompts/wordnet.hpp"
#include "support/scratch_dir.hpp"
#include "support/input_error.hpp"

namespace fs = std::filesystem;
using synth::ClassInfo;

namespace {

const std::string kDataNoun = "/usr/share/wordnet/data.noun";
const std::string kClasses = std::string(SYNTH_SOURCE_DIR) + "/configs/classes/";
const std::string kData = std::string(SYNTH_SOURCE_DIR) + "/configs/data/";

// Files in a folder of this test binary's own, removed when it exits.
std::string temp_file(const std::string& name, const std::string& content) {
  static const synth::test::ScratchDir dir("classes");
  const fs::path p = dir.path / name;
  std::ofstream(p, std::ios::binary) << content;
  return p.string();
}

using synth::test::input_error;

const ClassInfo& by_id(const std::vector<ClassInfo>& classes, const std::string& id) {
  for (const auto& c : classes)
    if (c.id == id) return c;
  throw std::runtime_error("no class " + id);
}

}  // namespace

TEST_CASE("shipped class files cover every id in order with non-empty fields") {
  for (const auto& [file, ids_file, n] : {std::tuple<std::string, std::string, size_t>{"imagenet100.tsv", "imagenet100_wnids.txt", 100},
                                          {"imagenet1k.tsv", "imagenet1k_wnids.txt", 1000}}) {
    CAPTURE(file);
    const auto classes = synth::load_class_file(kClasses + file);
    const auto ids = synth::load_id_list(kData + ids_file);
    REQUIRE(classes.size() == n);
    REQUIRE(ids.size() == n);
    for (size_t i = 0; i < n; ++i) {
      CAPTURE(ids[i]);
      CHECK(classes[i].id == ids[i]);
      CHECK(!classes[i].name.empty());
      CHECK(!classes[i].hypernyms.empty());
      CHECK(!classes[i].definition.empty());
      CHECK(classes[i].name.find('_') == std::string::npos);
      CHECK(classes[i].definition.find("; \"") == std::string::npos);
    }
  }
}

TEST_CASE("paper's examples: papillon, pirate, Shih-Tzu, robin") {
  const auto k1 = synth::load_class_file(kClasses + "imagenet1k.tsv");
  const auto& papillon = by_id(k1, "n02086910");
  CHECK(papillon.name == "papillon");
  CHECK(papillon.hypernyms == "toy spaniel");
  CHECK(papillon.definition == "small slender toy spaniel with erect ears and a black-spotted brown to white coat");
  const auto& pirate = by_id(k1, "n03947888");
  CHECK(pirate.name == "pirate, pirate ship");
  CHECK(pirate.hypernyms == "ship");
  CHECK(pirate.definition == "a ship that is manned by pirates");
  CHECK(by_id(k1, "n02086240").hypernyms == "toy dog, toy");
  CHECK(by_id(k1, "n01558993").name == "robin, American robin, Turdus migratorius");
  CHECK(by_id(k1, "n01558993").hypernyms == "thrush");
}

TEST_CASE("shipped class files agree with data.noun") {
  // wordnet-base is a declared dependency (tools/install-deps.sh): without it this test fails
  // rather than pass having checked nothing.
  REQUIRE_MESSAGE(fs::exists(kDataNoun), kDataNoun << " not present: run tools/install-deps.sh (Debian package wordnet-base)");
  // Independent check of a sample against the raw lines: every lemma of the synset line is in the
  // name, and the gloss starts with the definition.
  std::map<std::string, std::string> lines;
  {
    std::ifstream in(kDataNoun);
    std::string line;
    while (std::getline(in, line))
      if (line.size() > 9 && line[0] != ' ') lines["n" + line.substr(0, 8)] = line;
  }
  const auto k1 = synth::load_class_file(kClasses + "imagenet1k.tsv");
  const auto k100 = synth::load_class_file(kClasses + "imagenet100.tsv");
  std::vector<ClassInfo> sample;
  for (size_t i = 0; i < k1.size(); i += 41) sample.push_back(k1[i]);
  for (size_t i = 0; i < k100.size(); i += 7) sample.push_back(k100[i]);
  for (const auto& c : sample) {
    CAPTURE(c.id);
    REQUIRE(lines.count(c.id));
    const std::string& line = lines[c.id];
    std::istringstream f(line.substr(0, line.find(" | ")));
    std::string off, lex, type, cnt;
    f >> off >> lex >> type >> cnt;
    const int words = std::stoi(cnt, nullptr, 16);
    std::string joined;
    for (int w = 0; w < words; ++w) {
      std::string word, lex_id;
      f >> word >> lex_id;
      for (char& ch : word)
        if (ch == '_') ch = ' ';
      joined += (w ? ", " : "") + word;
    }
    CHECK(c.name == joined);
    const std::string gloss = line.substr(line.find(" | ") + 3);
    CHECK(gloss.rfind(c.definition, 0) == 0);
  }
  // And the whole files regenerate identically from WordNet.
  const synth::WordNetNouns wn(kDataNoun);
  CHECK(wn.size() == 82115);
  for (const auto* classes : {&k100, &k1})
    for (const auto& c : *classes) {
      const ClassInfo fresh = wn.class_info(c.id);
      CHECK(fresh.name == c.name);
      CHECK(fresh.hypernyms == c.hypernyms);
      CHECK(fresh.definition == c.definition);
    }
}

TEST_CASE("WordNet parsing: markers, instance hypernyms, several hypernyms, gloss examples") {
  // Synthetic lines in data.noun format (wndb(5WN)).
  const std::string text =
      "  1 This software and database is being provided to you, the LICENSEE\n"
      "00000100 03 n 02 thing(a) 0 big_thing(ip) 1 000 | a thing; \"a thing is here\"  \n"
      "00000200 03 n 01 other_thing 0 000 | another; not a thing  \n"
      "00000300 03 n 01 Paris 0 003 @i 00000100 n 0000 @ 00000200 n 0000 ~ 00000100 n 0000 | the capital; \"Paris\"; \"x\"\n";
  const std::string path = temp_file("data.noun", text);
  const synth::WordNetNouns wn(path);
  CHECK(wn.size() == 3);
  const ClassInfo c = wn.class_info("n00000300");
  CHECK(c.name == "Paris");
  CHECK(c.hypernyms == "thing, big thing, other thing");
  CHECK(c.definition == "the capital");
  CHECK(wn.class_info("n00000200").definition == "another; not a thing");
  CHECK(wn.class_info("n00000200").hypernyms.empty());
  CHECK(synth::gloss_definition("x y; \"z\"") == "x y");
  CHECK(input_error([&] { wn.class_info("n99999999"); }).find("n99999999 not found") != std::string::npos);
  CHECK(input_error([&] { wn.class_info("n123"); }).find("malformed WordNet noun id 'n123'") != std::string::npos);
  CHECK(input_error([&] { wn.class_info("02086910"); }).find("malformed") != std::string::npos);
  CHECK(input_error([] { synth::WordNetNouns("/nonexistent/data.noun"); }).find("/nonexistent/data.noun") !=
        std::string::npos);
  CHECK(input_error([] { synth::WordNetNouns(temp_file("empty.noun", "  license only\n")); }).find("no synset lines") !=
        std::string::npos);
}

TEST_CASE("class file format: custom lists, round trip, errors") {
  const auto custom = synth::parse_class_file("# my classes\n\nname\tdefinition\nred panda\ta small mammal\r\nkoala\n", "custom.tsv");
  REQUIRE(custom.size() == 2);
  CHECK(custom[0].name == "red panda");
  CHECK(custom[0].definition == "a small mammal");
  CHECK(custom[0].id.empty());
  CHECK(custom[1].name == "koala");
  CHECK(custom[1].definition.empty());

  const std::vector<ClassInfo> classes = {{"n1", "a, b", "c", "d e"}, {"", "x", "", "y"}};
  const auto back = synth::parse_class_file(synth::format_class_file(classes, "two lines\nof comment"), "rt");
  REQUIRE(back.size() == 2);
  CHECK(back[0].name == "a, b");
  CHECK(back[0].hypernyms == "c");
  CHECK(back[1].definition == "y");
  CHECK(input_error([] { synth::format_class_file({{"", "a\tb", "", ""}}); }).find("tab or newline") != std::string::npos);

  CHECK(input_error([] { synth::parse_class_file("id\tname\n", "e.tsv"); }) == "e.tsv: class list is empty");
  CHECK(input_error([] { synth::parse_class_file("# only comments\n", "e.tsv"); }) == "e.tsv: class list is empty");
  CHECK(input_error([] { synth::parse_class_file("id\tlabel\n", "h.tsv"); }).find("h.tsv:1: unknown column 'label'") == 0);
  CHECK(input_error([] { synth::parse_class_file("id\tdefinition\nx\ty\n", "h.tsv"); }).find("no 'name' column") != std::string::npos);
  CHECK(input_error([] { synth::parse_class_file("name\tname\n", "h.tsv"); }).find("appears twice") != std::string::npos);
  CHECK(input_error([] { synth::parse_class_file("id\tname\nn1\t\n", "r.tsv"); }) == "r.tsv:2: empty class name");
  CHECK(input_error([] { synth::parse_class_file("name\na\tb\n", "r.tsv"); }).find("r.tsv:2: 2 fields") == 0);
  CHECK(input_error([] { synth::parse_class_file("id\tname\nn1\ta\nn1\tb\n", "r.tsv"); }) == "r.tsv:3: duplicate class id 'n1'");
  CHECK(input_error([] { synth::load_class_file("/nonexistent/classes.tsv"); }) == "/nonexistent/classes.tsv: cannot open file: No such file or directory");
  CHECK(input_error([] { synth::load_id_list(temp_file("ids.txt", "# nothing\n\n")); }).find("id list is empty") != std::string::npos);
}
