// Fuzzes the class-file reader (src/prompts/classes.cpp: parse_class_file, the TSV every run and
// the prompt stream read; load_class_file is read_text_file + this). A class list that parses must
// also survive format_class_file -> parse_class_file unchanged, the round trip the class-file tool
// (stream-classes) relies on, or format_class_file must refuse it with an InputError.
#include "fuzz_common.hpp"
#include "prompts/classes.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<synth::ClassInfo> classes;
  if (!fuzz::expect_ok_or_error([&] { classes = synth::parse_class_file(text, "fuzz.tsv"); })) return 0;
  fuzz::check(!classes.empty(), "a parsed class list is non-empty");
  for (const auto& c : classes) fuzz::check(!c.name.empty(), "every class has a name");

  std::string written;
  if (!fuzz::expect_ok_or_error([&] { written = synth::format_class_file(classes, "fuzz\nround trip"); })) return 0;
  const std::vector<synth::ClassInfo> again = synth::parse_class_file(written, "fuzz-roundtrip.tsv");
  fuzz::check(again.size() == classes.size(), "round trip keeps the number of classes");
  for (size_t i = 0; i < classes.size(); ++i)
    fuzz::check(again[i].id == classes[i].id && again[i].name == classes[i].name &&
                    again[i].hypernyms == classes[i].hypernyms && again[i].definition == classes[i].definition,
                "round trip keeps every field");
  return 0;
}
