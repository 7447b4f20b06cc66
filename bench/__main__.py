"""`python -m bench [--quick] [SECTION ...]`: run the benchmark sections and print their tables.

Each section lives in its own module and exposes a `SECTION`; add new ones to `SECTIONS`.
`--quick` (or REFERRAL_BENCH_QUICK=1) is a smoke run of a few seconds: the figures it prints
are too noisy to compare with targets.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence

from bench import http, integrity, load, readmodels, store
from bench.common import Section, Settings

SECTIONS: list[Section] = [
    store.SECTION,
    http.SECTION,
    integrity.SECTION,
    readmodels.SECTION,
    load.SECTION,
]
QUICK_SETTING = "REFERRAL_BENCH_QUICK"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    names = [s.name for s in SECTIONS]
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmarks: figures and ratios against baselines measured in the same run.",
        epilog="sections: " + "; ".join(f"{s.name}: {s.about}" for s in SECTIONS),
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        default=os.environ.get(QUICK_SETTING, "") not in ("", "0"),
        help=f"a smoke run of a few seconds (also {QUICK_SETTING}=1)",
    )
    parser.add_argument(
        "sections", nargs="*", metavar="SECTION", help=f"run only these: {', '.join(names)}"
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.sections) - set(names))
    if unknown:
        parser.error(f"unknown section(s): {', '.join(unknown)}; known: {', '.join(names)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    integrity.use_throwaway_keys()
    settings = Settings(quick=args.quick)
    chosen = [s for s in SECTIONS if not args.sections or s.name in args.sections]
    started = time.perf_counter()
    mode = "quick smoke run: too few samples to judge targets" if settings.quick else "full run"
    print(f"referral benchmarks ({mode})")
    for section in chosen:
        for table in section.run(settings):
            print()
            print(table.render(), flush=True)
    print(f"\nran {len(chosen)} section(s) in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
