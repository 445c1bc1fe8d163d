// Class files: the list of classes a run generates and trains on, with the text the prompt
// templates need. Format (documented in configs/classes/README.md): UTF-8 TSV, '#' lines are
// comments, the first other line is a header naming the columns, one class per following line.
//   id <TAB> name <TAB> hypernyms <TAB> definition
// Only `name` is required, so a custom class list ("name<TAB>definition", no WordNet ids) works.
// Column order follows the header; missing trailing fields read as empty.
#pragma once
#include <string>
#include <vector>

namespace synth {

struct ClassInfo {
  std::string id;          // e.g. "n01558993"; empty for custom classes
  std::string name;        // c: all lemmas, comma-separated ("robin, American robin, Turdus migratorius")
  std::string hypernyms;   // h_c: lemmas of the direct hypernyms, comma-separated ("thrush")
  std::string definition;  // d_c: WordNet gloss without its example sentences
};

// Parses class-file text; `context` (the file name) prefixes every error. Throws InputError for a
// missing/unknown/duplicate header column, an empty name, a row with too many fields, a duplicate
// id, or no classes at all.
std::vector<ClassInfo> parse_class_file(const std::string& text, const std::string& context);
std::vector<ClassInfo> load_class_file(const std::string& path);

// Writes the four-column form with a comment header `comment` (may be empty, may be multi-line).
// Throws InputError if a field holds a tab or newline, or an id starts with '#' (it could not be
// read back).
std::string format_class_file(const std::vector<ClassInfo>& classes, const std::string& comment = "");
void save_class_file(const std::string& path, const std::vector<ClassInfo>& classes,
                     const std::string& comment = "");

// Reads a list of ids, one per line ('#' comments and blank lines skipped); throws InputError
// naming the file if it cannot be read or lists nothing.
std::vector<std::string> load_id_list(const std::string& path);

// Whole file as a string; InputError naming the file if it cannot be opened.
std::string read_text_file(const std::string& path);

}  // namespace synth
