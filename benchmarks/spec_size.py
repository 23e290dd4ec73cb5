"""How parsing and formatting grow with a spec's size: seconds per 1,000 lines at several sizes
(a flat column is linear growth; once both were quadratic).

    python benchmarks/spec_size.py [--repeats 3]

Two kinds of big spec: many claims (each claim reads its own source line), and many comment
lines in one block (the formatter groups comments with the code below them). Medians.
"""

from __future__ import annotations

import argparse
import statistics
import time

from sadlang.language import format_text, parse_spec

HEAD = ('model planted\npool names = " Mary" " John"\nprompts p:\n  template "When{A} went to the x,{B} said"\n'
        '  A, B from names distinct\n  answer "{A}" against "{B}"\n')


def spec(kind: str, n: int) -> str:
    if kind == "claims":
        return HEAD + "".join(f"claim c{i}: logit_diff > 0\n" for i in range(n))
    return HEAD + "".join(f"# note {i}\n" for i in range(n)) + "claim a: logit_diff > 0\n"


def seconds(fn, text: str, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(text)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(f"{'spec':<10} {'lines':>7} {'parse s':>8} {'fmt s':>8} {'parse s/1k':>11} {'fmt s/1k':>9}")
    for kind, sizes in (("claims", (2000, 4000, 8000)), ("comments", (5000, 10000, 20000))):
        for n in sizes:
            text = spec(kind, n)
            p = seconds(lambda t: parse_spec(t, "s.sad"), text, args.repeats)
            f = seconds(format_text, text, args.repeats)
            print(f"{kind:<10} {n:>7} {p:>8.2f} {f:>8.2f} {1000 * p / n:>11.3f} {1000 * f / n:>9.3f}")


if __name__ == "__main__":
    main()
