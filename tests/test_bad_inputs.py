"""Every bad input of bench/bad_inputs.py (the ones issue 8 lists among them): exit status 2, one line on
stderr, and the folder exactly as before (nothing written, changed or removed; a sibling folder untouched).

The bench runs each case as a fresh process; here they run in this process, which is much faster."""

import importlib.util
import sys
from pathlib import Path

import pytest
from cli_runner import run_cli

# submitit runs logging.config.dictConfig when first imported, which closes the logging handlers pytest
# installed for the running test: import it (through sweeps.control) now, at collection, not in a test
import sweeps.control  # noqa: F401

_spec = importlib.util.spec_from_file_location("bad_inputs", Path(__file__).parent.parent / "bench" / "bad_inputs.py")
bad_inputs = importlib.util.module_from_spec(_spec)
sys.modules["bad_inputs"] = bad_inputs  # dataclasses look their module up there
_spec.loader.exec_module(bad_inputs)


@pytest.mark.parametrize("case", bad_inputs.CASES, ids=[c.name for c in bad_inputs.CASES])
def test_bad_input_exits_2_with_one_line_and_leaves_everything_as_it_was(tmp_path, capsys, monkeypatch, case):
    folder = tmp_path / "work"
    before = bad_inputs.prepare(case, folder)
    monkeypatch.chdir(folder)
    code, out, err = run_cli(case.argv, capsys)
    assert bad_inputs.judge(code, out, err, before, bad_inputs.snapshot(folder)) == [], err
    assert err.startswith("error: ")


def test_the_table_covers_every_input_the_issue_lists():
    names = {c.name for c in bad_inputs.CASES if c.issue}
    for wanted in ("store under /proc", "store under a regular file", "NUL byte in the store path",
                   "non-UTF-8 sweep file", "NPZ with zero rows", "complex currents", "fit --dt with an NPZ",
                   "float for an int parameter", "text file named .npz", "bounds low above high",
                   "bounds of an unknown parameter", "fixed of an unknown constant", "traces file of a sweep missing",
                   "simulate --param a=nan", "simulate --param a=inf", "fit --fixed A1=nan",
                   "60,000 points without --yes", "status with a truncated root zarr.json",
                   "submit while another submit holds the lock"):
        assert wanted in names, wanted
