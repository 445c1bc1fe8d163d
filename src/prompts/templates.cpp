#include "prompts/templates.hpp"

#include <sstream>

#include "core/error.hpp"

namespace synth {
namespace {

constexpr const char* kNames[kNumPromptTemplates] = {"c", "c_hc", "c_dc", "multiple_c_hc", "multiple_different_c_hc",
                                                     "c_hc_inside_b"};

std::string class_label(const ClassInfo& c) { return c.id.empty() ? "class '" + c.name + "'" : "class " + c.id; }

}  // namespace

std::array<PromptTemplate, kNumPromptTemplates> all_prompt_templates() {
  return {PromptTemplate::kC,          PromptTemplate::kCHc,
          PromptTemplate::kCDc,        PromptTemplate::kMultipleCHc,
          PromptTemplate::kMultipleDifferentCHc, PromptTemplate::kCHcInsideB};
}

const char* template_name(PromptTemplate t) { return kNames[int(t)]; }

PromptTemplate parse_template_name(const std::string& name) {
  for (int i = 0; i < kNumPromptTemplates; ++i)
    if (name == kNames[i]) return PromptTemplate(i);
  std::string valid;
  for (const char* n : kNames) valid += std::string(valid.empty() ? "" : ", ") + n;
  throw InputError("unknown prompt template '" + name + "' (valid: " + valid + ")");
}

bool template_needs_hypernyms(PromptTemplate t) { return t != PromptTemplate::kC && t != PromptTemplate::kCDc; }
bool template_needs_definition(PromptTemplate t) { return t == PromptTemplate::kCDc; }
bool template_needs_scene(PromptTemplate t) { return t == PromptTemplate::kCHcInsideB; }

std::string render_prompt(PromptTemplate t, const ClassInfo& c, const std::string& scene) {
  if (template_needs_hypernyms(t) && c.hypernyms.empty())
    throw InputError("prompt template " + std::string(template_name(t)) + " needs hypernyms, " + class_label(c) +
                     " has none");
  if (template_needs_definition(t) && c.definition.empty())
    throw InputError("prompt template " + std::string(template_name(t)) + " needs a definition, " + class_label(c) +
                     " has none");
  if (template_needs_scene(t) && scene.empty())
    throw InputError("prompt template " + std::string(template_name(t)) + " needs a scene");
  switch (t) {
    case PromptTemplate::kC: return c.name;
    case PromptTemplate::kCHc: return c.name + ", " + c.hypernyms;
    case PromptTemplate::kCDc: return c.name + ", " + c.definition;
    case PromptTemplate::kMultipleCHc: return "a photo of multiple " + c.name + ", " + c.hypernyms;
    case PromptTemplate::kMultipleDifferentCHc: return "a photo of multiple different " + c.name + ", " + c.hypernyms;
    case PromptTemplate::kCHcInsideB: return c.name + ", " + c.hypernyms + " inside " + scene;
  }
  throw Error("render_prompt: invalid template value " + std::to_string(int(t)));
}

std::string readable_scene(const std::string& category) {
  std::string s = category;
  // Drop a trailing index column ("/a/arena/hockey 8").
  const size_t sp = s.find_first_of(" \t");
  if (sp != std::string::npos) s.resize(sp);
  // Drop the one-letter alphabetical folder ("/a/").
  if (s.size() > 3 && s[0] == '/' && s[2] == '/') s = s.substr(3);
  else if (!s.empty() && s[0] == '/') s = s.substr(1);
  for (char& ch : s)
    if (ch == '/' || ch == '_') ch = ' ';
  return s;
}

std::vector<std::string> load_scenes(const std::string& path) {
  std::istringstream in(read_text_file(path));
  std::vector<std::string> scenes;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    const std::string s = readable_scene(line);
    if (s.empty()) throw InputError(path + ": unreadable scene line '" + line + "'");
    scenes.push_back(s);
  }
  if (scenes.empty()) throw InputError(path + ": scene list is empty");
  return scenes;
}

}  // namespace synth
