#include "prompts/classes.hpp"

#include <fstream>
#include <set>
#include <sstream>

#include "core/error.hpp"

namespace synth {
namespace {

std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t' || s[b] == '\r' || s[b] == '\n')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\r' || s[e - 1] == '\n')) --e;
  return s.substr(b, e - b);
}

std::vector<std::string> split_tabs(const std::string& line) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    const size_t tab = line.find('\t', start);
    out.push_back(line.substr(start, tab == std::string::npos ? std::string::npos : tab - start));
    if (tab == std::string::npos) break;
    start = tab + 1;
  }
  return out;
}

// Lines without the trailing '\r' of CRLF files, numbered from 1.
std::vector<std::pair<size_t, std::string>> numbered_lines(const std::string& text) {
  std::vector<std::pair<size_t, std::string>> out;
  std::istringstream in(text);
  std::string line;
  size_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    out.emplace_back(n, line);
  }
  return out;
}

void check_field(const std::string& value, const std::string& what, size_t row) {
  if (value.find_first_of("\t\n\r") != std::string::npos)
    throw InputError("class " + std::to_string(row) + ": " + what + " contains a tab or newline: '" + value + "'");
}

}  // namespace

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(with_errno(path + ": cannot open file"));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw InputError(path + ": read error");
  return ss.str();
}

std::vector<ClassInfo> parse_class_file(const std::string& text, const std::string& context) {
  enum Column { kId, kName, kHypernyms, kDefinition };
  std::vector<Column> columns;
  std::vector<ClassInfo> classes;
  std::set<std::string> ids;
  for (const auto& [n, raw] : numbered_lines(text)) {
    const std::string where = context + ":" + std::to_string(n);
    if (trim(raw).empty() || raw[0] == '#') continue;
    const auto fields = split_tabs(raw);
    if (columns.empty()) {
      std::set<Column> seen;
      for (const auto& f : fields) {
        const std::string h = trim(f);
        Column c;
        if (h == "id") c = kId;
        else if (h == "name") c = kName;
        else if (h == "hypernyms") c = kHypernyms;
        else if (h == "definition") c = kDefinition;
        else throw InputError(where + ": unknown column '" + h + "' in header (expected id, name, hypernyms, definition)");
        if (!seen.insert(c).second) throw InputError(where + ": column '" + h + "' appears twice in header");
        columns.push_back(c);
      }
      if (!seen.count(kName)) throw InputError(where + ": header has no 'name' column (first non-comment line must be the header)");
      continue;
    }
    if (fields.size() > columns.size())
      throw InputError(where + ": " + std::to_string(fields.size()) + " fields but the header has " +
                       std::to_string(columns.size()));
    ClassInfo info;
    for (size_t i = 0; i < fields.size(); ++i) {
      const std::string v = trim(fields[i]);
      switch (columns[i]) {
        case kId: info.id = v; break;
        case kName: info.name = v; break;
        case kHypernyms: info.hypernyms = v; break;
        case kDefinition: info.definition = v; break;
      }
    }
    if (info.name.empty()) throw InputError(where + ": empty class name");
    if (!info.id.empty() && !ids.insert(info.id).second) throw InputError(where + ": duplicate class id '" + info.id + "'");
    classes.push_back(std::move(info));
  }
  if (classes.empty()) throw InputError(context + ": class list is empty");
  return classes;
}

std::vector<ClassInfo> load_class_file(const std::string& path) { return parse_class_file(read_text_file(path), path); }

std::string format_class_file(const std::vector<ClassInfo>& classes, const std::string& comment) {
  std::string out;
  if (!comment.empty()) {
    std::istringstream in(comment);
    std::string line;
    while (std::getline(in, line)) out += "# " + line + "\n";
  }
  out += "id\tname\thypernyms\tdefinition\n";
  for (size_t i = 0; i < classes.size(); ++i) {
    const auto& c = classes[i];
    check_field(c.id, "id", i);
    // The id opens the written row: one starting with '#' would read back as a comment line.
    if (!c.id.empty() && c.id[0] == '#')
      throw InputError("class " + std::to_string(i) + ": id '" + c.id + "' starts with '#' (the row would read back as a comment)");
    check_field(c.name, "name", i);
    check_field(c.hypernyms, "hypernyms", i);
    check_field(c.definition, "definition", i);
    out += c.id + "\t" + c.name + "\t" + c.hypernyms + "\t" + c.definition + "\n";
  }
  return out;
}

void save_class_file(const std::string& path, const std::vector<ClassInfo>& classes, const std::string& comment) {
  const std::string text = format_class_file(classes, comment);
  std::ofstream out(path, std::ios::binary);
  if (!out) throw InputError(with_errno(path + ": cannot open for writing"));
  out << text;
  out.flush();
  if (!out) throw InputError(path + ": write error");
}

std::vector<std::string> load_id_list(const std::string& path) {
  std::vector<std::string> ids;
  for (const auto& [n, raw] : numbered_lines(read_text_file(path))) {
    const std::string v = trim(raw);
    if (v.empty() || v[0] == '#') continue;
    ids.push_back(v);
  }
  if (ids.empty()) throw InputError(path + ": id list is empty");
  return ids;
}

}  // namespace synth
