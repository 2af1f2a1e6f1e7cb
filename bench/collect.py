"""Collect bench/results/*.md into docs/benchmarks.md, under a summary written by hand.

    python -m bench.collect

The summary, bench/SUMMARY.md, is updated by hand from each report's targets after a run;
the reports themselves are copied verbatim, each with its machine and date.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
OUT = ROOT / "docs" / "benchmarks.md"
ORDER = (
    "core.md",
    "core_holds.md",
    "core_rerun.md",
    "core_0756.md",
    "trace.md",
    "capture.md",
    "soak.md",
    "soak_wal.md",
    "discovery.md",
    "health.md",
    "failover.md",
    "fleet.md",
    "clients.md",
    "console.md",
    "precheck.md",
    "gc.md",
    "docker.md",
)


def main() -> None:
    """Write docs/benchmarks.md."""
    summary = (ROOT / "bench" / "SUMMARY.md").read_text()
    parts = [summary.rstrip(), ""]
    for name in ORDER:
        report = (RESULTS / name).read_text().rstrip()
        # Demote the report's headings one level so they nest under this page's title.
        demoted = "\n".join(
            "#" + line if line.startswith("#") else line for line in report.splitlines()
        )
        parts += [demoted, ""]
    OUT.write_text("\n".join(parts) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
