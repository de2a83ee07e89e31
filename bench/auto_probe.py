"""How long ``executor = auto`` takes to decide when the SLURM client is installed but no controller answers
(issue 15): the probe of :mod:`slurm.probe` (uncached and cached) side by side with the ``sinfo`` call it
replaced, in one run, against a ``slurm.conf`` whose controller is a closed local port.

Usage: python bench/auto_probe.py [--repeats 3]   (needs sbatch and sinfo on PATH; prints JSON)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not (shutil.which("sbatch") and shutil.which("sinfo")):
        sys.exit("needs the SLURM client (sbatch, sinfo) on PATH")
    with tempfile.TemporaryDirectory() as tmp, socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        conf = Path(tmp) / "slurm.conf"
        conf.write_text(f"ClusterName=none\nSlurmctldHost=laptop(127.0.0.1)\nSlurmctldPort={port}\n"
                        "NodeName=n CPUs=1\nPartitionName=p Nodes=n\n")
        os.environ.update(SLURM_CONF=str(conf), XDG_CACHE_HOME=str(Path(tmp) / "cache"))
        from slurm import probe

        def timed(fn) -> tuple[float, object]:
            start = time.perf_counter()
            out = fn()
            return time.perf_counter() - start, out

        rows = {"sinfo_s": [], "probe_uncached_s": [], "probe_cached_s": []}
        answer = None
        for _ in range(args.repeats):
            rows["sinfo_s"].append(timed(lambda: subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True,
                                                                 timeout=120))[0])
            probe.cache_file().unlink(missing_ok=True)
            seconds, answer = timed(probe.probe)
            rows["probe_uncached_s"].append(seconds)
            rows["probe_cached_s"].append(timed(probe.probe)[0])
    best = {k: round(min(v), 4) for k, v in rows.items()}
    print(json.dumps({"repeats": args.repeats, "load": os.getloadavg()[0], "best": best,
                      "sinfo_over_probe": round(best["sinfo_s"] / best["probe_uncached_s"], 1),
                      "answer": answer.why if answer else None, "all": rows}, indent=1))


if __name__ == "__main__":
    main()
