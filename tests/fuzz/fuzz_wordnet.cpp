// Fuzzes the WordNet 3.0 data.noun reader (src/prompts/wordnet.cpp: the WordNetNouns constructor
// that indexes synset lines, WordNetNouns::synset that parses one - word count in hex, lemmas,
// pointer list, gloss - class_info that follows hypernym pointers, parse_wnid, gloss_definition).
// The input is the data.noun file (the constructor takes a path). Every line that looks like a
// synset line (8 digits and a space) is looked up, as the class-file tool does for ImageNet ids.
#include <cstdio>

#include "fuzz_common.hpp"
#include "prompts/wordnet.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = fuzz::scratch_dir() + "/data.noun";
  fuzz::write_file(path, data, size);
  std::unique_ptr<synth::WordNetNouns> wn;
  if (!fuzz::expect_ok_or_error([&] { wn = std::make_unique<synth::WordNetNouns>(path); })) return 0;
  fuzz::check(wn->size() > 0, "an index that loads has synsets");

  const std::string text(reinterpret_cast<const char*>(data), size);
  size_t pos = 0;
  int looked_up = 0;
  while (pos < text.size() && looked_up < 32) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    const std::string first = text.substr(pos, std::min<size_t>(9, end - pos));
    pos = end + 1;
    if (first.size() != 9 || first[8] != ' ') continue;
    const std::string wnid = "n" + first.substr(0, 8);
    ++looked_up;
    uint32_t offset = 0;
    if (!fuzz::expect_ok_or_error([&] { offset = synth::parse_wnid(wnid, "fuzz"); })) continue;
    if (!wn->contains(offset)) continue;
    fuzz::expect_ok_or_error([&] {
      const synth::WordNetSynset s = wn->synset(offset);
      fuzz::check(s.offset == offset && !s.lemmas.empty(), "a parsed synset has its offset and lemmas");
      (void)synth::gloss_definition(s.gloss);
    });
    fuzz::expect_ok_or_error([&] {
      const synth::ClassInfo info = wn->class_info(wnid);
      fuzz::check(info.id == wnid, "class_info keeps the id");
    });
  }
  // Ids that are not in the file, or malformed, are errors.
  fuzz::expect_ok_or_error([&] { wn->class_info("n99999999"); });
  fuzz::expect_ok_or_error([&] { wn->class_info(text.substr(0, 9)); });
  return 0;
}
