#include "eval/eval_set.hpp"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>
#include <set>
#include <system_error>

#include "core/error.hpp"
#include "io/image.hpp"
#include "prompts/classes.hpp"

namespace synth {
namespace {

namespace fs = std::filesystem;

class FolderSet final : public Dataset {
 public:
  FolderSet(std::vector<std::string> files, std::vector<int> labels, std::vector<std::string> names)
      : files_(std::move(files)), labels_(std::move(labels)), names_(std::move(names)) {}
  int64_t size() const override { return int64_t(files_.size()); }
  int num_classes() const override { return int(names_.size()); }
  int label(int64_t i) const override { return labels_.at(size_t(i)); }
  ImageU8 load(int64_t i) const override { return decode_image_file(files_.at(size_t(i))); }
  std::string describe(int64_t i) const override { return files_.at(size_t(i)); }
  std::vector<std::string> class_names() const override { return names_; }

 private:
  std::vector<std::string> files_;
  std::vector<int> labels_;
  std::vector<std::string> names_;
};

// Position k of a folder named by a class index: decimal digits only, below `count`; -1 otherwise.
int64_t class_index(const std::string& folder, size_t count) {
  const auto digit = [](unsigned char c) { return std::isdigit(c) != 0; };
  if (folder.empty() || folder.size() > 9 || !std::all_of(folder.begin(), folder.end(), digit)) return -1;
  const int64_t k = std::stoll(folder);
  return k < int64_t(count) ? k : -1;
}

std::unique_ptr<Dataset> open_folders(const EvalSetConfig& set, const ClassIds& classes, OpenedEvalSet& out) {
  const std::vector<std::string> folders = class_folders(set.path, "evaluation set");
  const fs::path root(set.path);
  const bool sorted = set.layout == "sorted", index = set.layout == "index";
  if (!sorted && classes.ids.empty())
    throw InputError(set.path + ": evaluation set '" + set.name + "' (layout " + set.layout +
                     ") needs a class file mapping ids to logits");
  std::map<std::string, int> row_of;
  for (size_t r = 0; r < classes.ids.size(); ++r) row_of.emplace(classes.ids[r], int(r));
  const std::string index_file = set.index_ids.empty() ? classes.file : set.index_ids;
  const std::vector<std::string> index_ids =
      !index ? std::vector<std::string>{} : set.index_ids.empty() ? classes.ids : load_id_list(set.index_ids);

  std::vector<std::string> files;
  std::vector<int> labels;
  std::map<int, std::string> folder_of_row;
  for (size_t f = 0; f < folders.size(); ++f) {
    const std::string& folder = folders[f];
    const fs::path dir = root / folder;
    int row = int(f);
    if (!sorted) {
      std::string id = folder;
      if (index) {
        const int64_t k = class_index(folder, index_ids.size());
        if (k < 0)
          throw InputError(dir.string() + ": folder name '" + folder + "' is not a class index (0.." +
                           std::to_string(index_ids.size() - 1) + ", positions in " + index_file + ")");
        id = index_ids[size_t(k)];
      }
      const auto it = row_of.find(id);
      if (it == row_of.end()) {
        if (set.unknown == "skip") {
          ++out.unknown_folders;
          out.unknown_images += int64_t(images_under(dir.string()).size());
          continue;
        }
        throw InputError(dir.string() + ": class folder '" + folder + "'" + (index ? " (id " + id + ")" : "") +
                         " is not a class of " + classes.file + " (" + std::to_string(classes.ids.size()) +
                         " classes); add unknown=skip to the set '" + set.name + "' to skip such folders");
      }
      row = it->second;
    }
    const auto [other, fresh] = folder_of_row.emplace(row, folder);
    if (!fresh)
      throw InputError(dir.string() + ": folders '" + other->second + "' and '" + folder + "' both name class " +
                       classes.ids[size_t(row)]);
    for (std::string& file : images_under(dir.string())) {
      files.push_back(std::move(file));
      labels.push_back(row);
    }
  }

  if (!sorted && set.classes == "complete" && folder_of_row.size() < classes.ids.size()) {
    size_t r = 0;
    while (folder_of_row.count(int(r))) ++r;
    std::string folder = classes.ids[r];
    if (index) {
      const auto at = std::find(index_ids.begin(), index_ids.end(), classes.ids[r]);
      folder = at == index_ids.end() ? "(none: " + classes.ids[r] + " is not in " + index_file + ")"
                                     : std::to_string(at - index_ids.begin());
    }
    throw InputError((root / folder).string() + ": no folder for class " + classes.ids[r] + " of " + classes.file +
                     " (" + std::to_string(classes.ids.size() - folder_of_row.size()) + " of " +
                     std::to_string(classes.ids.size()) + " classes missing); set '" + set.name +
                     "' is complete: use classes=partial or classes=present for a set with only some classes");
  }
  if (set.classes == "present")
    for (const auto& [r, folder] : folder_of_row) out.scored.push_back(r);
  if (files.empty())
    throw InputError(set.path + ": no .jpg/.jpeg/.png images" +
                     std::string(out.unknown_folders > 0 ? " outside the skipped folders" : ""));
  return std::make_unique<FolderSet>(std::move(files), std::move(labels), sorted ? folders : classes.ids);
}

}  // namespace

OpenedEvalSet open_eval_set(const EvalSetConfig& set, const ClassIds& classes) {
  OpenedEvalSet out;
  out.config = set;
  if (set.layout == "idx") {
    out.data = open_idx_dataset(set.path, "t10k");
    if (out.data->size() == 0) throw InputError(set.path + ": evaluation set holds no images");
    if (set.classes == "present") {
      std::set<int64_t> rows;
      for (int64_t i = 0; i < out.data->size(); ++i) rows.insert(out.data->label(i));
      out.scored.assign(rows.begin(), rows.end());
    }
  } else {
    out.data = open_folders(set, classes, out);
  }
  out.data = first_items(std::move(out.data), set.limit);
  return out;
}

}  // namespace synth
