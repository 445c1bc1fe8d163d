#include "prompts/wordnet.hpp"

#include <cstdio>
#include <cstdlib>

#include "core/error.hpp"

namespace synth {
namespace {

// Whitespace-separated fields of one data.noun line up to the '|' that starts the gloss.
std::vector<std::string> fields_before_gloss(const std::string& line) {
  std::vector<std::string> out;
  size_t i = 0;
  const size_t bar = line.find(" | ");
  const size_t end = bar == std::string::npos ? line.size() : bar;
  while (i < end) {
    while (i < end && line[i] == ' ') ++i;
    size_t j = i;
    while (j < end && line[j] != ' ') ++j;
    if (j > i) out.push_back(line.substr(i, j - i));
    i = j;
  }
  return out;
}

bool parse_uint(const std::string& s, int base, uint64_t& value) {
  if (s.empty()) return false;
  char* end = nullptr;
  value = std::strtoull(s.c_str(), &end, base);
  return end == s.c_str() + s.size();
}

std::string trim_spaces(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\r' || s[b] == '\n')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\r' || s[e - 1] == '\n')) --e;
  return s.substr(b, e - b);
}

// WordNet word forms: underscores stand for spaces; adjective markers "(a)", "(p)", "(ip)" are
// syntactic annotations, not part of the lemma (wndb(5WN)).
std::string clean_lemma(std::string w) {
  for (const char* marker : {"(a)", "(p)", "(ip)"}) {
    const std::string m = marker;
    if (w.size() > m.size() && w.compare(w.size() - m.size(), m.size(), m) == 0) {
      w.resize(w.size() - m.size());
      break;
    }
  }
  for (char& c : w)
    if (c == '_') c = ' ';
  return w;
}

std::string join(const std::vector<std::string>& parts) {
  std::string out;
  for (const auto& p : parts) {
    if (!out.empty()) out += ", ";
    out += p;
  }
  return out;
}

}  // namespace

std::string gloss_definition(const std::string& gloss) {
  const size_t ex = gloss.find("; \"");
  return trim_spaces(ex == std::string::npos ? gloss : gloss.substr(0, ex));
}

uint32_t parse_wnid(const std::string& wnid, const std::string& context) {
  bool ok = wnid.size() == 9 && wnid[0] == 'n';
  for (size_t i = 1; ok && i < wnid.size(); ++i) ok = wnid[i] >= '0' && wnid[i] <= '9';
  if (!ok) throw InputError(with_context(context, "malformed WordNet noun id '" + wnid + "' (expected n + 8 digits)"));
  return uint32_t(std::strtoul(wnid.c_str() + 1, nullptr, 10));
}

WordNetNouns::WordNetNouns(const std::string& data_noun_path) : path_(data_noun_path) {
  text_ = read_text_file(data_noun_path);
  size_t pos = 0;
  while (pos < text_.size()) {
    size_t end = text_.find('\n', pos);
    if (end == std::string::npos) end = text_.size();
    // License lines start with spaces; synset lines with their 8-digit byte offset.
    if (end - pos > 9 && text_[pos] >= '0' && text_[pos] <= '9' && text_[pos + 8] == ' ') {
      uint64_t off = 0;
      if (parse_uint(text_.substr(pos, 8), 10, off)) lines_[uint32_t(off)] = {pos, end};
    }
    pos = end + 1;
  }
  if (lines_.empty()) throw InputError(path_ + ": no synset lines (is this WordNet's data.noun?)");
}

WordNetSynset WordNetNouns::synset(uint32_t offset) const {
  char id[16];
  std::snprintf(id, sizeof id, "n%08u", offset);
  const auto it = lines_.find(offset);
  if (it == lines_.end()) throw InputError(path_ + ": WordNet id " + id + " not found");
  const std::string line = text_.substr(it->second.first, it->second.second - it->second.first);
  const std::string where = path_ + ": synset " + id;
  const auto f = fields_before_gloss(line);
  // offset lex_filenum ss_type w_cnt(hex) [word lex_id]... p_cnt [ptr offset pos src/tgt]...
  uint64_t w_cnt = 0, p_cnt = 0;
  if (f.size() < 4 || !parse_uint(f[3], 16, w_cnt) || w_cnt == 0) throw InputError(where + ": malformed word count");
  size_t i = 4;
  WordNetSynset s;
  s.offset = offset;
  for (uint64_t w = 0; w < w_cnt; ++w, i += 2) {
    if (i + 1 >= f.size()) throw InputError(where + ": truncated word list");
    s.lemmas.push_back(clean_lemma(f[i]));
  }
  if (i >= f.size() || !parse_uint(f[i], 10, p_cnt)) throw InputError(where + ": malformed pointer count");
  ++i;
  for (uint64_t p = 0; p < p_cnt; ++p, i += 4) {
    if (i + 3 >= f.size()) throw InputError(where + ": truncated pointer list");
    uint64_t target = 0;
    if ((f[i] == "@" || f[i] == "@i") && f[i + 2] == "n") {
      if (!parse_uint(f[i + 1], 10, target)) throw InputError(where + ": malformed hypernym offset '" + f[i + 1] + "'");
      s.hypernyms.push_back(uint32_t(target));
    }
  }
  const size_t bar = line.find(" | ");
  s.gloss = bar == std::string::npos ? std::string() : trim_spaces(line.substr(bar + 3));
  return s;
}

ClassInfo WordNetNouns::class_info(const std::string& wnid) const {
  const WordNetSynset s = synset(parse_wnid(wnid, path_));
  ClassInfo info;
  info.id = wnid;
  info.name = join(s.lemmas);
  std::vector<std::string> hyper;
  for (uint32_t h : s.hypernyms) hyper.push_back(join(synset(h).lemmas));
  info.hypernyms = join(hyper);
  info.definition = gloss_definition(s.gloss);
  return info;
}

}  // namespace synth
