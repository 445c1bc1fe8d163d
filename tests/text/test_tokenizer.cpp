// CLIP BPE tokenizer: exact parity with the reference ids (HF CLIPTokenizer as SD v1 uses it) for
// the ten prompts of tests/fixtures/tiny-sd/vectors.json, plus the pieces that make it up.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "io/safetensors.hpp"
#include "support/input_error.hpp"
#include "support/scratch_dir.hpp"
#include "text/tokenizer.hpp"

namespace fs = std::filesystem;
using synth::ClipTokenizer;

namespace {

const std::string kTinySd = std::string(SYNTH_TEST_DATA) + "/tiny-sd";

using synth::test::input_error;

// vectors.json also holds non-JSON numbers (-Infinity in scheduler configs), so only its first
// "prompts" array is cut out and parsed.
std::vector<std::string> reference_prompts() {
  std::ifstream in(kTinySd + "/vectors.json");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t key = text.find("\"prompts\": [");
  const size_t begin = text.find('[', key), end = text.find("\n ]", begin);
  REQUIRE(key != std::string::npos);
  REQUIRE(end != std::string::npos);
  return nlohmann::json::parse(text.substr(begin, end + 3 - begin)).get<std::vector<std::string>>();
}

const ClipTokenizer& tokenizer() {
  static const ClipTokenizer tok(kTinySd + "/tokenizer");
  return tok;
}

// A tokenizer folder with the given file contents (empty string = file absent), in a folder of this
// test binary's own, removed when it exits.
std::string tokenizer_dir(const std::string& name, const std::string& vocab, const std::string& merges) {
  static const synth::test::ScratchDir root("tokenizer");
  const fs::path dir = root.path / name;
  fs::create_directories(dir);
  fs::remove(dir / "vocab.json");
  fs::remove(dir / "merges.txt");
  if (!vocab.empty()) std::ofstream(dir / "vocab.json") << vocab;
  if (!merges.empty()) std::ofstream(dir / "merges.txt") << merges;
  return dir.string();
}

// The smallest valid vocabulary: the 512 byte symbols, the specials and what the merges make.
std::string small_vocab(const std::vector<std::string>& extra, bool specials = true) {
  nlohmann::json j = nlohmann::json::object();
  int id = 0;
  std::vector<std::string> byte_syms;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    static int next = 256;
    const int cp = printable ? b : next++;
    std::string s;
    if (cp < 0x80) s += char(cp);
    else {
      s += char(0xC0 | (cp >> 6));
      s += char(0x80 | (cp & 0x3F));
    }
    byte_syms.push_back(s);
  }
  for (const auto& s : byte_syms) j[s] = id++;
  for (const auto& s : byte_syms) j[s + "</w>"] = id++;
  for (const auto& s : extra) j[s] = id++;
  if (specials) {
    j["<|startoftext|>"] = id++;
    j["<|endoftext|>"] = id++;
  }
  return j.dump();
}

}  // namespace

TEST_CASE("token ids equal the reference for all ten prompts") {
  const auto prompts = reference_prompts();
  REQUIRE(prompts.size() == 10);
  const auto file = synth::SafeTensorsFile::open(kTinySd + "/vectors.safetensors");
  const torch::Tensor ref = file.tensor_raw("tokenizer.input_ids").contiguous();
  REQUIRE((ref.scalar_type() == torch::kInt64));
  REQUIRE((ref.sizes() == torch::IntArrayRef({10, 77})));
  const auto ids = tokenizer().encode_batch(prompts);
  REQUIRE(ids.size() == 770);
  const int64_t* r = ref.data_ptr<int64_t>();
  for (size_t p = 0; p < 10; ++p) {
    CAPTURE(prompts[p]);
    const std::vector<int64_t> mine(ids.begin() + long(p * 77), ids.begin() + long((p + 1) * 77));
    const std::vector<int64_t> theirs(r + p * 77, r + (p + 1) * 77);
    CHECK(mine == theirs);
  }
  // The copy in configs/data gives the same ids.
  const ClipTokenizer shipped(std::string(SYNTH_SOURCE_DIR) + "/configs/data/clip-tokenizer");
  CHECK(shipped.encode_batch(prompts) == ids);
  CHECK(shipped.vocab_size() == 49408);
  CHECK(shipped.num_merges() == 48894);
}

TEST_CASE("special ids, padding, truncation keeping eos") {
  const auto& tok = tokenizer();
  CHECK(tok.bos_id() == 49406);
  CHECK(tok.eos_id() == 49407);
  const auto empty = tok.encode("");
  CHECK(empty[0] == 49406);
  for (size_t i = 1; i < 77; ++i) CHECK(empty[i] == 49407);
  std::string long_text;
  for (int i = 0; i < 100; ++i) long_text += "dog ";
  const auto ids = tok.encode(long_text);
  REQUIRE(ids.size() == 77);
  CHECK(ids[75] == tok.bpe_ids("dog")[0]);
  CHECK(ids[76] == 49407);
  CHECK(tok.encode("dog", 4) == std::vector<int64_t>{49406, tok.bpe_ids("dog")[0], 49407, 49407});
  CHECK(input_error([&] { tok.encode("x", 1); }).find("context length must be >= 2") != std::string::npos);
  CHECK(tok.bpe_tokens("papillon, toy spaniel") ==
        std::vector<std::string>{"pap", "illon</w>", ",</w>", "toy</w>", "spaniel</w>"});
  CHECK(tok.decode(tok.encode("A photo of multiple different Shih-Tzu, toy dog")) ==
        "a photo of multiple different shih - tzu , toy dog");
}

