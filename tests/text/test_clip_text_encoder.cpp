// CLIP text encoder parity with transformers' CLIPTextModel on the tiny-sd reference vectors
// (tests/fixtures/tiny-sd/README.md: relative L2 < 1e-4).
#include <doctest/doctest.h>

#include "support/tensors.hpp"

#include <torch/torch.h>

#include "core/error.hpp"
#include "diffusion/weights.hpp"
#include "io/safetensors.hpp"
#include "text/clip_text_encoder.hpp"

namespace {
const std::string kSd = std::string(SYNTH_TEST_DATA) + "/tiny-sd";

using synth::test::rel_l2;
}  // namespace

TEST_CASE("text encoder config is read from config.json") {
  const auto c = synth::load_text_encoder_config(kSd + "/text_encoder/config.json");
  CHECK(c.hidden_size == 32);
  CHECK(c.intermediate_size == 37);
  CHECK(c.num_hidden_layers == 2);
  CHECK(c.num_attention_heads == 4);
  CHECK(c.max_position_embeddings == 77);
  CHECK(c.vocab_size == 49408);
  CHECK(c.hidden_act == "quick_gelu");
  CHECK(c.eos_token_id == 49407);
}

TEST_CASE("CLIP text encoder matches transformers' last_hidden_state") {
  const auto enc = synth::load_text_encoder(kSd + "/text_encoder");
  const auto vectors = synth::SafeTensorsFile::open(kSd + "/vectors.safetensors");
  const auto ids = vectors.tensor("tokenizer.input_ids", torch::kInt64).slice(0, 0, 3);
  const auto ref = vectors.tensor("text.last_hidden_state");
  const auto out = enc.forward(ids);
  REQUIRE(out.sizes().vec() == ref.sizes().vec());
  const double err = rel_l2(out, ref);
  MESSAGE("text encoder relative L2 error: " << err);
  CHECK(err < 1e-4);
  // Rows are independent: the batch of one gives the same numbers (no cross-batch leakage).
  const auto single = enc.forward(ids.slice(0, 1, 2));
  CHECK(rel_l2(single[0], ref[1]) < 1e-4);
  // Causality: changing the last token leaves all earlier positions unchanged.
  auto changed = ids.slice(0, 0, 1).clone();
  changed[0][76] = 320;
  const auto out2 = enc.forward(changed);
  CHECK(torch::allclose(out2[0].slice(0, 0, 76), out[0].slice(0, 0, 76), 1e-5, 1e-6));
  CHECK_FALSE(torch::allclose(out2[0][76], out[0][76], 1e-3, 1e-4));
}

TEST_CASE("text encoder rejects bad token ids") {
  const auto enc = synth::ClipTextEncoder(synth::load_text_encoder_config(kSd + "/text_encoder/config.json"));
  CHECK_THROWS_AS(enc.forward(torch::full({1, 77}, int64_t(49408))), synth::InputError);
  CHECK_THROWS_AS(enc.forward(torch::zeros({1, 78}, torch::kInt64)), synth::InputError);
  CHECK_THROWS_AS(enc.forward(torch::zeros({1, 77}, torch::kInt32)), synth::InputError);
}
