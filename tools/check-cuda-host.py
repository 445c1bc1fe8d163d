#!/usr/bin/env python3
"""Syntax-checks the CUDA flavor's host C++ on a machine without a GPU build of LibTorch.

    tools/check-cuda-host.py [BUILD_DIR]      (default: build, a configured CPU-flavor build)

The CPU flavor never compiles the *_gpu.cpp host wrappers, the tests named test_*_gpu.cpp, or the
code under SYNTH_CUDA / SYNTH_WITH_CUDA (ProcessGroupNCCL, the fused DINO path of the trainer).
This compiles each of them with `-fsyntax-only`, using the compile command CMake wrote for a file
of the same folder (compile_commands.json) plus the CUDA flavor's definitions, the CUDA toolkit's
headers (/usr/local/cuda or $CUDA_HOME) and kernels/. Debian's LibTorch 1.13 ships the c10/cuda,
ATen/cuda and ProcessGroupNCCL headers, so this catches most mistakes before a GPU session; the
real CUDA build (LibTorch 2.x) still decides. Exit status 0 when every file compiles.
"""
import concurrent.futures
import json
import os
import pathlib
import re
import shlex
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
CUDA_HOME = pathlib.Path(os.environ.get("CUDA_HOME", "/usr/local/cuda"))
DEFINES = ["-DSYNTH_CUDA", "-DSYNTH_WITH_CUDA=1", "-DUSE_C10D_NCCL", "-DUSE_CUDA"]


def cuda_files():
    """Host files that only the CUDA flavor compiles, or compiles differently."""
    files = set()
    for folder in ("src", "tests", "bench"):
        for path in (ROOT / folder).rglob("*.cpp"):
            text = path.read_text(errors="replace")
            if path.stem.endswith("_gpu") or re.search(r"\bSYNTH_(WITH_)?CUDA\b", text):
                files.add(path)
    return sorted(files)


def base_command(commands, path):
    """The compile command of `path`, or else of a file in the same folder, without output flags."""
    by_file = {pathlib.Path(c["file"]).resolve(): c for c in commands}
    entry = by_file.get(path)
    if entry is None:
        siblings = [c for f, c in by_file.items() if f.parent == path.parent]
        if not siblings:
            return None
        entry = siblings[0]
    args = shlex.split(entry["command"]) if "command" in entry else list(entry["arguments"])
    out, skip = [], False
    for a in args[1:]:
        if skip:
            skip = False
            continue
        if a in ("-o", "-c", "-include"):
            skip = True  # the precompiled header was built without the CUDA definitions
            continue
        if a == entry["file"] or a.endswith(".cpp"):
            continue
        out.append(a)
    return [args[0]] + out, entry["directory"]


def main() -> int:
    build = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "build").resolve()
    db = build / "compile_commands.json"
    if not db.is_file():
        print(f"{db}: not found; configure the CPU flavor first (tools/build.sh)", file=sys.stderr)
        return 2
    if not (CUDA_HOME / "include" / "cuda_runtime.h").is_file():
        print(f"{CUDA_HOME}/include/cuda_runtime.h: not found; set CUDA_HOME", file=sys.stderr)
        return 2
    commands = json.loads(db.read_text())
    # A CPU build of LibTorch lacks the one header its CMake generates for c10_cuda (it only says
    # whether c10_cuda is a shared library); a stand-in goes into the build folder.
    shim = build / "cuda-host-check" / "include"
    macros = shim / "c10" / "cuda" / "impl" / "cuda_cmake_macros.h"
    macros.parent.mkdir(parents=True, exist_ok=True)
    macros.write_text("#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n")
    def check(path):
        base = base_command(commands, path)
        if base is None:
            return path, None
        cmd, cwd = base
        cmd += DEFINES + [f"-I{CUDA_HOME}/include", f"-idirafter{shim}", f"-I{ROOT}/kernels", f"-I{ROOT}/tests",
                          "-fsyntax-only", str(path)]
        return path, subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)

    failed = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for path, result in pool.map(check, cuda_files()):
            rel = path.relative_to(ROOT)
            if result is None:
                print(f"skip {rel}: no compile command in its folder")
                continue
            print(f"{'ok  ' if result.returncode == 0 else 'FAIL'} {rel}")
            if result.returncode != 0:
                failed += 1
                sys.stdout.write(result.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
