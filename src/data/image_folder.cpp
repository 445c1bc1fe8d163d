// ImageFolder datasets: <root>/<class folder>/**/<image>.{jpg,jpeg,png}. File lists are sorted so
// the same tree always gives the same positions, whatever the file system's directory order.
#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>
#include <string>
#include <system_error>

#include "core/error.hpp"
#include "data/dataset.hpp"

namespace synth {

namespace {

namespace fs = std::filesystem;

bool is_image_name(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png";
}

class ImageFolder : public Dataset {
 public:
  ImageFolder(const std::string& root, const std::vector<std::string>& class_ids) : root_(root) {
    std::error_code ec;
    if (!fs::is_directory(root, ec)) throw InputError(root + ": ImageFolder root is not a directory");
    const std::vector<std::string> folders = class_folders(root, "ImageFolder root");

    std::map<std::string, int> label_of;
    if (!class_ids.empty()) {
      for (size_t i = 0; i < class_ids.size(); ++i) label_of.emplace(class_ids[i], int(i));
      names_ = class_ids;
    } else {
      for (size_t i = 0; i < folders.size(); ++i) label_of.emplace(folders[i], int(i));
      names_ = folders;
    }
    for (const std::string& folder : folders) {
      auto it = label_of.find(folder);
      if (it == label_of.end())
        throw InputError((fs::path(root) / folder).string() + ": folder name '" + folder + "' is not in the class list (" +
                         std::to_string(class_ids.size()) + " classes)");
      std::vector<std::string> files = images_under((fs::path(root) / folder).string());
      for (std::string& f : files) {
        files_.push_back(std::move(f));
        labels_.push_back(it->second);
      }
    }
    if (files_.empty()) throw InputError(root + ": ImageFolder has no .jpg/.jpeg/.png files");
  }

  int64_t size() const override { return int64_t(files_.size()); }
  int num_classes() const override { return int(names_.size()); }
  int label(int64_t i) const override { return labels_[checked(i)]; }
  ImageU8 load(int64_t i) const override { return decode_image_file(files_[checked(i)]); }
  std::string describe(int64_t i) const override { return files_[checked(i)]; }
  std::vector<std::string> class_names() const override { return names_; }

 private:
  size_t checked(int64_t i) const {
    if (i < 0 || i >= int64_t(files_.size()))
      throw Error(root_ + ": item " + std::to_string(i) + " outside [0, " + std::to_string(files_.size()) + ")");
    return size_t(i);
  }

  std::string root_;
  std::vector<std::string> files_, names_;
  std::vector<int> labels_;
};

}  // namespace

std::vector<std::string> class_folders(const std::string& root, const std::string& what) {
  std::error_code ec;
  std::vector<std::string> folders;
  for (const fs::directory_entry& e : fs::directory_iterator(root, ec)) {
    const std::string name = e.path().filename().string();
    if (name.empty() || name[0] == '.') continue;
    if (e.is_directory(ec)) folders.push_back(name);
  }
  if (ec) throw InputError(root + ": cannot list " + what + ": " + ec.message());
  std::sort(folders.begin(), folders.end());
  if (folders.empty()) throw InputError(root + ": " + what + " has no class folders");
  return folders;
}

std::vector<std::string> images_under(const std::string& folder) {
  std::error_code ec;
  std::vector<std::string> files;
  for (auto walk = fs::recursive_directory_iterator(folder, ec); !ec && walk != fs::recursive_directory_iterator();
       walk.increment(ec)) {
    if (walk->is_regular_file(ec) && is_image_name(walk->path())) files.push_back(walk->path().string());
  }
  if (ec) throw InputError(folder + ": cannot list folder: " + ec.message());
  std::sort(files.begin(), files.end());
  return files;
}

std::unique_ptr<Dataset> open_image_folder(const std::string& root, const std::vector<std::string>& class_ids) {
  return std::make_unique<ImageFolder>(root, class_ids);
}

}  // namespace synth
