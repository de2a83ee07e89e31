"""Run the ``diffbrain`` command line in the test process, as the tests of every package do."""

from __future__ import annotations

from sweeps.cli import main


def run_cli(args, capsys) -> tuple[int, str, str]:
    """``diffbrain ARGS`` in this process: (exit status, stdout, stderr); returning normally is status 0."""
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out = capsys.readouterr()
    return code, out.out, out.err
