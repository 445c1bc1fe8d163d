// Reader for WordNet 3.0's noun database (data.noun, format described in wndb(5WN)). ImageNet's
// class ids are WordNet 3.0 noun offsets ("n" + 8 digits), and the paper's prompts use a class's
// lemmas (c), its hypernyms' lemmas (h_c) and its gloss (d_c) (Sariyildiz et al., CVPR 2023,
// Sec. 3.1). Only the class-file tool reads WordNet; runtime reads the class files it writes.
#pragma once
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "prompts/classes.hpp"

namespace synth {

struct WordNetSynset {
  uint32_t offset = 0;
  std::vector<std::string> lemmas;      // underscores as spaces, syntactic markers "(a)" removed
  std::vector<uint32_t> hypernyms;      // offsets of "@" (hypernym) and "@i" (instance hypernym) targets
  std::string gloss;                    // the whole gloss, trimmed
};

// The part of a gloss before its example sentences: WordNet separates them with '; "'.
std::string gloss_definition(const std::string& gloss);

class WordNetNouns {
 public:
  // Reads and indexes data.noun; throws InputError naming the file if it is missing or holds no
  // synset lines.
  explicit WordNetNouns(const std::string& data_noun_path);

  // Parses one synset; throws InputError for an offset that is not in the file.
  WordNetSynset synset(uint32_t offset) const;
  bool contains(uint32_t offset) const { return lines_.count(offset) > 0; }
  size_t size() const { return lines_.size(); }

  // The class-file row of an ImageNet id "nXXXXXXXX": name = lemmas, hypernyms = lemmas of every
  // direct hypernym synset, definition = gloss before the examples. Throws InputError for a
  // malformed or unknown id.
  ClassInfo class_info(const std::string& wnid) const;

 private:
  std::string path_;
  std::string text_;
  std::unordered_map<uint32_t, std::pair<size_t, size_t>> lines_;  // offset -> [begin, end) in text_
};

// "n02086910" -> 2086910; throws InputError (mentioning `context`) for anything else.
uint32_t parse_wnid(const std::string& wnid, const std::string& context);

}  // namespace synth
