// Opening one evaluation set (EvalSetConfig): which files, which label (logit index) each has, and
// which logits count. Folder layouts:
//   wnid    <root>/<WordNet id>/**/<image>  (ImageNet val in class folders, ImageNet-Sketch, -R, -A)
//   index   <root>/<k>/**/<image>, k a position in index_ids or the class file (ImageNet-v2)
//   sorted  <root>/<any name>/**/<image>, sorted folder names are labels 0..n-1
//   idx     Fashion-MNIST IDX files, the t10k split
// Images are .jpg/.jpeg/.png (any case); files are sorted per class folder and folders by name, so
// a tree always gives the same order and `limit` the same prefix.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "data/dataset.hpp"

namespace synth {

// The class file as the evaluator sees it: ids in logit order.
struct ClassIds {
  std::string file;              // for messages
  std::vector<std::string> ids;  // row r = logit r
};

struct OpenedEvalSet {
  EvalSetConfig config;
  std::unique_ptr<Dataset> data;  // label(i) = logit index of image i; limited to config.limit
  // classes = present: the logits scored (ascending class rows that have a folder); else empty =
  // every logit of the model.
  std::vector<int64_t> scored;
  int64_t unknown_folders = 0;  // folders skipped because their id is not a class (unknown = skip)
  int64_t unknown_images = 0;   // images in those folders
};

// Lists the set's tree and labels its images. InputError naming the folder for an id that is not
// in the class file (unless unknown = skip), a folder that is not a class index (layout index),
// two folders naming the same class, a class without a folder when classes = complete, and for
// a set without images.
OpenedEvalSet open_eval_set(const EvalSetConfig& set, const ClassIds& classes);

}  // namespace synth
