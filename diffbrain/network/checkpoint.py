"""Checkpoints of a training run: weights, optimiser state, iteration, random state and history.

One ``.npz`` file (no pickle) written to a temporary sibling and renamed into place, so a kill
during the write leaves the previous checkpoint intact. The file carries the run's parameters and
two fingerprints: resuming needs the full configuration to match; loading weights into another
run (``load_checkpoint``, e.g. ``mode=sim``) needs only the network to match.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from diffbrain.errors import BadInput

FORMAT = 1
FILENAME = "train-network.npz"


@dataclass
class Checkpoint:
    """Everything needed to continue a run exactly where it stopped."""

    params: dict
    fingerprint: str
    network_fingerprint: str
    iteration: int  # completed iterations
    weights: dict[str, np.ndarray]
    optimizer: list[np.ndarray]
    rng_key: np.ndarray
    history: dict[str, np.ndarray] = field(default_factory=dict)
    snapshots: dict[str, np.ndarray] = field(default_factory=dict)


def save(path: Path, ckpt: Checkpoint) -> None:
    """Write ``ckpt`` to ``path`` atomically (temporary sibling, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"format": FORMAT, "params": ckpt.params, "fingerprint": ckpt.fingerprint,
            "network_fingerprint": ckpt.network_fingerprint, "iteration": int(ckpt.iteration),
            "weights": sorted(ckpt.weights), "n_optimizer": len(ckpt.optimizer),
            "history": sorted(ckpt.history), "snapshots": sorted(ckpt.snapshots)}
    arrays = {"meta": np.asarray(json.dumps(meta, sort_keys=True)), "rng_key": np.asarray(ckpt.rng_key)}
    arrays.update({f"weight/{k}": np.asarray(v) for k, v in ckpt.weights.items()})
    arrays.update({f"optimizer/{i}": np.asarray(v) for i, v in enumerate(ckpt.optimizer)})
    arrays.update({f"history/{k}": np.asarray(v) for k, v in ckpt.history.items()})
    arrays.update({f"snapshots/{k}": np.asarray(v) for k, v in ckpt.snapshots.items()})
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load(path: Path, field_name: str = "checkpoint") -> Checkpoint:
    """Read a checkpoint; :class:`BadInput` (naming ``field_name``) if it is missing or not one of ours."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(field_name, f"no checkpoint file at {path}", "give the path of a train-network checkpoint")
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            if meta.get("format") != FORMAT:
                raise BadInput(field_name, f"{path} has checkpoint format {meta.get('format')!r}, "
                               f"this toolkit reads {FORMAT}", "re-create the checkpoint with this version")
            return Checkpoint(
                params=meta["params"], fingerprint=meta["fingerprint"],
                network_fingerprint=meta["network_fingerprint"], iteration=int(meta["iteration"]),
                weights={k: data[f"weight/{k}"] for k in meta["weights"]},
                optimizer=[data[f"optimizer/{i}"] for i in range(meta["n_optimizer"])],
                rng_key=data["rng_key"],
                history={k: data[f"history/{k}"] for k in meta["history"]},
                snapshots={k: data[f"snapshots/{k}"] for k in meta["snapshots"]},
            )
    except BadInput:
        raise
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        raise BadInput(field_name, f"{path} is not a readable train-network checkpoint ({exc})",
                       "give a checkpoint written by train-network, or delete the damaged file") from None


def differing(a: dict, b: dict) -> list[str]:
    """Parameter names whose values differ between two parameter dicts."""
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def check_matches(ckpt: Checkpoint, params: dict, fingerprint: str, where: Path, network_only: bool,
                  network_fingerprint: str, field_name: str = "checkpoint") -> None:
    """Refuse (BadInput) a checkpoint written by another configuration; names the differing parameters."""
    ok = ckpt.network_fingerprint == network_fingerprint if network_only else ckpt.fingerprint == fingerprint
    if ok:
        return
    names = differing(ckpt.params, params)
    what = "network" if network_only else "configuration"
    raise BadInput(field_name, f"{where} was written by another {what} (differs in: {', '.join(names) or '?'})",
                   "use the same parameters, another checkpoint directory (--out), or delete the old checkpoint")