TEST_CASE("clean-up, lower-casing and CLIP's pre-tokenization pattern") {
  CHECK(ClipTokenizer::normalize("  Walker hound,\t\n  Walker   foxhound!! ") == "walker hound, walker foxhound!!");
  CHECK(ClipTokenizer::normalize("a\x01" "b\xEF\xBF\xBD" "c") == "abc");                   // control char, U+FFFD dropped
  CHECK(ClipTokenizer::normalize("\xC3\x80\xC3\x89\xC3\x8E \xC5\x81\xC3\x93" "D\xC5\xB9") ==  // ÀÉÎ ŁÓDŹ
        "\xC3\xA0\xC3\xA9\xC3\xAE \xC5\x82\xC3\xB3" "d\xC5\xBA");
  CHECK(ClipTokenizer::normalize("\xCE\x9F\xCE\x94\xCE\x9F\xCE\xA3") == "\xCE\xBF\xCE\xB4\xCE\xBF\xCF\x82");  // ΟΔΟΣ -> οδος (final sigma)
  CHECK(ClipTokenizer::normalize("\xE4\xB8\xAD\xE6\x96\x87x") == "\xE4\xB8\xAD \xE6\x96\x87 x");          // CJK ideographs split
  CHECK(ClipTokenizer::normalize("a\xE3\x80\x80" "b") == "a b");                                      // ideographic space
  using V = std::vector<std::string>;
  CHECK(ClipTokenizer::pre_tokenize("devil's darning needle") == V{"devil", "'s", "darning", "needle"});
  CHECK(ClipTokenizer::pre_tokenize("we'll they're i'm") == V{"we", "'ll", "they", "'re", "i", "'m"});
  CHECK(ClipTokenizer::pre_tokenize("2 dogs... (x-ray) 1947") ==
        V{"2", "dogs", "...", "(", "x", "-", "ray", ")", "1", "9", "4", "7"});
  CHECK(ClipTokenizer::pre_tokenize("!!'s") == V{"!!'", "s"});
  CHECK(ClipTokenizer::pre_tokenize("a<|endoftext|>b") == V{"a", "<|endoftext|>", "b"});
  CHECK(ClipTokenizer::pre_tokenize("na\xC3\xAFve caf\xC3\xA9") == V{"na\xC3\xAFve", "caf\xC3\xA9"});  // Latin-1 letters
  CHECK(ClipTokenizer::pre_tokenize("\xD9\xA3x") == V{"\xD9\xA3", "x"});  // Arabic-Indic digit three is \p{N}
  // Special tokens written in the text map to their ids.
  CHECK(tokenizer().bpe_ids("<|startoftext|>") == std::vector<int32_t>{49406});
}

TEST_CASE("per-piece cache: same ids warm and cold, thread-safe") {
  const ClipTokenizer tok(kTinySd + "/tokenizer");
  const auto prompts = reference_prompts();
  tok.clear_cache();
  const auto cold = tok.encode_batch(prompts);
  CHECK(tok.cached_pieces() > 50);
  const auto warm = tok.encode_batch(prompts);
  CHECK(cold == warm);
  tok.clear_cache();
  std::vector<std::vector<int64_t>> results(4);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int rep = 0; rep < 20; ++rep) results[t] = tok.encode_batch(prompts);
    });
  for (auto& th : threads) th.join();
  for (const auto& r : results) CHECK(r == cold);
}

TEST_CASE("bad tokenizer files: one InputError naming the file") {
  const std::string vocab = small_vocab({"ab", "ab</w>"});
  const std::string merges = "#version: 0.2\na b\na b</w>\n";
  {
    const ClipTokenizer ok(tokenizer_dir("ok", vocab, merges));
    CHECK(ok.bpe_tokens("ab aab") == std::vector<std::string>{"ab</w>", "a", "ab</w>"});
  }
  std::string dir = tokenizer_dir("missing", "", merges);
  CHECK(input_error([&] { ClipTokenizer t(dir); }) == dir + "/vocab.json: cannot open CLIP vocabulary: No such file or directory");
  dir = tokenizer_dir("no_merges", vocab, "");
  CHECK(input_error([&] { ClipTokenizer t(dir); }) == dir + "/merges.txt: cannot open BPE merges: No such file or directory");
  dir = tokenizer_dir("bad_json", "{\"a\": 1,", merges);
  CHECK(input_error([&] { ClipTokenizer t(dir); }).find(dir + "/vocab.json: malformed JSON") == 0);
  dir = tokenizer_dir("array", "[1, 2]", merges);
  CHECK(input_error([&] { ClipTokenizer t(dir); }).find(dir + "/vocab.json: expected a non-empty JSON object") == 0);
  dir = tokenizer_dir("string_id", "{\"a\": \"1\"}", merges);
  CHECK(input_error([&] { ClipTokenizer t(dir); }) == dir + "/vocab.json: id of token 'a' is not an integer");
  dir = tokenizer_dir("no_specials", small_vocab({"ab", "ab</w>"}, false), merges);
  CHECK(input_error([&] { ClipTokenizer t(dir); }) == dir + "/vocab.json: no '<|startoftext|>' token");
  dir = tokenizer_dir("three_fields", vocab, "#version: 0.2\na b c\n");
  CHECK(input_error([&] { ClipTokenizer t(dir); }) ==
        dir + "/merges.txt:2: expected two symbols separated by one space, got 'a b c'");
  dir = tokenizer_dir("unknown_symbol", vocab, "#version: 0.2\nb c\n");
  CHECK(input_error([&] { ClipTokenizer t(dir); }).find(dir + "/merges.txt:2: merge 'b c' uses or makes a symbol not in") == 0);
  dir = tokenizer_dir("only_header", vocab, "#version: 0.2\n");
  CHECK(input_error([&] { ClipTokenizer t(dir); }) == dir + "/merges.txt: no merges");
}
