// synthstream._core: the Python binding (pybind11, as torch's own extensions use it) over the C++
// stages. Nothing here computes: each function hands its arguments to the stage that stream-train
// uses, so Python and the CLI give the same bytes. The Python-facing classes are in __init__.py.
#include <torch/extension.h>

#include <string>
#include <vector>

#include "augment/simple_augment.hpp"
#include "augment/train_augment.hpp"
#include "config/load.hpp"
#include "core/host_memory.hpp"
#include "core/error.hpp"
#include "data/batch_stream.hpp"
#include "data/dataset.hpp"
#include "prompts/prompt_stream.hpp"
#include "prompts/templates.hpp"

namespace py = pybind11;

namespace {

// What a batch is for Python: (images uint8 NCHW, labels int64, indices int64), or None at the end.
py::object next_batch(synth::BatchStream& s) {
  std::optional<synth::StreamBatch> b;
  {
    // Generation and decoding run on the stream's own threads; waiting for them releases the GIL
    // so that other Python threads (a DataLoader's pin thread, logging) go on.
    py::gil_scoped_release nogil;
    b = s.next();
  }
  if (!b) return py::none();
  return py::make_tuple(b->images, b->labels, b->indices);
}

// Crops of a batch as stream-train makes them (augment.kind "simple": one group; "dino": global,
// local), keyed like the trainer by (run.seed, global index), on `device`.
std::vector<torch::Tensor> crops(const torch::Tensor& images, const torch::Tensor& indices, const synth::Config& cfg,
                                 const std::string& device) {
  if (images.dim() != 4 || images.scalar_type() != torch::kUInt8)
    throw synth::InputError("crops: images must be uint8 N x C x H x W, got " + std::string(images.toString()) + " of " +
                            std::to_string(images.dim()) + " dimensions");
  if (indices.dim() != 1 || indices.size(0) != images.size(0))
    throw synth::InputError("crops: indices must be one int64 per image (" + std::to_string(images.size(0)) + ")");
  // The augmentation reads HWC host bytes, as it reads ring slots.
  const torch::Tensor hwc = images.permute({0, 2, 3, 1}).to(torch::kCPU).contiguous();
  const torch::Tensor idx = indices.to(torch::kCPU).to(torch::kInt64).contiguous();
  const int64_t n = hwc.size(0), h = hwc.size(1), w = hwc.size(2), c = hwc.size(3);
  std::vector<synth::ImageView> views;
  std::vector<int64_t> labels(size_t(n), 0);
  for (int64_t i = 0; i < n; ++i)
    views.push_back(synth::ImageView{hwc.data_ptr<uint8_t>() + i * h * w * c, int(h), int(w), int(c),
                                     uint64_t(idx.data_ptr<int64_t>()[i])});
  std::vector<synth::CropGroup> groups;
  {
    py::gil_scoped_release nogil;
    groups = synth::augment_batch(cfg, cfg.run.seed, views, labels, torch::Device(device),
                                  synth::gpu_crop_dtype(cfg.train.precision));
  }
  std::vector<torch::Tensor> out;
  for (const auto& g : groups) out.push_back(g.images);
  return out;
}

// The evaluation transform of stream-eval (eval.resize, eval.crop, augment.mean/std) of a batch.
torch::Tensor eval_images(const torch::Tensor& images, const synth::Config& cfg) {
  if (images.dim() != 4 || images.scalar_type() != torch::kUInt8)
    throw synth::InputError("eval_images: images must be uint8 N x C x H x W");
  const torch::Tensor hwc = images.permute({0, 2, 3, 1}).to(torch::kCPU).contiguous();
  const int64_t n = hwc.size(0), h = hwc.size(1), w = hwc.size(2), c = hwc.size(3);
  torch::Tensor out = torch::empty({n, 3, cfg.eval.crop, cfg.eval.crop}, torch::kFloat32);
  for (int64_t i = 0; i < n; ++i)
    synth::eval_preprocess_into(synth::ImageView{hwc.data_ptr<uint8_t>() + i * h * w * c, int(h), int(w), int(c), 0},
                                cfg.eval.resize, cfg.eval.crop, cfg.augment.mean, cfg.augment.std,
                                out[i].data_ptr<float>());
  return out;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "synthstream's C++ stages (use the classes of the synthstream package)";
  // Bad input of every kind (config keys, files, weights) is synth::InputError: a ValueError in
  // Python carrying the CLI's message; other failures are RuntimeError.
  static py::exception<synth::InputError> input_error(m, "InputError", PyExc_ValueError);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const synth::InputError& e) {
      input_error(e.what());
    } catch (const synth::Error& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
    }
  });

  m.def("keep_freed_memory", &synth::keep_freed_memory,
        "glibc keeps freed blocks for reuse (mallopt), as the synthstream commands do (core/host_memory.hpp)");

  py::class_<synth::Config>(m, "Config")
      .def_property_readonly("source_file", [](const synth::Config& c) { return c.source_file; })
      .def_property_readonly("batch_size", [](const synth::Config& c) { return c.train.batch_size; })
      .def_property_readonly("total_images", [](const synth::Config& c) { return c.train.total_images; })
      .def_property_readonly("num_classes", [](const synth::Config& c) { return c.model.num_classes; })
      .def_property_readonly("seed", [](const synth::Config& c) { return c.run.seed; })
      .def("to_toml", &synth::to_toml);
  m.def("load_config", [](const std::string& path, const std::vector<std::string>& overrides) {
    return synth::load_config(path, overrides, synth::kTrainData);
  }, py::arg("path"), py::arg("overrides") = std::vector<std::string>{});

  // Opened once per Stream (the generator's models or the dataset), shared by the BatchStreams that
  // Stream builds at each load_state_dict or new iteration.
  py::class_<synth::TrainingSource, std::shared_ptr<synth::TrainingSource>>(m, "TrainingSource")
      .def(py::init([](const synth::Config& cfg) {
             py::gil_scoped_release nogil;
             return std::make_shared<synth::TrainingSource>(synth::open_training_source(cfg));
           }),
           py::arg("config"));

  py::class_<synth::BatchStream>(m, "BatchStream")
      .def(py::init([](std::shared_ptr<synth::TrainingSource> source, const synth::Config& cfg, int rank, int ranks,
                       uint64_t position, const std::string& ledger) {
             return std::make_unique<synth::BatchStream>(
                 std::move(source), cfg, rank, ranks, synth::StreamState{position, synth::Ledger::deserialize(ledger)});
           }),
           py::arg("source"), py::arg("config"), py::arg("rank"), py::arg("world_size"), py::arg("position") = 0,
           py::arg("ledger") = std::string("low=0;dup=0;sparse="))
      .def("next", &next_batch)
      .def_property_readonly("position", &synth::BatchStream::position)
      .def_property_readonly("end", &synth::BatchStream::end)
      .def_property_readonly("ledger", [](const synth::BatchStream& s) { return s.ledger().serialize(); })
      .def_property_readonly("source", [](const synth::BatchStream& s) { return s.source().name; });

  m.def("ledger_report", [](const std::string& text, uint64_t end) {
    const synth::Ledger l = synth::Ledger::deserialize(text);
    py::dict d;
    d["count"] = l.count();
    d["duplicates"] = l.duplicates();
    d["gaps"] = l.gap_count(end);
    d["exactly_once"] = l.exactly_once(end);
    return d;
  });

  m.def("eval_images", &eval_images, py::arg("images"), py::arg("config"));
  m.def("crops", &crops, py::arg("images"), py::arg("indices"), py::arg("config"), py::arg("device") = "cpu");

  py::class_<synth::PromptStream>(m, "PromptStream")
      .def(py::init([](const synth::Config& cfg) { return synth::PromptStream::of_run(cfg); }))
      .def("prompt", [](const synth::PromptStream& s, uint64_t i) { return s.at(i).prompt; })
      .def("class_of", &synth::PromptStream::class_at)
      .def("template_of", [](const synth::PromptStream& s, uint64_t i) { return synth::template_name(s.at(i).prompt_template); })
      .def_property_readonly("class_names", [](const synth::PromptStream& s) {
        std::vector<std::string> names;
        for (const auto& c : s.classes()) names.push_back(c.name);
        return names;
      });

  py::class_<synth::Dataset, std::shared_ptr<synth::Dataset>>(m, "Dataset")
      .def("__len__", &synth::Dataset::size)
      .def_property_readonly("num_classes", &synth::Dataset::num_classes)
      .def("label", &synth::Dataset::label)
      .def("image", [](const synth::Dataset& d, int64_t i) {
        if (i < 0 || i >= d.size())
          throw py::index_error("image " + std::to_string(i) + " of " + std::to_string(d.size()));
        const synth::ImageU8 img = d.load(i);
        return torch::from_blob(const_cast<uint8_t*>(img.pixels.data()), {img.height, img.width, img.channels},
                                torch::kUInt8).permute({2, 0, 1}).clone();
      });
  m.def("eval_dataset", [](const std::string& path, const std::vector<std::string>& overrides) {
    const synth::Config cfg = synth::load_config(path, overrides, synth::kEvalSets);
    std::shared_ptr<synth::Dataset> d = synth::open_eval_dataset(cfg);
    if (!d) throw synth::InputError(path + ": eval.source = \"none\": the config has no evaluation set");
    return d;
  }, py::arg("path"), py::arg("overrides") = std::vector<std::string>{});
}
