"""Faults across hosts (issue 18): stream-train ranks on two or three "hosts", network namespaces
joined by veth pairs to a bridge, rank 0 (and the c10d store it serves) on host 0. Each test asserts
on exit codes, on the time survivors take to stop, and on the ledger (metrics.jsonl's summary):
never only on "it ran".

Needs root (CAP_NET_ADMIN) and iproute2: elsewhere every test is skipped with the reason. Run by
CTest as test_hosts; alone: SYNTH_BUILD_DIR=build .venv/bin/python -m pytest tests/distributed -rs
"""
import json
import os
import pathlib
import shutil
import signal
import subprocess
import time
import itertools
import uuid

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("SYNTH_BUILD_DIR", REPO / "build")).resolve()
EXE = BUILD / "bin" / "stream-train"
FMNIST = pathlib.Path(os.environ.get("SYNTH_FMNIST_DIR", "/usr/share/datasets/fashion-mnist"))

# dist.lost_rank_s for these jobs, and the bound the tests hold survivors to: the watchdog's
# lost_rank_s + 3 beats, plus slack for a loaded 2-core CI machine.
LOST_RANK_S = 8
STOP_BOUND_S = LOST_RANK_S + 12


def sh(*cmd):
    subprocess.run(cmd, check=True, capture_output=True, text=True)


class Hosts:
    """n namespaces h0..h(n-1) with eth0 at 10.77.<net>.(i+1)/24, on one bridge in its own namespace."""

    def __init__(self, n):
        tag = uuid.uuid4().hex[:6]
        self.sw = f"ss{tag}sw"
        self.names = [f"ss{tag}h{i}" for i in range(n)]
        net = int(tag[:2], 16) % 200 + 20
        self.addrs = [f"10.77.{net}.{i + 1}" for i in range(n)]
        sh("ip", "netns", "add", self.sw)
        sh("ip", "-n", self.sw, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", self.sw, "link", "set", "br0", "up")
        for i, ns in enumerate(self.names):
            sh("ip", "netns", "add", ns)
            port = f"ss{tag}p{i}"
            sh("ip", "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
            sh("ip", "link", "set", port, "netns", self.sw)
            sh("ip", "-n", self.sw, "link", "set", port, "master", "br0", "up")
            sh("ip", "-n", ns, "addr", "add", self.addrs[i] + "/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")

    def link(self, i, up):
        sh("ip", "-n", self.names[i], "link", "set", "eth0", "up" if up else "down")

    def close(self):
        for ns in self.names + [self.sw]:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def namespaces_unavailable():
    if shutil.which("ip") is None:
        return "iproute2's ip is not installed"
    probe = f"ssprobe{os.getpid()}"
    r = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if r.returncode != 0:
        return "cannot create network namespaces here (" + (r.stderr.strip() or "ip netns add failed") + ")"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


@pytest.fixture
def hosts(request):
    why = namespaces_unavailable()
    if why:
        pytest.skip(f"network namespaces: {why}")
    if not EXE.exists():
        pytest.fail(f"{EXE} is missing: build first (tools/build.sh)")
    made = []

    def make(n):
        h = Hosts(n)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()


JOB_IDS = itertools.count()


class Job:
    """One stream-train process per rank, rank r on host placement[r]; stdout/stderr to files."""

    def __init__(self, hosts, run_dir, placement, sets, resume=False, port=29400):
        self.procs = []
        self.errs = []
        world = len(placement)
        for rank, host in enumerate(placement):
            env = {"PATH": os.environ["PATH"], "RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": "0",
                   "MASTER_ADDR": hosts.addrs[placement[0]], "MASTER_PORT": str(port),
                   "GLOO_SOCKET_IFNAME": "eth0", "OMP_NUM_THREADS": "1"}
            cmd = ["ip", "netns", "exec", hosts.names[host], "env", "-i"] + [f"{k}={v}" for k, v in env.items()]
            cmd += [str(EXE), str(REPO / "configs/smoke.toml"), "--set", f"run.dir={run_dir}"]
            for s in sets:
                cmd += ["--set", s]
            if resume:
                cmd.append("--resume")
            err = open(run_dir.parent / f"{run_dir.name}-{next(JOB_IDS)}-rank{rank}.err", "w+")
            self.errs.append(err)
            self.procs.append(subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=err))

    def wait(self, timeout=600):
        codes = [p.wait(timeout=timeout) for p in self.procs]
        return codes

    def stderr(self, rank):
        self.errs[rank].flush()
        self.errs[rank].seek(0)
        return self.errs[rank].read()


def smoke_sets(total, every=None, extra=()):
    """configs/smoke.toml, shortened: `total` images in steps of 64, checkpoints every `every`."""
    s = [f"train.total_images={total}", "eval.limit=500", f"eval.path={FMNIST}", "run.sample_every_images=0",
         f"train.checkpoint_every_images={every or 0}", "train.keep_checkpoints=8", f"dist.lost_rank_s={LOST_RANK_S}",
         "train.threads=1"]
    return s + list(extra)


def summary(run):
    lines = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines() if l.strip()]
    assert lines and lines[-1]["event"] == "summary", lines[-1:]
    return lines[-1]


