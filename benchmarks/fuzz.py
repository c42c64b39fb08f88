"""Bounded fuzzing of every parser of untrusted input: >= 1,000,000 inputs, no foreign exception.

    python benchmarks/fuzz.py [--inputs 1000000] [--minutes 20] [--workers 2] [--seed 0]

Each module under ``cnnlab.fuzz`` gives ``fuzz_targets() -> {name: feed(bytes)}`` (one parser each:
idx, CIFAR batches, image files, checkpoints, run folders, Darknet cfg and weights, YOLO txt, VOC XML,
COCO JSON, data.yaml...) and may give ``fuzz_seeds() -> {name: [valid inputs]}``. Inputs are seeds
mutated (bit flips, truncation, splices, hostile tokens such as nan, inf, 1e400, -1, huge integers)
or random bytes. A feed may return or raise ``cnnlab.errors.UserError`` (the project's own error
class, which the CLI prints as one line); anything else is a finding, recorded with the input.
Writes its section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import importlib
import multiprocessing as mp
import os
import pkgutil
import random
import sys
import time
import traceback
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

MEMORY_LIMIT = 12 << 30   # address space per worker (torch's libraries alone map a few GB)
HOSTILE = [b"nan", b"NaN", b"inf", b"-inf", b"1e400", b"-1", b"0", b"99999999999999999999999", b"-0",
           b"1e-400", b"\x00", b"\xff\xfe", b"[]", b"{}", b"null", b"true", b"\"", b"'", b"<", b">", b"&",
           b"\n", b",", b":", b"=", b"18446744073709551616", b"9223372036854775808", b"4294967296"]


def load_targets() -> tuple[dict, dict]:
    """Every ``cnnlab.fuzz.*`` module's targets and seeds."""
    import cnnlab.fuzz as pkg

    targets, seeds = {}, {}
    for info in pkgutil.iter_modules(pkg.__path__):
        mod = importlib.import_module(f"cnnlab.fuzz.{info.name}")
        for name, feed in mod.fuzz_targets().items():
            targets[f"{info.name}.{name}"] = feed
        if hasattr(mod, "fuzz_seeds"):
            for name, values in mod.fuzz_seeds().items():
                seeds[f"{info.name}.{name}"] = list(values)
    return targets, seeds


def mutate(rng: random.Random, seeds: list[bytes]) -> bytes:
    """One input: a mutated seed (usually) or random bytes."""
    if not seeds or rng.random() < 0.15:
        return rng.randbytes(rng.randrange(0, 512))
    data = bytearray(rng.choice(seeds))
    for _ in range(rng.randrange(1, 5)):
        op = rng.randrange(6)
        pos = rng.randrange(len(data) + 1)
        if op == 0 and data:                                   # flip a bit
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
        elif op == 1:                                          # truncate
            del data[pos:]
        elif op == 2:                                          # insert a hostile token
            data[pos:pos] = rng.choice(HOSTILE)
        elif op == 3 and data:                                 # replace a number-like run by a hostile token
            j = min(len(data), pos + rng.randrange(1, 8))
            data[pos:j] = rng.choice(HOSTILE)
        elif op == 4:                                          # splice another seed
            other = rng.choice(seeds)
            data[pos:] = other[rng.randrange(len(other) + 1):]
        else:                                                  # duplicate a slice
            j = min(len(data), pos + rng.randrange(1, 64))
            data[pos:pos] = data[pos:j]
    return bytes(data)


