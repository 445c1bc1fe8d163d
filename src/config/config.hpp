// One typed config struct per stage, filled from TOML once at start-up by load_config()
// (config.cpp) and validated there; stages never read TOML themselves. Every key is documented in
// configs/reference.toml; the defaults here are the defaults there.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace synth {

// [run]: naming, seeding and reporting of one run.
struct RunConfig {
  std::string name = "run";          // run directory is <dir>/<name>
  std::string dir = "runs";
  uint64_t seed = 0;                 // root of every counter-based RNG key
  double progress_seconds = 5.0;     // one console progress line this often
  std::string note;                  // logged at the start of the run (e.g. "random weights: chance accuracy")
  int64_t sample_every_images = 0;   // contact sheets of streamed images and their crops (0 = never)
};

// [data]: where training images come from before the ring. source = "fmnist" | "image_folder" | "synthetic".
struct DataConfig {
  std::string source = "fmnist";
  std::string train_path = "/usr/share/datasets/fashion-mnist";  // IDX folder or ImageFolder root
  std::string class_file;            // optional: class list deciding folder-name -> label mapping
  std::string on_corrupt = "error";  // "error" stops with the file name; "skip" counts and goes on
  int64_t limit = 0;                 // use only the first N training images (0 = all)
  int decode_threads = 2;            // producer threads decoding into the ring
};

// [ring]: the lock-free buffer between producers (decoders, generators) and the trainer.
struct RingConfig {
  int slots = 512;
  int max_height = 512;              // slot capacity: max_height * max_width * 3 bytes
  int max_width = 512;
};

// [augment.dino]: DINO multi-crop (Caron et al. 2021, main_dino.py DataAugmentationDINO). Global
// crop g uses DINO's first global transform when g is even and the second when g is odd, so
// 2k global crops are k DINO pairs; crops are numbered globals first, then locals.
struct DinoConfig {
  int global_crops = 1;
  int global_size = 224;
  double global_scale_min = 0.25, global_scale_max = 1.0;
  int local_crops = 8;
  int local_size = 96;
  double local_scale_min = 0.05, local_scale_max = 0.25;
  double ratio_min = 3.0 / 4.0, ratio_max = 4.0 / 3.0;
  double flip_p = 0.5;
  double jitter_p = 0.8;             // colour jitter applied with this probability
  double brightness = 0.4, contrast = 0.4, saturation = 0.2, hue = 0.1;
  double grayscale_p = 0.2;
  double blur_p_first = 1.0, blur_p_second = 0.1, blur_p_local = 0.5;
  double blur_sigma_min = 0.1, blur_sigma_max = 2.0;
  double solarize_p = 0.2;           // second-type global crops only
};

// [augment]: the trainer-side augmentation. kind = "simple" (random resized crop + flip) | "dino".
struct AugmentConfig {
  std::string kind = "simple";
  int crop_size = 224;
  double scale_min = 0.08, scale_max = 1.0;
  double ratio_min = 3.0 / 4.0, ratio_max = 4.0 / 3.0;
  double flip_p = 0.5;
  std::vector<double> mean = {0.485, 0.456, 0.406};
  std::vector<double> std = {0.229, 0.224, 0.225};
  DinoConfig dino;                   // used when kind = "dino" (mean/std above normalize its crops)
};

// [model]: torchvision ResNet; width scales every stage's channels for tiny runs.
struct ModelConfig {
  std::string arch = "resnet50";     // resnet18 | resnet34 | resnet50
  double width = 1.0;
  int num_classes = 100;
};

// [optim]: SGD with warm-up then cosine (Goyal et al. 2017; Loshchilov & Hutter 2017).
struct OptimConfig {
  double lr = 0.1;                   // base lr at batch 256; actual = lr * batch / 256
  double momentum = 0.9;
  double weight_decay = 1e-4;
  bool decay_bn_and_bias = false;
  double warmup_fraction = 0.1;      // of total steps
  double final_lr_fraction = 0.0;    // cosine floor as a fraction of the peak lr
  double label_smoothing = 0.0;
};

// [train]: the loop itself.
struct TrainConfig {
  int64_t batch_size = 256;          // global batch (images, not crops)
  int64_t total_images = 12668900;   // run length in images (the stream has no epochs)
  std::string device = "cpu";        // cpu | cuda
  std::string precision = "fp32";    // fp32 | fp16 | bf16
  int threads = 0;                   // intra-op threads (0 = LibTorch default)
  int64_t checkpoint_every_images = 0;  // 0 = only at the end
  int keep_checkpoints = 2;
};