def losses(run):
    return [r["loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in r]


def assert_exactly_once(run, total):
    s = summary(run)
    assert (s["images_seen"], s["duplicates"], s["gaps"], s["exactly_once"]) == (total, 0, 0, True), s
    return s


def wait_for_checkpoint(run, job, limit=300):
    """Blocks until the run has written a checkpoint (so the kill lands mid-run, after some work)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        if list((run / "checkpoints").glob("*.pt")) if (run / "checkpoints").exists() else []:
            return
        assert all(p.poll() is None for p in job.procs), [job.stderr(r) for r in range(len(job.procs))]
        time.sleep(0.2)
    pytest.fail("no checkpoint within the limit")


def kill_and_time(job, victim, survivors):
    """SIGKILLs rank `victim`; returns each survivor's (exit code, seconds from the kill to its exit)."""
    job.procs[victim].send_signal(signal.SIGKILL)
    t0 = time.monotonic()
    out = {}
    for r in survivors:
        code = job.procs[r].wait(timeout=STOP_BOUND_S + 60)
        out[r] = (code, time.monotonic() - t0)
    job.procs[victim].wait()
    return out


def assert_one_line_naming(job, rank, words):
    err = job.stderr(rank).strip().splitlines()
    errors = [l for l in err if "error:" in l]
    assert len(errors) == 1, err
    assert all(w in errors[0] for w in words), errors[0]


def final_weights(run, tmp_path):
    """The parameters of the run's newest checkpoint, as stream-export writes them (safetensors)."""
    from safetensors.torch import load_file
    newest = sorted((run / "checkpoints").glob("*.pt"), key=lambda p: p.stat().st_mtime)[-1]
    out = tmp_path / (run.parent.name + ".safetensors")
    subprocess.run([str(BUILD / "bin" / "stream-export"), "--checkpoint", str(newest), "--out", str(out)], check=True,
                   capture_output=True)
    import torch
    w = load_file(str(out))
    return torch.cat([w[k].flatten().double() for k in sorted(w) if "num_batches" not in k and "running" not in k])


def test_two_trainer_hosts_give_the_one_rank_result(hosts, tmp_path):
    # As tests/train/test_distributed.cpp (one process, ranks as threads) does on loopback: two
    # steps at a small constant lr, so float rounding (other reduction orders) stays small, against
    # a control that differs only in what is under test (per-rank batch norm, plain DDP).
    h = hosts(2)
    sets = smoke_sets(128, extra=["optim.lr=0.01", "optim.warmup_fraction=0", "optim.final_lr_fraction=1"])
    assert Job(h, tmp_path / "one", [0], sets).wait() == [0]
    assert Job(h, tmp_path / "two", [0, 1], sets).wait() == [0, 0]
    assert Job(h, tmp_path / "plain", [0, 1], sets + ["dist.sync_batch_norm=false"], port=29401).wait() == [0, 0]
    one, two, plain = (tmp_path / n / "smoke" for n in ("one", "two", "plain"))
    assert_exactly_once(two, 128)
    assert "2 trainer ranks" in (two / "log.txt").read_text()
    w1 = final_weights(one, tmp_path)
    d2 = float((final_weights(two, tmp_path) - w1).norm() / w1.norm())
    control = float((final_weights(plain, tmp_path) - w1).norm() / w1.norm())
    print(f"|w_2 hosts - w_1| / |w_1| after 2 steps: {d2:.2e}; per-rank batch norm: {control:.2e}")
    assert d2 < 1e-5
    assert control > 1e-3 and control > 5 * d2


def test_generator_ranks_on_other_hosts_feed_the_trainer_exactly_once(hosts, tmp_path):
    h = hosts(3)
    sets = smoke_sets(384, extra=["dist.trainer_ranks=1"])
    assert Job(h, tmp_path / "gen", [0, 1, 2], sets).wait() == [0, 0, 0]
    s = assert_exactly_once(tmp_path / "gen" / "smoke", 384)
    assert s["images_produced"] == 384  # all received from the two generator hosts


@pytest.mark.parametrize("victim,trainer_ranks", [(1, 0), (1, 1)], ids=["trainer-rank", "generator-rank"])
def test_a_killed_rank_stops_every_survivor_then_resume_is_exactly_once(hosts, tmp_path, victim, trainer_ranks):
    h = hosts(2)
    total = 768
    sets = smoke_sets(total, every=128, extra=[f"dist.trainer_ranks={trainer_ranks}"])
    run = tmp_path / "job" / "smoke"
    job = Job(h, tmp_path / "job", [0, 1], sets)
    wait_for_checkpoint(run, job)
    stopped = kill_and_time(job, victim, [0])
    code, seconds = stopped[0]
    print(f"rank {victim} ({'generator' if trainer_ranks else 'trainer'}) killed: rank 0 exited {code} after {seconds:.1f} s")
    assert code == 3
    assert seconds <= STOP_BOUND_S
    assert_one_line_naming(job, 0, [f"rank {victim} lost", "--resume"])
    # The whole job resumed from the newest checkpoint: every index once.
    again = Job(h, tmp_path / "job", [0, 1], sets, resume=True, port=29401)
    assert again.wait() == [0, 0], again.stderr(0)
    s = assert_exactly_once(run, total)
    assert s["images_trained"] < total  # it did resume: the images before the checkpoint were not trained again


def test_when_the_store_host_goes_away_every_rank_stops(hosts, tmp_path):
    h = hosts(2)
    total = 768
    sets = smoke_sets(total, every=128)
    run = tmp_path / "job" / "smoke"
    job = Job(h, tmp_path / "job", [0, 1], sets)
    wait_for_checkpoint(run, job)
    h.link(0, up=False)  # host 0 (rank 0 and the store) drops off the network; nothing is killed
    t0 = time.monotonic()
    codes = [p.wait(timeout=STOP_BOUND_S + 60) for p in job.procs]
    seconds = time.monotonic() - t0
    print(f"host 0 unreachable: ranks exited {codes} after {seconds:.1f} s")
    assert codes == [3, 3]
    assert seconds <= STOP_BOUND_S
    assert_one_line_naming(job, 1, ["rank 0 lost", "rendezvous store", h.addrs[0]])
    assert_one_line_naming(job, 0, ["rank 1 lost"])
    h.link(0, up=True)
    again = Job(h, tmp_path / "job", [0, 1], sets, resume=True, port=29401)
    assert again.wait() == [0, 0], again.stderr(0)
    assert_exactly_once(run, total)


def test_a_slow_link_only_slows_the_job(hosts, tmp_path):
    """netem (delay 20 ms, 1% loss) where the kernel has it, else a token bucket (tbf) at 20 Mbit/s:
    the ~3 MB gradient all-reduce of each step then takes about a second instead of milliseconds."""
    if shutil.which("tc") is None:
        pytest.skip("tc (iproute2) is not available")
    h = hosts(2)
    shaped = None
    for qdisc in (["netem", "delay", "20ms", "5ms", "loss", "1%"], ["tbf", "rate", "20mbit", "burst", "64kb", "latency", "100ms"]):
        r = subprocess.run(["ip", "netns", "exec", h.names[1], "tc", "qdisc", "add", "dev", "eth0", "root"] + qdisc,
                           capture_output=True, text=True)
        if r.returncode == 0:
            shaped = " ".join(qdisc)
            break
    if shaped is None:
        pytest.skip("neither netem nor tbf is available: " + r.stderr.strip())
    t0 = time.monotonic()
    assert Job(h, tmp_path / "slow", [0, 1], smoke_sets(512)).wait() == [0, 0]
    s = assert_exactly_once(tmp_path / "slow" / "smoke", 512)
    print(f"link of host 1 shaped ({shaped}): 512 images in {time.monotonic() - t0:.1f} s, trainer {s['seconds']:.1f} s")
