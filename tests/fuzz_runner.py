"""Runs the cases of ``tests/test_fuzz.py`` in a process of its own, so a crash cannot take pytest down.

Usage: ``python tests/fuzz_runner.py CASES.json RESULTS.jsonl``. Each case is either
``{"name", "argv"}``, a ``dhash`` command run with Click's CliRunner, or ``{"name", "code"}``, Python
run with ``np`` and ``dhash.search`` in scope. One JSON line goes out before each case
(``{"start": name}``) and one after it. So if the process dies of a signal, the last line names
the case that killed it.
"""
from __future__ import annotations

import json
import sys
import traceback


def run_cli(argv: list[str]) -> dict:
    from click.testing import CliRunner

    from dhash.cli.main import main

    result = CliRunner().invoke(main, argv)
    crashed = result.exception is not None and not isinstance(result.exception, SystemExit)
    return {"exit_code": result.exit_code, "output": result.output,
            "exception": "".join(traceback.format_exception(result.exception)) if crashed else None}


def run_api(code: str) -> dict:
    import numpy as np

    import dhash.search as search
    from dhash.evaluate import metrics

    try:
        exec(code, {"np": np, "search": search, "metrics": metrics})  # noqa: S102 - the test's own cases
    except Exception as exc:  # noqa: BLE001 - recorded, judged by the test
        return {"raised": [c.__name__ for c in type(exc).__mro__], "message": str(exc)}
    return {"raised": None}


def main(cases_path: str, results_path: str) -> None:
    with open(cases_path) as f:
        cases = json.load(f)
    with open(results_path, "w") as out:
        for case in cases:
            out.write(json.dumps({"start": case["name"]}) + "\n")
            out.flush()
            result = run_cli(case["argv"]) if "argv" in case else run_api(case["code"])
            out.write(json.dumps({"name": case["name"], **result}) + "\n")
            out.flush()


if __name__ == "__main__":
    main(*sys.argv[1:])
