// stream-classes: writes a class file (configs/classes/README.md) for a list of ImageNet ids from
// WordNet 3.0's noun database, so that runs need no WordNet at run time.
//   stream-classes --wordnet /usr/share/wordnet/data.noun --ids configs/data/imagenet100_wnids.txt
//                  --out configs/classes/imagenet100.tsv
#include <cstdio>

#include "app/cli.hpp"
#include "prompts/classes.hpp"
#include "prompts/wordnet.hpp"

int main(int argc, char** argv) {
  return synth::cli::guarded_main("stream-classes", [&] {
    const synth::cli::Args args(argc, argv, {"help"}, {"wordnet", "ids", "out"});
    if (args.has("help")) {
      std::printf(
          "usage: stream-classes --wordnet DATA_NOUN --ids ID_LIST --out CLASS_FILE\n"
          "Writes id, name (lemmas), hypernyms (lemmas of direct hypernyms) and definition (gloss\n"
          "without examples) for every WordNet noun id of ID_LIST, one class per line, TSV.\n");
      return 0;
    }
    for (const char* key : {"wordnet", "ids", "out"})
      if (!args.has(key)) throw synth::InputError(std::string("missing --") + key + " (see --help)");
    if (!args.positional().empty()) throw synth::InputError("unexpected argument '" + args.positional()[0] + "'");
    const std::string ids_path = args.get("ids");
    const auto ids = synth::load_id_list(ids_path);
    const synth::WordNetNouns wordnet(args.get("wordnet"));
    std::vector<synth::ClassInfo> classes;
    classes.reserve(ids.size());
    for (const auto& id : ids) classes.push_back(wordnet.class_info(id));
    const std::string comment = "Classes of " + ids_path +
                                " from WordNet 3.0 (data.noun), written by stream-classes.\n"
                                "Format: configs/classes/README.md. Row k = label k.";
    synth::save_class_file(args.get("out"), classes, comment);
    std::printf("wrote %zu classes to %s\n", classes.size(), args.get("out").c_str());
    return 0;
  });
}
