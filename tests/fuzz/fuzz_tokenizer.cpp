// Fuzzes the CLIP BPE tokenizer on arbitrary bytes, invalid UTF-8 included
// (src/text/tokenizer.cpp: ClipTokenizer::normalize, pre_tokenize, the BPE merge loop and its cache,
// encode, bpe_tokens, decode). The real CLIP vocabulary (tests/fixtures/tiny-sd/tokenizer,
// 49408 tokens, 48894 merges) is loaded once.
// Properties: encode gives context_length ids starting with <|startoftext|> and ending with
// <|endoftext|>, all in the vocabulary; normalize's output is valid UTF-8 that normalizes to itself;
// decode of the ids never throws.
#include "fuzz_common.hpp"
#include "text/tokenizer.hpp"

#ifndef SYNTH_SOURCE_DIR
#error "SYNTH_SOURCE_DIR must name the repository root"
#endif

namespace {

const synth::ClipTokenizer& tokenizer() {
  static const synth::ClipTokenizer tok(std::string(SYNTH_SOURCE_DIR) + "/tests/fixtures/tiny-sd/tokenizer");
  return tok;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  tokenizer();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const synth::ClipTokenizer& tok = tokenizer();
  const std::string text(reinterpret_cast<const char*>(data), size);

  const std::string norm = synth::ClipTokenizer::normalize(text);
  fuzz::check(synth::ClipTokenizer::normalize(norm) == norm, "normalize is idempotent");
  (void)synth::ClipTokenizer::pre_tokenize(text);  // raw bytes too: pre_tokenize decodes UTF-8 itself

  const std::vector<int64_t> ids = tok.encode(text);
  fuzz::check(ids.size() == size_t(synth::ClipTokenizer::kContextLength), "context_length ids");
  fuzz::check(ids.front() == tok.bos_id() && ids.back() == tok.eos_id(), "bos first, eos last");
  for (int64_t id : ids) fuzz::check(id >= 0 && size_t(id) < tok.vocab_size(), "id in the vocabulary");
  const std::string back = tok.decode(ids);
  (void)back;
  const std::vector<std::string> tokens = tok.bpe_tokens(text);
  for (const auto& t : tokens) fuzz::check(!t.empty(), "BPE tokens are non-empty vocabulary entries");
  // A short context keeps bos and eos.
  const std::vector<int64_t> two = tok.encode(text, 2);
  fuzz::check(two.size() == 2 && two[0] == tok.bos_id() && two[1] == tok.eos_id(), "context 2 keeps bos/eos");
  return 0;
}
