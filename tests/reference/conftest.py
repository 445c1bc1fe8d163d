"""pytest set-up of the live reference suite (README.md here): the measured errors of every
comparison are collected and printed at the end of the run (and written as JSON lines to
$SYNTH_REFERENCE_REPORT when set), so a run shows how far from each tolerance the code is."""
import json
import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import refsupport  # noqa: E402

_MEASURED = refsupport.MEASURED


def pytest_configure(config):
    # The oracles run on the CPU in float32; no GPU is needed or used.
    torch.set_grad_enabled(False)
    # SYNTH_REFERENCE_THREADS=N caps the intra-op threads of the oracles and (OMP_NUM_THREADS) of our
    # binaries. On a machine whose cores are busy with other work, 1 is faster than oversubscribed
    # OpenMP teams (a full-size U-Net call: 3.5 s with 1 thread, 7 s with 2, on 2 loaded cores).
    threads = os.environ.get("SYNTH_REFERENCE_THREADS")
    if threads:
        torch.set_num_threads(int(threads))
        os.environ["OMP_NUM_THREADS"] = threads


def pytest_terminal_summary(terminalreporter):
    if not _MEASURED:
        return
    terminalreporter.section("reference suite: largest measured error per family and check")
    worst = {}
    for m in _MEASURED:
        key = (m["family"], m["what"])
        if key not in worst or m["value"] > worst[key]["value"]:
            worst[key] = m
    for (family, what), m in sorted(worst.items()):
        count = sum(1 for x in _MEASURED if (x["family"], x["what"]) == (family, what))
        note = ", known gap: strict xfail" if m["known_gap"] else ""
        terminalreporter.write_line(f"{family:10s} {what:48s} max {m['value']:.3g} (tolerance {m['tolerance']:.3g}, "
                                    f"{count} measured{note})")
    path = os.environ.get("SYNTH_REFERENCE_REPORT")
    if path:
        with open(path, "w") as f:
            for m in _MEASURED:
                f.write(json.dumps(m) + "\n")


@pytest.fixture(scope="session")
def hf_tokenizer():
    return refsupport.hf_tokenizer()
