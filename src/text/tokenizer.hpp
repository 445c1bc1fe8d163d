// CLIP's byte-level BPE tokenizer (Radford et al., "Learning transferable visual models from
// natural language supervision", 2021), reading a Stable Diffusion `tokenizer/` folder
// (vocab.json, merges.txt) and giving the ids the Hugging Face CLIPTokenizer gives SD v1
// pipelines (the slow tokenizer without ftfy):
//   1. clean-up: drop control/format/unassigned code points, U+0000 and U+FFFD; every white space
//      becomes one separator; CJK ideographs become words of their own; lower-case each word;
//   2. pre-tokenization by CLIP's pattern
//      <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
//      (matched by hand over UTF-8 with Unicode general-category tables of the BMP);
//   3. each piece's UTF-8 bytes mapped to printable characters (GPT-2's bytes_to_unicode), "</w>"
//      appended to the last symbol, merged by BPE in merges.txt rank order;
//   4. <|startoftext|> + ids + <|endoftext|>, truncated to the context length keeping the end
//      token, padded with <|endoftext|> (SD v1's pad token).
// Not done: Unicode NFC normalization (inputs are assumed NFC already, as almost all text is);
// code points beyond the BMP count as letters in the CJK extension planes, else as symbols.
// Thread-safe; copies share the vocabulary and the per-word BPE cache.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace synth {

class ClipTokenizer {
 public:
  static constexpr int64_t kContextLength = 77;

  // Reads <dir>/vocab.json and <dir>/merges.txt. InputError naming the file when one is missing or
  // malformed (not a JSON object of integer ids, no <|startoftext|>/<|endoftext|>, a merge line
  // that is not two symbols, a merge whose parts or result are not in the vocabulary).
  explicit ClipTokenizer(const std::string& dir);
  ClipTokenizer(const std::string& vocab_json_path, const std::string& merges_txt_path);

  // context_length ids: bos, BPE ids, eos, eos padding. InputError if context_length < 2.
  std::vector<int64_t> encode(const std::string& text, int64_t context_length = kContextLength) const;
  // Row-major [texts.size(), context_length].
  std::vector<int64_t> encode_batch(const std::vector<std::string>& texts, int64_t context_length = kContextLength) const;
  // The BPE ids of `text` alone: no bos/eos, no truncation.
  std::vector<int32_t> bpe_ids(const std::string& text) const;
  // The BPE token strings (vocabulary entries, e.g. "pap", "illon</w>").
  std::vector<std::string> bpe_tokens(const std::string& text) const;
  // Text back from ids ("</w>" as a space, special tokens dropped if skip_special); for logs.
  std::string decode(const std::vector<int64_t>& ids, bool skip_special = true) const;

  // Step 1 alone (UTF-8 in, UTF-8 out) and step 2 alone, exposed for tests and tools.
  static std::string normalize(const std::string& text);
  static std::vector<std::string> pre_tokenize(const std::string& normalized);

  int64_t bos_id() const;
  int64_t eos_id() const;
  int64_t pad_id() const { return eos_id(); }
  size_t vocab_size() const;
  size_t num_merges() const;
  // Distinct pieces whose BPE result is cached.
  size_t cached_pieces() const;
  void clear_cache() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace synth
