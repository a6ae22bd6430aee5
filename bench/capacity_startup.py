"""Start-up plus answer of `terwayctl capacity`, as a ratio to `kubectl version --client`.

Budget: one type within 2x kubectl on the same machine; the whole catalog as JSON within 3x.
Runs every command alternately in the same loop so machine load affects all of them alike.

    python bench/capacity_startup.py [--runs 30]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def terwayctl_path() -> str:
    # The console script next to this interpreter, not a pyenv shim (a shell script) in front of it.
    beside = Path(sys.executable).parent / "terwayctl"
    found = str(beside) if beside.exists() else shutil.which("terwayctl")
    if not found:
        sys.exit("terwayctl is not installed: pip install .")
    return found


def catalog_rows() -> int:
    from terwayctl.data import CATALOG_FILE

    return len(CATALOG_FILE.read_text(encoding="utf-8").splitlines()) - 1


def time_once(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    kubectl = shutil.which("kubectl")
    if not kubectl:
        sys.exit("kubectl is needed as the reference (apt-get install kubectl or kubernetes-client)")
    tool = terwayctl_path()
    cases = {
        "kubectl version --client (reference)": [kubectl, "version", "--client"],
        "terwayctl capacity ecs.g8i.xlarge": [tool, "capacity", "ecs.g8i.xlarge"],
        "terwayctl capacity --family ecs.g8i": [tool, "capacity", "--family", "ecs.g8i"],
        f"terwayctl capacity -o json (whole catalog, {catalog_rows()} types)": [tool, "capacity", "-o", "json"],
        "terwayctl capacity (whole catalog, table)": [tool, "capacity"],
    }
    for argv in cases.values():  # warm the page cache
        time_once(argv)
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.runs):
        for name, argv in cases.items():
            samples[name].append(time_once(argv))
    reference = statistics.median(samples[next(iter(cases))])
    print(f"{'case':58} {'median ms':>10} {'ratio':>7}")
    for name, values in samples.items():
        median = statistics.median(values)
        print(f"{name:58} {median * 1000:10.1f} {median / reference:7.2f}")
    python = [sys.executable, "-c", "pass"]
    bare = statistics.median(time_once(python) for _ in range(args.runs))
    print(f"(python -c pass alone: {bare * 1000:.1f} ms, the interpreter and its site-packages .pth files)")


if __name__ == "__main__":
    main()