// One evaluation set: an entry of eval.sets, or the single eval.source/eval.path set. Entries are
// written "NAME=PATH[,option=value]..." (one syntax for the config and `stream-eval --eval`), kept
// as text in EvalConfig::sets so the flat key table binds them, and turned into this struct by
// eval_sets() (config/eval_sets.hpp), which load_config already ran once to validate them.
struct EvalSetConfig {
  std::string name;                  // row name in results and metrics
  std::string path;                  // IDX folder (layout idx) or ImageFolder root
  // How folders name classes: wnid (WordNet id, looked up in the class file) | index (position in
  // index_ids) | sorted (sorted folder names are labels 0..n-1) | idx (Fashion-MNIST t10k split).
  std::string layout = "wnid";
  std::string index_ids;             // layout index: id list, line k names folder "k" ("" = the class file's order)
  // complete: logits over all classes, every class of the class file must have a folder;
  // partial: the same without the folder check; present: logits restricted to the classes that
  // have a folder (ImageNet-R, ImageNet-A: 200 of the 1000 classes).
  std::string classes = "complete";
  std::string unknown = "error";     // folder whose id is not in the class file: error | skip (counted)
  int64_t limit = 0;                 // first N images in sorted file order (0 = eval.limit)
};

// [eval]: periodic top-1/top-5 on real held-out images.
struct EvalConfig {
  std::string source = "fmnist";     // fmnist | image_folder | none (no evaluation; eval.path unused)
  std::string path = "/usr/share/datasets/fashion-mnist";
  std::vector<std::string> sets;     // more sets, "NAME=PATH[,option=value]..." (EvalSetConfig)
  int64_t every_images = 0;          // 0 = only at the end
  int64_t limit = 0;                 // 0 = whole set
  int64_t batch_size = 256;
  int resize = 256;                  // shorter side before centre crop (ImageFolder sets)
  int crop = 224;
  std::string on_corrupt = "error";  // unreadable image: "error" stops naming it; "skip" counts it in the result
  int decode_threads = 4;            // threads decoding and preprocessing evaluation images
  int64_t cache_mb = 1024;           // MiB of decoded sets kept between evaluations: each that still fits, in order
};

// [prompts]: the prompt stream of synthetic runs (the paper's six templates, Sariyildiz et al.
// 2023, Sec. 3.1). The stream's seed is run.seed.
struct PromptsConfig {
  std::string class_file = "configs/classes/imagenet100.tsv";
  std::string scene_file = "configs/data/places365_categories.txt";  // read only if a scene template is used
  // Template names (src/prompts/templates.hpp) and their mixture weights; empty weights = uniform.
  std::vector<std::string> templates = {"c", "c_hc", "c_dc", "multiple_c_hc", "multiple_different_c_hc", "c_hc_inside_b"};
  std::vector<double> template_weights;
  int64_t block_multiplier = 1;      // k: every block of N*k indices holds each class k times
  std::string class_weights_file;    // "<id or name> <weight>" per line; empty = balanced classes
};

// [generator]: Stable Diffusion v1 generating the stream when data.source = "synthetic" (the
// paper's protocol: SD v1.4, PNDM 50 steps, guidance 7.5, 512x384; Sariyildiz et al. 2023, Sec. 4).
struct GeneratorConfig {
  std::string model_dir;             // diffusers SD v1 directory (model_index.json, unet/, vae/, ...)
  std::string scheduler = "pndm";    // pndm | ddim | dpmpp2m | euler
  int64_t steps = 50;
  double guidance = 7.5;
  int64_t width = 512, height = 384; // pixels, multiples of the VAE's upscale factor (8)
  int64_t batch_size = 8;            // images per sampler call
  std::string device = "cpu";        // cpu | cuda
  std::string dtype = "fp32";        // fp32 | fp16 (fp16 needs cuda)
  int instances = 1;                 // generator threads, each with its own model copy
  // 0: the stream (image i is new for every i). N > 0: image i is image i mod N, a fixed synthetic
  // dataset of N images repeated, for comparing with the paper's fixed-dataset setting.
  int64_t unique_images = 0;
};

// [dist]: how the ranks of a job (torchrun / Slurm environment, src/distributed/env.hpp) share the work.
// Colocated (trainer_ranks = 0): every rank generates or decodes its own shard of each global batch
// and trains on it. Dedicated (trainer_ranks = k > 0): ranks [0, k) train, ranks [k, world) only
// generate and send their images to the trainers (synthetic source only).
struct DistConfig {
  std::string backend = "auto";      // auto (nccl for cuda training, else gloo) | gloo | nccl
  int trainer_ranks = 0;             // 0 = every rank trains
  double timeout_s = 1800;           // a collective or rendezvous waiting longer fails the run
  double lost_rank_s = 30;           // a rank silent this long is lost: every rank exits 3 (watchdog.hpp)
  int64_t bucket_mb = 25;            // gradient all-reduce bucket size (PyTorch DDP's default)
  bool sync_batch_norm = true;       // batch statistics over all trainer ranks (the paper's SyncBN)
};

struct Config {
  RunConfig run;
  DataConfig data;
  RingConfig ring;
  AugmentConfig augment;
  ModelConfig model;
  OptimConfig optim;
  TrainConfig train;
  EvalConfig eval;
  PromptsConfig prompts;
  GeneratorConfig generator;
  DistConfig dist;
  std::string source_file;           // the TOML file it came from
};

}  // namespace synth
