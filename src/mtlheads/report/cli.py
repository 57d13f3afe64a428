"""``mtlheads-report``: the report of a run or sweep dir (mean ± std over seeds), a search's table, and the
``science`` / ``save`` subcommands (``report/science.py``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mtlheads.report import science, search_output
from mtlheads.report.collect import METRICS_FILE, build_report
from mtlheads.report.tables import to_latex, to_markdown
from mtlheads.utils.io import atomic_write_json, atomic_write_text


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``mtlheads-report``; returns the exit status (1: nothing found, 2: no such dir)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("science", "save"):  # mtlheads-report science|save ... (report/science.py)
        return science.main(argv)
    parser = argparse.ArgumentParser(prog="mtlheads-report", description=(__doc__ or "").split("\n")[0])
    parser.add_argument("dir", type=Path, help="directory searched recursively for metrics.json files")
    parser.add_argument("--out", type=Path, default=None, help="where report.{md,tex,json} go (default: dir)")
    parser.add_argument(
        "--times", choices=("mean", "range"), default="mean", help="time columns: mean ± std | min/median/max"
    )
    search_output.add_arguments(parser)
    args = parser.parse_args(argv)
    if not args.dir.is_dir():
        print(f"error: {args.dir} is not a directory", file=sys.stderr)
        return 2
    report = build_report(args.dir) | {"times": args.times}
    if not report["configurations"] and not report["failed"]:
        print(f"error: no {METRICS_FILE} and no job directory below {args.dir}", file=sys.stderr)
        return 1
    out = args.out or args.dir
    markdown = to_markdown(report)
    atomic_write_text(out / "report.md", markdown)
    atomic_write_text(out / "report.tex", to_latex(report))
    atomic_write_json(out / "report.json", report)
    # A hyperparameter search (an Optuna sweep dir, or --search) also gets search.{md,json,png,pdf}.
    print(search_output.report_from_args(args, out) or markdown, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
