// Fuzzes the CLIP tokenizer's file loaders (src/text/tokenizer.cpp: ClipTokenizer::Impl::load,
// which reads vocab.json - a JSON object token -> id with the 512 byte symbols and the two special
// tokens - and merges.txt), then tokenizes and decodes a text with whatever loaded.
//
// Input layout: vocab.json NUL merges.txt [NUL text]. JSON cannot hold a raw NUL, and merges.txt
// pieces are single-space-separated symbols, so the separator costs nothing. Without a text, a
// fixed prompt is used.
#include "fuzz_common.hpp"
#include "text/tokenizer.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<std::string> parts = fuzz::split(data, size, '\0');
  if (parts.size() < 2) return 0;
  static const std::string dir = fuzz::scratch_dir();
  const std::string vocab = dir + "/vocab.json", merges = dir + "/merges.txt";
  fuzz::write_file(vocab, parts[0]);
  fuzz::write_file(merges, parts[1]);
  const std::string text = parts.size() > 2 ? parts[2] : "a photo of a T-shirt/top, Ankle boot; ünïcödé 123!";

  std::unique_ptr<synth::ClipTokenizer> tok;
  if (!fuzz::expect_ok_or_error([&] { tok = std::make_unique<synth::ClipTokenizer>(vocab, merges); })) return 0;
  const std::vector<int64_t> ids = tok->encode(text);
  fuzz::check(ids.size() == size_t(synth::ClipTokenizer::kContextLength), "context_length ids");
  fuzz::check(ids.front() == tok->bos_id() && ids.back() == tok->eos_id(), "bos first, eos last");
  (void)tok->decode(ids);
  (void)tok->bpe_tokens(text);
  return 0;
}
