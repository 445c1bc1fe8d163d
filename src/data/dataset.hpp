// Real-image datasets: random access by position, so a seeded permutation decides the order and
// a restart can resume at any position. Implementations: Fashion-MNIST IDX (idx_dataset.cpp) and
// ImageFolder trees (image_folder.cpp).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/image.hpp"

namespace synth {

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  virtual int num_classes() const = 0;
  virtual int label(int64_t i) const = 0;
  // Loads image i as RGB (gray sources replicated to 3 channels). Throws InputError naming the
  // file for unreadable/corrupt images.
  virtual ImageU8 load(int64_t i) const = 0;
  virtual std::string describe(int64_t i) const = 0;  // file name (or file:record) for errors
  virtual std::vector<std::string> class_names() const = 0;
};

// Fashion-MNIST style IDX pair in `dir`: split is "train" or "t10k"; gzip or plain files.
std::unique_ptr<Dataset> open_idx_dataset(const std::string& dir, const std::string& split);
// ImageFolder: one sub-folder per class. Folder names are WordNet ids looked up in `class_ids`
// (when non-empty; an unknown folder is an InputError), else sorted folder names become labels.
std::unique_ptr<Dataset> open_image_folder(const std::string& root, const std::vector<std::string>& class_ids = {});

// The listing rules of ImageFolder trees, shared with the evaluation sets (eval/eval_set.hpp).
// Class folders: the sub-folders of root that are not hidden (.cache, .DS_Store), sorted;
// InputError naming root when it cannot be listed or has none (`what` names the tree in the
// message, e.g. "evaluation set").
std::vector<std::string> class_folders(const std::string& root, const std::string& what);
// Images: the .jpg/.jpeg/.png files (any case) anywhere below folder, sorted by path, so a tree
// always gives the same order whatever the file system's directory order.
std::vector<std::string> images_under(const std::string& folder);

}  // namespace synth

namespace synth {
struct Config;

// The datasets a config names. data.source = fmnist reads the "train" IDX split of data.train_path,
// image_folder its tree; eval.source likewise with the "t10k" split of eval.path. ImageFolder labels
// follow the ids of data.class_file when it is set (so training and evaluation agree), else the
// sorted folder names. data.limit / eval.limit keep the first N items. data.source = synthetic has
// no dataset (nullptr), nor has eval.source = none.
std::unique_ptr<Dataset> open_train_dataset(const Config& cfg);
std::unique_ptr<Dataset> open_eval_dataset(const Config& cfg);

// The first `limit` items of d (all of them when limit is 0 or at least d's size).
std::unique_ptr<Dataset> first_items(std::unique_ptr<Dataset> d, int64_t limit);

}  // namespace synth
