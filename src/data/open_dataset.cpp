#include <algorithm>

#include "config/config.hpp"
#include "core/error.hpp"
#include "data/dataset.hpp"
#include "prompts/classes.hpp"

namespace synth {
namespace {

// The first `limit` items of another dataset (data.limit, eval.limit).
class Prefix final : public Dataset {
 public:
  Prefix(std::unique_ptr<Dataset> inner, int64_t limit) : inner_(std::move(inner)), n_(std::min(limit, inner_->size())) {}
  int64_t size() const override { return n_; }
  int num_classes() const override { return inner_->num_classes(); }
  int label(int64_t i) const override { return inner_->label(i); }
  ImageU8 load(int64_t i) const override { return inner_->load(i); }
  std::string describe(int64_t i) const override { return inner_->describe(i); }
  std::vector<std::string> class_names() const override { return inner_->class_names(); }

 private:
  std::unique_ptr<Dataset> inner_;
  int64_t n_;
};

std::vector<std::string> class_ids(const Config& cfg) {
  std::vector<std::string> ids;
  if (cfg.data.class_file.empty()) return ids;
  for (const ClassInfo& c : load_class_file(cfg.data.class_file)) {
    if (c.id.empty())
      throw InputError(cfg.data.class_file + ": class '" + c.name +
                       "' has no WordNet id; ImageFolder labels need an id per class (data.class_file)");
    ids.push_back(c.id);
  }
  return ids;
}

std::unique_ptr<Dataset> open(const std::string& source, const std::string& path, const std::string& split,
                              int64_t limit, const Config& cfg) {
  std::unique_ptr<Dataset> d;
  if (source == "fmnist")
    d = open_idx_dataset(path, split);
  else if (source == "image_folder")
    d = open_image_folder(path, class_ids(cfg));
  else
    return nullptr;
  if (d->size() == 0) throw InputError("'" + path + "' holds no images");
  return first_items(std::move(d), limit);
}

}  // namespace

std::unique_ptr<Dataset> first_items(std::unique_ptr<Dataset> d, int64_t limit) {
  if (limit > 0 && limit < d->size()) d = std::make_unique<Prefix>(std::move(d), limit);
  return d;
}

std::unique_ptr<Dataset> open_train_dataset(const Config& cfg) {
  return open(cfg.data.source, cfg.data.train_path, "train", cfg.data.limit, cfg);
}

std::unique_ptr<Dataset> open_eval_dataset(const Config& cfg) {
  return open(cfg.eval.source, cfg.eval.path, "t10k", cfg.eval.limit, cfg);
}

}  // namespace synth
