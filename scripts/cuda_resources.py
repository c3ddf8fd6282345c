#!/usr/bin/env python
"""Resource report of the CUDA backend, with no GPU: every declared kernel and signature compiled for sm_80
(A100) and sm_90 (H100) by NVVM and ptxas, with registers per thread, spill bytes, static shared memory and the
theoretical occupancy at the block size the backend launches it with (kernels/cuda/compile.py has the limits).

Prints a Markdown table (one row per kernel and dtype) and writes every result as JSON::

    .venv/bin/python scripts/cuda_resources.py --out runs/cuda_resources.json
    .venv/bin/python scripts/cuda_resources.py --check-tools     (exit 0: numba.cuda and ptxas are here)
    .venv/bin/python scripts/cuda_resources.py --detect          (the CUDA devices, numba.cuda.detect)

Needs the [cuda] extra (`pip install -e ".[cuda]"`). Exits 1 when a kernel fails to compile or spills.
"""
import argparse
import os
import sys

from tinynn._write import write_json
from tinynn.kernels.cuda import compile as cc


def dtype_of(signature):
    """The floating dtype of a signature (its first float array), for the table's rows."""
    for part in signature.split("array(")[1:]:
        dt = part.split(",")[0]
        if dt in ("float32", "float64"):
            return dt
    return "-"


def table(results):
    """Markdown rows: kernel, dtype, threads, then registers / smem / occupancy (limit) per target."""
    keys = sorted(results)
    rows = {}
    for key in keys:
        for r in results[key]:
            row = rows.setdefault((r["kernel"], dtype_of(r["signature"])), {"threads": r["threads"]})
            if "error" in r:
                row[key] = "**fails**"
            else:
                lim = "" if r["occupancy"] == 1.0 else f" ({r['limited_by']})"
                spill = f", **{r['spill_stores']} B spilled**" if r["spill_stores"] else ""
                row[key] = f"{r['registers']} / {r['smem']} B / {r['occupancy']:.0%}{lim}{spill}"
    head = " | ".join(f"sm_{k.replace('.', '')}: regs / smem / occupancy" for k in keys)
    lines = [f"| kernel | dtype | threads | {head} |", "|---|---|---|" + "---|" * len(keys)]
    for (name, dt), row in sorted(rows.items()):
        lines.append(f"| `{name}` | {dt} | {row['threads']} | " + " | ".join(row.get(k, "") for k in keys) + " |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--out", help="JSON file for every result (its folder is created)")
    what.add_argument("--check-tools", action="store_true",
                      help="only check that numba.cuda and ptxas are here (exit 0), else say why (exit 2)")
    what.add_argument("--detect", action="store_true", help="only list the CUDA devices (numba.cuda.detect)")
    a = p.parse_args(argv)
    if a.detect:
        from numba import cuda

        try:
            return 0 if cuda.detect() else 1
        except Exception as e:                                          # no driver, no device
            print(f"no CUDA device: {type(e).__name__}: {str(e).strip()}")
            return 1
    why = cc.missing_tools()
    if why:
        print(f"error: {why}", file=sys.stderr)
        return 2
    if a.check_tools:
        return 0
    results = cc.compile_targets()
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    write_json(a.out, results, indent=1)
    print(table(results))
    bad = [f"{k}: {r['kernel']}({r['signature']})" for k, rs in results.items() for r in rs
           if "error" in r or r["spill_stores"] or r["spill_loads"]]
    n = sum(len(rs) for rs in results.values())
    print(f"\n{n} compiles ({len(results)} targets), {len(bad)} failing or spilling; JSON in {a.out}")
    for b in bad:
        print("  ", b)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
