// The evaluation sets of a config: the single eval.source/eval.path set (when eval.source is not
// "none") first, then every eval.sets entry in order. An entry is one line of text,
//
//   NAME=PATH[,option=value]...     e.g. "imagenet-r=/data/imagenet-r,classes=present,unknown=skip"
//
// with options layout (wnid | index | sorted | idx), index_ids (a file), classes (complete |
// partial | present), unknown (error | skip) and limit (integer >= 0); see EvalSetConfig and
// docs/EVALUATION.md. The same text is what `stream-eval --eval` takes. A path cannot contain ','.
#pragma once
#include <string>
#include <vector>

#include "config/config.hpp"

namespace synth {

// Parses one entry; InputError quoting the entry for bad syntax, an unknown or repeated option or
// a value out of its choices.
EvalSetConfig parse_eval_set(const std::string& entry);

// The class file whose row r is logit r of the model: data.class_file, else prompts.class_file
// when data.source = "synthetic" (the stream's labels are its rows), else "" (then only the
// layouts sorted and idx can label images).
std::string eval_class_file(const Config& cfg);

// Every set cfg evaluates on (empty when there is none). The eval.source set is named
// "fmnist-t10k" or after its folder; it keeps its historical meaning: labels from the class file
// when there is one (layout wnid) or the sorted folder names (layout sorted), classes = partial,
// limit = eval.limit.
std::vector<EvalSetConfig> eval_sets(const Config& cfg);

// What load_config checks once: entries parse, names are unique (the eval.source set included),
// paths and index_ids files exist (only with check_paths: a command that does not evaluate skips
// them), and wnid/index sets have a class file. InputError naming the entry; load_config prefixes
// where eval.sets was set.
void check_eval_sets(const Config& cfg, bool check_paths = true);

}  // namespace synth