def worker(args: tuple) -> dict:
    """Feed ``quota`` inputs per target (within ``deadline``); count outcomes, keep the first findings."""
    wid, quotas, deadline, seed = args
    warnings.simplefilter("ignore")
    import resource

    # a parser that believes a header and allocates tens of GB is a finding, not a dead worker
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    import torch

    torch.set_num_threads(1)
    from cnnlab.errors import UserError

    targets, seeds = load_targets()
    rng = random.Random(seed * 1000 + wid)
    stats = {name: {"inputs": 0, "loaded": 0, "refused": 0, "foreign": 0, "seconds": 0.0} for name in targets}
    findings: list[dict] = []
    for name, feed in targets.items():
        start = time.perf_counter()
        for _ in range(quotas[name]):
            if time.time() > deadline:
                break
            data = mutate(rng, seeds.get(name, []))
            s = stats[name]
            s["inputs"] += 1
            try:
                feed(data)
                s["loaded"] += 1
            except UserError:
                s["refused"] += 1
            except Exception as e:  # noqa: BLE001 - a finding
                s["foreign"] += 1
                if len(findings) < 20:
                    findings.append({"target": name, "error": f"{type(e).__name__}: {str(e)[:200]}",
                                     "input": data[:200].hex(), "where": traceback.format_exc().splitlines()[-3:]})
        stats[name]["seconds"] += time.perf_counter() - start
    return {"stats": stats, "findings": findings}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", type=int, default=1_000_000, help="inputs in total, over all targets")
    ap.add_argument("--minutes", type=float, default=30.0, help="stop there even if --inputs is not reached")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()

    targets, _ = load_targets()
    # a share of inputs per target in proportion to its speed, at least an even share (the slow parsers,
    # checkpoints and archives, are the ones that hide allocation bugs: they get as many inputs as any)
    from cnnlab.errors import UserError

    rng = random.Random(args.seed)
    speed = {}
    _, seeds = load_targets()
    for name, feed in targets.items():
        t, n = time.perf_counter(), 0
        while time.perf_counter() - t < 0.5:
            try:
                feed(mutate(rng, seeds.get(name, [])))
            except UserError:
                pass
            except Exception:  # noqa: BLE001 - counted for real in the workers
                pass
            n += 1
        speed[name] = n / (time.perf_counter() - t)
    budget_s = args.minutes * 60 * args.workers
    total_rate = sum(speed.values())
    quotas = {name: max(int(args.inputs * speed[name] / total_rate), -(-args.inputs // len(targets)))
              for name in targets}
    per_worker = {name: -(-q // args.workers) for name, q in quotas.items()}
    deadline = time.time() + args.minutes * 60
    print(f"{len(targets)} targets; {sum(quotas.values()):,} inputs planned over {args.workers} workers "
          f"(budget {budget_s / 60:.0f} worker-minutes)", flush=True)
    start = time.perf_counter()
    with mp.get_context("spawn").Pool(args.workers) as pool:
        results = pool.map(worker, [(w, per_worker, deadline, args.seed) for w in range(args.workers)])
    wall = time.perf_counter() - start
    stats: dict[str, dict] = {}
    findings = []
    for r in results:
        findings += r["findings"]
        for name, s in r["stats"].items():
            agg = stats.setdefault(name, {k: 0 for k in s})
            for k, v in s.items():
                agg[k] += v
    total = sum(s["inputs"] for s in stats.values())
    foreign = sum(s["foreign"] for s in stats.values())
    rows = [{"target": name, "inputs": s["inputs"], "loaded": s["loaded"], "refused (UserError)": s["refused"],
             "other exceptions": s["foreign"], "inputs/s": round(s["inputs"] / max(s["seconds"], 1e-9))}
            for name, s in sorted(stats.items())]
    from _report import markdown_table, write_section

    body = (f"{total:,} inputs over {len(stats)} parsers in {wall / 60:.1f} min on {args.workers} processes "
            f"(seed {args.seed}): **{foreign} raised anything but cnnlab's own `UserError`**.\n\n"
            + markdown_table(rows))
    body += ("\nFixed finding of an earlier run of this script: a CIFAR pickle with a forged memo index "
             "(`LONG_BINPUT 2**31`) or a forged array shape made the C unpickler or numpy allocate what the file "
             "declared (16-64 GB; workers were killed). `cnnlab.data.safe_pickle` now walks the opcodes first and "
             "builds arrays through stand-ins that check shape x dtype against the bytes present.\n")
    if findings:
        body += "\nFirst findings:\n\n" + "\n".join(f"- `{f['target']}`: {f['error']} (input {f['input'][:80]}...)"
                                                    for f in findings[:10]) + "\n"
    print(body)
    if not args.no_write:
        write_section("fuzz", "Fuzzing the parsers of untrusted input", body,
                      command=f"python benchmarks/fuzz.py --inputs {args.inputs} --workers {args.workers}")
    sys.exit(1 if foreign else 0)


if __name__ == "__main__":
    main()
