"""Current-clamp traces in and out: synthetic protocols and user files, with units and shapes checked.

A :class:`Traces` holds ``current`` [B, T] in nA, ``dt`` in ms, and optionally ``voltage`` [B, T] in mV
and ``spikes`` [B, T] (0/1, 1 at the sample where the trace crossed threshold). Files:

- NPZ: arrays ``current`` (nA), ``dt`` (ms, a scalar), and ``voltage`` (mV) and/or ``spikes``;
  loaded without pickles.
- CSV in the layout of the paper's HH data: one trace per row, the first column a label, then one
  column per time step; an optional header row (empty first cell). Currents are in amperes, voltages in
  mV, and ``dt`` (ms) must be given since the CSV does not carry it.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from diffbrain.errors import BadInput

PROTOCOLS = ("steps", "ramps", "noise")

# The paper's five GIF step protocols: (amplitude nA, duration ms) segments of 1000 ms each.
GIF_PAPER_STEPS = (
    ((2.0, 200.0), (0.0, 800.0)),
    ((1.5, 500.0), (0.0, 500.0)),
    ((1.5, 100.0), (0.0, 500.0), (0.5, 100.0), (1.0, 100.0), (1.5, 100.0), (0.0, 100.0)),
    ((1.5, 20.0), (0.0, 180.0), (-1.5, 20.0), (0.0, 20.0), (1.5, 20.0), (0.0, 140.0), (0.0, 600.0)),
    ((0.0, 50.0), (-3.5, 750.0), (0.0, 200.0)),
)
# The layout of the recorded HH inputs (../shared/data/hh): steps of these amplitudes (nA) from 1/3 to
# 2/3 of the trace, the third one from the start.
HH_STEP_AMPLITUDES = (10.0, 2.0, 2.0, 50.0, 0.2)


@dataclass
class Traces:
    """Current traces and what was recorded on them (all arrays [B, T])."""

    current: np.ndarray  # nA
    dt: float  # ms
    voltage: np.ndarray | None = None  # mV
    spikes: np.ndarray | None = None  # 0/1
    source: str = "synthetic"
    extra: dict = field(default_factory=dict)

    @property
    def n_traces(self) -> int:
        return int(self.current.shape[0])

    @property
    def n_steps(self) -> int:
        return int(self.current.shape[1])

    @property
    def duration_ms(self) -> float:
        return self.n_steps * self.dt

    def require(self, target: str, field_name: str = "target") -> None:
        """BadInput unless these traces can serve a ``potential`` or ``spike`` target."""
        if target == "potential" and self.voltage is None:
            raise BadInput(field_name, f"{self.source} has no voltage, so it cannot serve a potential target",
                           "use --target spike, or add a 'voltage' array [B, T] in mV")
        if target == "spike" and self.spikes is None:
            raise BadInput(field_name, f"{self.source} has no spikes, so it cannot serve a spike target",
                           "use --target potential, or add a 'spikes' array [B, T] of 0/1")


# ---------------------------------------------------------------- synthetic protocols


def _segments(segments, scale: float, dt: float, n_steps: int) -> np.ndarray:
    out = np.zeros(n_steps)
    start = 0.0
    for amplitude, duration in segments:
        lo, hi = int(round(start * scale / dt)), int(round((start + duration) * scale / dt))
        out[lo:min(hi, n_steps)] = amplitude
        start += duration
    return out


def protocol(kind: str, model: str, duration_ms: float, dt_ms: float, n_traces: int = 5, seed: int = 0,
             amplitude_na: float | None = None) -> np.ndarray:
    """Input currents [n_traces, T] in nA for a synthetic protocol.

    - ``steps``: for GIF the paper's five step protocols (time-scaled to ``duration_ms``), for HH the
      layout of the recorded HH inputs; more traces repeat them at growing amplitude.
    - ``ramps``: linear ramps from 0 to amplitudes spread over [0.5, 1.5] x ``amplitude_na``.
    - ``noise``: Ornstein-Uhlenbeck currents (tau 5 ms) with mean ``amplitude_na`` x [0.5, 1.5] and
      sd 0.5 x ``amplitude_na``, seeded.
    """
    from diffbrain.neuron import get_model

    neuron = get_model(model)
    if kind not in PROTOCOLS:
        raise BadInput("protocol", f"unknown protocol {kind!r}", f"use one of: {', '.join(PROTOCOLS)}")
    if not (duration_ms > 0 and dt_ms > 0) or duration_ms / dt_ms < 2:
        raise BadInput("duration_ms", f"{duration_ms} ms at dt {dt_ms} ms gives fewer than 2 steps",
                       "give a longer duration or a smaller dt")
    if n_traces < 1:
        raise BadInput("n_traces", f"{n_traces} traces", "give at least 1")
    n_steps = int(round(duration_ms / dt_ms))
    amp = float(neuron.current_scale_na if amplitude_na is None else amplitude_na)
    spread = np.linspace(0.5, 1.5, n_traces) if n_traces > 1 else np.ones(1)
    if kind == "steps":
        rows = []
        for i in range(n_traces):
            gain = 1.0 + 0.25 * (i // 5)
            if model == "gif":
                rows.append(gain * _segments(GIF_PAPER_STEPS[i % 5], duration_ms / 1000.0, dt_ms, n_steps))
            else:
                row = np.zeros(n_steps)
                lo = 0 if i % 5 == 2 else n_steps // 3
                row[lo:(2 * n_steps) // 3] = gain * HH_STEP_AMPLITUDES[i % 5] * amp / neuron.current_scale_na
                rows.append(row)
        return np.asarray(rows)
    if kind == "ramps":
        ramp = np.linspace(0.0, 1.0, n_steps)
        return np.asarray([amp * g * ramp for g in spread])
    rng = np.random.default_rng(seed)
    tau = 5.0
    decay = math.exp(-dt_ms / tau)
    kick = math.sqrt(1.0 - decay * decay)
    x = np.zeros((n_traces, n_steps))
    state = rng.standard_normal(n_traces)
    noise = rng.standard_normal((n_traces, n_steps))
    for t in range(n_steps):
        x[:, t] = state
        state = decay * state + kick * noise[:, t]
    return amp * spread[:, None] + 0.5 * amp * x


# ---------------------------------------------------------------- files


def _check_grid(name: str, array: np.ndarray, shape: tuple[int, ...] | None, where: str) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2:
        raise BadInput(f"{where}:{name}", f"has shape {array.shape}, expected [traces, time]",
                       "store one trace per row, as a 2-d array [B, T]")
    if shape is not None and array.shape != shape:
        raise BadInput(f"{where}:{name}", f"has shape {array.shape} but current has {shape}",
                       "give every array the same [traces, time] shape (equal trace lengths)")
    if not np.issubdtype(array.dtype, np.number) and array.dtype != bool:
        raise BadInput(f"{where}:{name}", f"has dtype {array.dtype}, not numbers", "store numbers")
    if array.dtype.kind == "c":
        raise BadInput(f"{where}:{name}", f"has complex values (dtype {array.dtype})",
                       "store real numbers (the imaginary part would be dropped)")
    if array.shape[0] == 0:
        raise BadInput(f"{where}:{name}", f"has no traces (shape {array.shape})", "store at least one trace [B, T]")
    array = array.astype(np.float64)
    bad = ~np.isfinite(array)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise BadInput(f"{where}:{name}", f"has NaN or infinite values (first at trace {row}, step {col})",
                       "remove those traces or fill the gaps")
    return array


def _check_units(traces: Traces, where: str, current_unit: str = "nA") -> None:
    peak = float(np.abs(traces.current).max())
    if current_unit == "nA" and 0 < peak < 1e-6:
        raise BadInput(f"{where}:current", f"peak |current| is {peak:.3g}, which looks like amperes",
                       "store current in nA (multiply amperes by 1e9)")
    if peak > 1e4:
        raise BadInput(f"{where}:current", f"peak |current| is {peak:.3g} nA, implausibly large",
                       "store current in nA" if current_unit == "nA" else "store current in amperes")
    if traces.voltage is not None:
        vpeak = float(np.abs(traces.voltage).max())
        if vpeak < 1.0:
            raise BadInput(f"{where}:voltage", f"peak |voltage| is {vpeak:.3g}, which looks like volts",
                           "store voltage in mV (multiply volts by 1000)")
        if vpeak > 1000.0:
            raise BadInput(f"{where}:voltage", f"peak |voltage| is {vpeak:.3g} mV, implausibly large",
                           "store voltage in mV")
    if traces.spikes is not None and not np.isin(traces.spikes, (0.0, 1.0)).all():
        raise BadInput(f"{where}:spikes", "has values other than 0 and 1",
                       "store spikes as 0/1 per time step (1 where the neuron fired)")


def _check_dt(dt, where: str) -> float:
    try:
        dt = float(np.asarray(dt).reshape(()))
    except (TypeError, ValueError) as exc:
        raise BadInput(f"{where}:dt", f"{dt!r} is not one number", "give the time step in ms as a scalar") from exc
    if not math.isfinite(dt) or dt <= 0:
        raise BadInput(f"{where}:dt", f"{dt!r} is not a positive time step", "give the time step in ms, e.g. 0.01")
    if dt < 1e-3:
        raise BadInput(f"{where}:dt", f"{dt!r} ms is below 1 us, which looks like seconds",
                       "give dt in ms (multiply seconds by 1000)")
    if dt > 10.0:
        raise BadInput(f"{where}:dt", f"{dt!r} ms is implausibly coarse", "give dt in ms, e.g. 0.1")
    return dt


def _checked_path(path: str | os.PathLike, field: str = "traces") -> Path:
    text = os.fspath(path)
    if "\x00" in text:
        raise BadInput(field, f"{text!r} contains a NUL byte", "give the path of a trace file")
    path = Path(text)
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "no such file"
        raise BadInput(field, f"{what}: {path}" if what == "no such file" else f"{path} {what}",
                       "give the path of an .npz or .csv trace file")
    return path


NPZ_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip archive (an NPZ is a zip of .npy arrays)
NPY_MAGIC = b"\x93NUMPY"


def load_npz(path: str | os.PathLike, need_target: bool = True, dt_ms: float | None = None) -> Traces:
    """Load an NPZ trace file (``current`` nA, ``dt`` ms, ``voltage`` mV and/or ``spikes``; with
    ``need_target=False`` a current-only file is fine, as input for a simulation). The file carries its
    own ``dt``: a different ``dt_ms`` is refused rather than ignored."""
    path = _checked_path(path)
    where = str(path)
    try:
        with open(path, "rb") as f:
            head = f.read(6)
    except OSError as exc:
        raise BadInput("traces", f"cannot read {where} ({exc.strerror})", "check the file's permissions") from None
    if head.startswith(NPY_MAGIC):
        raise BadInput("traces", f"{where} is a single .npy array, not an NPZ archive",
                       "write the arrays with numpy.savez(path, current=..., dt=..., voltage=...)")
    if not head.startswith(NPZ_MAGIC):
        raise BadInput("traces", f"{where} is not an NPZ file (no zip header; is it text?)",
                       "write it with numpy.savez(path, current=..., dt=..., voltage=...)")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except ValueError as exc:
        if "pickle" not in str(exc):
            raise BadInput("traces", f"{where} is not a readable NPZ file ({exc})",
                           "write it with numpy.savez") from exc
        raise BadInput("traces", f"{where} holds objects that need unpickling", "store plain numeric arrays") from exc
    except Exception as exc:  # zipfile/IO errors
        raise BadInput("traces", f"{where} is not a readable NPZ file ({exc})", "write it with numpy.savez") from exc
    if "current" not in arrays:
        raise BadInput(f"{where}:current", "missing", "store the input current [B, T] in nA as 'current'")
    if "dt" not in arrays:
        raise BadInput(f"{where}:dt", "missing", "store the time step in ms as 'dt' (a scalar)")
    if need_target and "voltage" not in arrays and "spikes" not in arrays:
        raise BadInput(f"{where}:voltage", "neither 'voltage' nor 'spikes' is present",
                       "store the recorded voltage [B, T] in mV and/or spikes [B, T] of 0/1")
    current = _check_grid("current", arrays["current"], None, where)
    voltage = spikes = None
    if "voltage" in arrays:
        voltage = _check_grid("voltage", arrays["voltage"], current.shape, where)
    if "spikes" in arrays:
        spikes = _check_grid("spikes", arrays["spikes"], current.shape, where)
    if current.shape[1] < 2:
        raise BadInput(f"{where}:current", "has fewer than 2 time steps", "store whole traces [B, T]")
    dt = _check_dt(arrays["dt"], where)
    if dt_ms and not math.isclose(float(dt_ms), dt, rel_tol=1e-9):
        raise BadInput("dt", f"{where} carries its own time step ({dt:g} ms); {dt_ms:g} ms would be ignored",
                       "leave dt out for an NPZ file (it is for CSV files)")
    traces = Traces(current, dt, voltage, spikes, source=where)
    _check_units(traces, where)
    return traces


def _read_csv_rows(path: Path) -> np.ndarray:
    path = _checked_path(path)
    where = str(path)
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = [row for row in csv.reader(handle) if row and any(cell.strip() for cell in row)]
    except UnicodeDecodeError as exc:
        raise BadInput(where, f"is not UTF-8 text (byte {exc.start})", "give a CSV text file") from None
    except (OSError, csv.Error) as exc:
        raise BadInput(where, f"cannot be read as CSV ({exc})", "give a CSV text file") from None
    if rows and rows[0][0].strip() == "":
        rows = rows[1:]  # header row of column indices (pandas style)
    if not rows:
        raise BadInput(where, "holds no trace rows", "store one trace per row: a label, then one value per step")
    lengths = {len(row) for row in rows}
    if len(lengths) != 1:
        raise BadInput(where, f"rows have different lengths {sorted(lengths)}",
                       "give every trace the same number of time steps")
    values = []
    for i, row in enumerate(rows):
        try:
            values.append([float(cell) if cell.strip() else math.nan for cell in row[1:]])
        except ValueError as exc:
            raise BadInput(f"{where}:row {i + 1}", f"has a non-numeric value ({exc})", "store numbers only") from exc
    return np.asarray(values)


def load_csv(current_path: str | os.PathLike, voltage_path: str | os.PathLike | None, dt_ms: float | None) -> Traces:
    """Load the paper's CSV layout: currents in A (one row per trace), voltages in mV, ``dt_ms`` given."""
    current_path = Path(current_path)
    if dt_ms is None or dt_ms == 0:
        raise BadInput("dt", f"missing for the CSV file {current_path}", "give the time step in ms (e.g. --dt 0.01)")
    dt = _check_dt(dt_ms, "dt")
    where = str(current_path)
    amperes = _check_grid("current", _read_csv_rows(current_path), None, where)
    peak = float(np.abs(amperes).max())
    if peak > 1e-3:
        raise BadInput(f"{where}:current", f"peak |current| is {peak:.3g}, too large for amperes",
                       "the CSV layout stores current in amperes (divide nA by 1e9)")
    voltage = None
    if voltage_path:
        voltage = _check_grid("voltage", _read_csv_rows(Path(voltage_path)), amperes.shape, str(voltage_path))
    traces = Traces(amperes * 1e9, dt, voltage, None, source=where)
    _check_units(traces, where, current_unit="A")
    return traces


