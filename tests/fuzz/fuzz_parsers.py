"""Longer mutation fuzzing of every parser voxlift exposes to third-party bytes (not collected by pytest).

    .venv/bin/python tests/fuzz/fuzz_parsers.py --minutes 5 [--targets obj,png] [--seed 1] [--crashes DIR]

Round-robin over the targets of tests/_fuzz_util.py: each input is a valid seed, or an input that parsed
earlier (a small corpus per target), mutated a few times. An input must parse to a checked result or raise
VoxliftError (tests/_fuzz_util.check); any other exception, a hang (more than --hang seconds) or
MemoryError (the process runs under an address-space cap, --mem-gb) is a finding: the input is saved in
--crashes and the run goes on. Prints a markdown table: inputs, parsed, rejected, findings per target.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import resource
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ for _fuzz_util

from _fuzz_util import TARGETS, Hang, check, mutate


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=1.0)
    p.add_argument("--targets", default=",".join(TARGETS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--hang", type=float, default=10.0, help="seconds one input may take")
    p.add_argument("--mem-gb", type=float, default=3.0, help="address-space cap over the start-up size")
    p.add_argument("--crashes", default="fuzz-crashes", help="folder for inputs that broke the contract")
    args = p.parse_args(argv)
    names = args.targets.split(",")
    targets = [TARGETS[n] for n in names]
    rng = random.Random(args.seed)
    corpus = {t.name: list(t.seeds()) for t in targets}
    # Warm every import (torch for the image target's module, Pillow) before capping memory.
    with tempfile.TemporaryDirectory() as tmp:
        for t in targets:
            for s in corpus[t.name]:
                check(t, s, Path(tmp) / "warm")
    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    cap = vm + int(args.mem_gb * (1 << 30))
    resource.setrlimit(resource.RLIMIT_AS, (cap, resource.RLIM_INFINITY))

    stats = {n: Counter() for n in names}
    findings: dict[str, tuple[str, str]] = {}
    crash_dir = Path(args.crashes)
    end = time.monotonic() + 60 * args.minutes
    k = 0
    with tempfile.TemporaryDirectory() as tmp:
        while time.monotonic() < end:
            t = targets[k % len(targets)]
            k += 1
            base = rng.choice(corpus[t.name])
            data = mutate(base, rng)
            stats[t.name]["inputs"] += 1
            try:
                result = check(t, data, Path(tmp) / str(k % 8), args.hang)
                stats[t.name][result] += 1
                if result == "ok" and len(corpus[t.name]) < 200 and data != base:
                    corpus[t.name].append(data)
            except (Exception, Hang) as exc:  # noqa: BLE001 - every other exception is a finding
                stats[t.name]["findings"] += 1
                frame = traceback.extract_tb(exc.__traceback__)[-1]
                key = f"{t.name}: {type(exc).__name__} at {Path(frame.filename).name}:{frame.lineno}"
                if key not in findings:
                    crash_dir.mkdir(parents=True, exist_ok=True)
                    digest = hashlib.sha1(data).hexdigest()[:12]
                    (crash_dir / f"{t.name}-{digest}.bin").write_bytes(data)
                    findings[key] = (digest, f"{exc!r}"[:200])
                    print(f"FINDING {key}: {exc!r}"[:300], file=sys.stderr, flush=True)
    print(f"## Parser fuzzing ({args.minutes:g} min, seed {args.seed})\n")
    print("| target | inputs | parsed | rejected (VoxliftError) | findings |")
    print("|---|---:|---:|---:|---:|")
    for n in names:
        s = stats[n]
        print(f"| {n} | {s['inputs']} | {s['ok']} | {s['rejected']} | {s['findings']} |")
    print(
        f"\nCommand: `.venv/bin/python tests/fuzz/fuzz_parsers.py --minutes {args.minutes:g} --seed {args.seed}`"
    )
    for key, (digest, text) in findings.items():
        print(f"- {key} ({digest}): {text}")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
