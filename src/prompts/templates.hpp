// The six prompt templates of Sariyildiz et al., "Fake it till you make it" (CVPR 2023), Sec. 3.1,
// written exactly as in the paper, with c = class name (all lemmas), h_c = hypernym lemmas,
// d_c = definition and b = a Places365 scene:
//   c                                       "c"
//   c, h_c                                  "c_hc"
//   c, d_c                                  "c_dc"
//   a photo of multiple c, h_c              "multiple_c_hc"
//   a photo of multiple different c, h_c    "multiple_different_c_hc"
//   c, h_c inside b                         "c_hc_inside_b"
// The paper's "all six prompts" mixture is uniform over these six.
#pragma once
#include <array>
#include <string>
#include <vector>

#include "prompts/classes.hpp"

namespace synth {

enum class PromptTemplate : int {
  kC = 0,
  kCHc = 1,
  kCDc = 2,
  kMultipleCHc = 3,
  kMultipleDifferentCHc = 4,
  kCHcInsideB = 5,
};

inline constexpr int kNumPromptTemplates = 6;

// Every template, in the order above.
std::array<PromptTemplate, kNumPromptTemplates> all_prompt_templates();
// "c", "c_hc", ... ; parse throws InputError listing the valid names.
const char* template_name(PromptTemplate t);
PromptTemplate parse_template_name(const std::string& name);

bool template_needs_hypernyms(PromptTemplate t);
bool template_needs_definition(PromptTemplate t);
bool template_needs_scene(PromptTemplate t);

// Fills the template. Throws InputError (naming the class and template) when the template needs
// a field the class does not have (custom class lists may lack hypernyms/definitions) or needs a
// scene and `scene` is empty.
std::string render_prompt(PromptTemplate t, const ClassInfo& c, const std::string& scene = "");

// Places365 category in official form ("/a/arena/hockey", optionally followed by its index) made
// readable for a prompt: "arena hockey"; "/b/bamboo_forest" -> "bamboo forest".
std::string readable_scene(const std::string& category);
// All readable scenes of a categories file (one per line); InputError naming the file if it is
// missing or empty.
std::vector<std::string> load_scenes(const std::string& path);

}  // namespace synth
