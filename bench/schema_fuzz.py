"""The HTTP API against its own OpenAPI spec, for longer than the test suite: schemathesis
generates valid and invalid requests for every operation (in process, over the ASGI app).
Target: 0 server errors and 0 responses that violate the spec.

    python bench/schema_fuzz.py [--examples 500]

Runs tests/test_schema.py with that many examples per operation; writes
bench/results/schema.json.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time

from _common import ROOT, print_table, write_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=500,
                        help="generated requests per operation")
    args = parser.parse_args()
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider",
         str(ROOT / "tests" / "test_schema.py")],
        env={**os.environ, "TIERVEC_SCHEMA_EXAMPLES": str(args.examples)}, cwd=ROOT,
        check=False, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    rows = []
    for name, outcome in re.findall(r"::(\S+(?:\[[^\]\n]*\])?) (PASSED|FAILED|ERROR)",
                                    out.stdout):
        operation = name.split("[", 1)[1].rstrip("]") if "[" in name else name
        rows.append({"operation": operation, "examples": args.examples,
                     "failed": outcome != "PASSED"})
    if not rows:
        sys.exit(f"pytest gave no results:\n{out.stdout[-3000:]}{out.stderr[-2000:]}")
    failures = sum(r["failed"] for r in rows)
    print_table(f"schemathesis, {args.examples} examples per operation, {seconds:.0f} s",
                ["operation", "examples", "failed"],
                [[r["operation"], r["examples"], "yes" if r["failed"] else "no"] for r in rows])
    write_json("schema", {"examples_per_operation": args.examples, "operations": rows,
                          "failed_operations": failures, "seconds": round(seconds, 1)})
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