def load(path: str | os.PathLike, voltage_path: str | os.PathLike | None = None, dt_ms: float | None = None,
         need_target: bool = True) -> Traces:
    """Load an NPZ or CSV trace file (by extension); CSV needs ``dt_ms`` and takes ``voltage_path``."""
    suffix = Path(path).suffix.lower()
    if suffix == ".npz":
        if voltage_path:
            raise BadInput("voltage", "a separate voltage file only goes with a CSV current file",
                           "store 'voltage' inside the NPZ")
        return load_npz(path, need_target, dt_ms)
    if suffix == ".csv":
        return load_csv(path, voltage_path, dt_ms)
    raise BadInput("traces", f"{path}: unknown file type {suffix or '(none)'}", "give an .npz or a .csv file")


def save_npz(path: str | os.PathLike, traces: Traces, **extra: np.ndarray) -> None:
    """Write ``traces`` (and ``extra`` plain arrays) as NPZ atomically (a temporary sibling renamed into place)."""
    path = Path(path)
    arrays = {"current": traces.current.astype(np.float32), "dt": np.float64(traces.dt), **extra}
    if traces.voltage is not None:
        arrays["voltage"] = traces.voltage.astype(np.float32)
    if traces.spikes is not None:
        arrays["spikes"] = traces.spikes.astype(np.int8)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}.npz")
    try:
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
