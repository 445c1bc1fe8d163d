// Tokenizer throughput on the ImageNet-1K prompt set: every class with each of the six templates
// (scenes of "c, h_c inside b" drawn by the prompt stream). Prints prompts/s with a cold per-piece
// BPE cache and with a warm one. Usage: bench_tokenizer [repo root] (default: the current folder).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>

#include "core/error.hpp"
#include "prompts/prompt_stream.hpp"
#include "text/tokenizer.hpp"

int main(int argc, char** argv) {
  try {
    const std::string root = argc > 1 ? argv[1] : ".";
    const auto classes = synth::load_class_file(root + "/configs/classes/imagenet1k.tsv");
    const auto scenes = synth::load_scenes(root + "/configs/data/places365_categories.txt");
    const auto templates = synth::all_prompt_templates();
    // One entry per (class, template): index i of a single-template stream gives the scene.
    std::vector<std::string> prompts;
    for (const auto t : templates) {
      const synth::PromptStream stream(0, classes, {t}, {}, scenes);
      for (const auto& e : stream.range(0, classes.size())) prompts.push_back(e.prompt);
    }
    const synth::ClipTokenizer tok(root + "/configs/data/clip-tokenizer");
    using clock = std::chrono::steady_clock;
    auto run = [&] {
      const auto t0 = clock::now();
      int64_t checksum = 0;
      for (const auto& p : prompts)
        for (int64_t id : tok.encode(p)) checksum += id;
      return std::make_pair(std::chrono::duration<double>(clock::now() - t0).count(), checksum);
    };
    tok.clear_cache();
    const auto [cold_s, cold_sum] = run();
    const size_t pieces = tok.cached_pieces();
    double warm_s = 1e300;
    int64_t warm_sum = 0;
    for (int rep = 0; rep < 5; ++rep) {
      const auto [s, sum] = run();
      warm_s = std::min(warm_s, s);
      warm_sum = sum;
    }
    std::printf("prompts: %zu (%zu classes x %zu templates), distinct BPE pieces: %zu\n", prompts.size(), classes.size(),
                templates.size(), pieces);
    std::printf("cold cache: %.0f prompts/s (%.3f s)\n", double(prompts.size()) / cold_s, cold_s);
    std::printf("warm cache: %.0f prompts/s (%.3f s, best of 5)\n", double(prompts.size()) / warm_s, warm_s);
    std::printf("checksum: %lld %s\n", static_cast<long long>(warm_sum), warm_sum == cold_sum ? "(cold = warm)" : "(MISMATCH)");
    return warm_sum == cold_sum ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_tokenizer: error: %s\n", e.what());
    return 2;
  }
}
