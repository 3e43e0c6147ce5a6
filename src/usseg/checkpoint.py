"""Model and training-state files: safetensors plus JSON metadata, never pickle.

A pickle (``torch.save``/``joblib``) runs code when it is loaded, so a model
file from a shared results folder could execute anything. Everything usseg
writes is a safetensors file: raw tensors plus one JSON document stored in the
safetensors header under the key ``usseg``. Loading parses that header and
copies bytes; nothing is unpickled.

Training state that is not a tensor (optimizer hyper-parameters, scheduler
counters, the history so far, Python's RNG state) goes into the JSON; tensor
state (weights, Adam moments, the torch RNG) goes into the tensors under
dotted prefixes (``model.``, ``optimizer.state.``, ``rng.``).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from usseg.errors import UssegError

METADATA_KEY = "usseg"
# Header key of the tensors' digest (tensor_digest), checked on every load.
DIGEST_KEY = "usseg_sha256"
FORMAT_VERSION = 2


class CorruptFileError(UssegError):
    """A model or checkpoint file that is damaged, unverifiable or holds non-finite numbers."""


# ----------------------------------------------------------------------------- files


def save_tensors(path: str | Path, tensors: dict[str, Any], metadata: dict) -> None:
    """Write tensors (torch or numpy) and a JSON-able `metadata` dict atomically.

    The file appears under its name only once complete (write to a temporary
    name, then rename), so a job killed mid-write leaves the previous
    checkpoint intact instead of a truncated one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, value in tensors.items():
        t = torch.as_tensor(value) if not torch.is_tensor(value) else value
        out[name] = t.detach().to("cpu").contiguous()
    header = {
        METADATA_KEY: json.dumps(metadata, sort_keys=True, allow_nan=True, default=_json_default),
        DIGEST_KEY: tensor_digest(out),
    }
    tmp = path.with_name(path.name + ".tmp")
    save_file(out, str(tmp), metadata=header)
    _sort_header_metadata(tmp)
    os.replace(tmp, path)


def _sort_header_metadata(path: Path) -> None:
    """Rewrite the header's metadata entries in key order, in place.

    safetensors keeps the metadata in a hash map whose order changes from one
    process to the next, so the same model would give different file bytes
    (and file hashes) on every run. Reordering keys keeps the header's length,
    so the tensor bytes after it stay where they are.
    """
    with path.open("r+b") as fh:
        size = int.from_bytes(fh.read(8), "little")
        raw = fh.read(size)
        header = json.loads(raw)
        if "__metadata__" in header:
            header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
        ordered = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
        if len(ordered) > size:  # never for a header safetensors wrote compactly
            raise UssegError(f"{path}: cannot reorder its safetensors header ({len(ordered)} > {size} bytes).")
        fh.seek(8)
        fh.write(ordered.ljust(size, b" "))


def tensor_digest(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over every tensor's name, dtype, shape and bytes (in name order)."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        digest.update(f"{name}|{t.dtype}|{list(t.shape)}\0".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def verify_tensors(path: str | Path, tensors: dict[str, torch.Tensor], header: dict, remedy: str = "") -> None:
    """Raise CorruptFileError unless the tensors match the digest stored when the file was
    written (names, dtypes, shapes and bytes) and every floating-point value is finite.
    `remedy` ends each message: what to do (see load_tensors)."""
    stored = header.get(DIGEST_KEY)
    if stored is None:
        raise CorruptFileError(
            f"{path}: has no stored digest (written by an older usseg), so it cannot be verified. {remedy}".rstrip()
        )
    if tensor_digest(tensors) != stored:
        raise CorruptFileError(
            f"{path}: its tensors do not match the digest stored when it was written "
            f"(the file is damaged: a partial copy, a disk error or an edit). {remedy}".rstrip()
        )
    for name, t in tensors.items():
        if (t.is_floating_point() or t.is_complex()) and not bool(torch.isfinite(t).all()):
            raise CorruptFileError(f"{path}: tensor {name!r} holds NaN or infinite values. {remedy}".rstrip())


def load_tensors(path: str | Path, verify: bool = True, remedy: str = "") -> tuple[dict[str, torch.Tensor], dict]:
    """Read a file written by `save_tensors`: (tensors on CPU, metadata).

    Raises UssegError naming the file when it is missing, is not a safetensors
    file (e.g. an old pickled checkpoint) or was not written by usseg, and
    CorruptFileError when `verify` finds it damaged (verify_tensors).
    `remedy` ends those messages: for a rule's output (a model), the command
    that makes it again; none for a training checkpoint, which training sets
    aside and replaces itself (a command naming it would name a file no rule makes).
    """
    path = Path(path)
    if not path.is_file():
        raise UssegError(f"{path}: model/checkpoint file does not exist; run the train step first.")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            header = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
    except (SafetensorError, OSError) as exc:
        raise CorruptFileError(
            f"{path}: not a readable safetensors file ({exc}). usseg only loads safetensors "
            f"(never pickle). {remedy}".rstrip()
        ) from None
    if METADATA_KEY not in header:
        raise UssegError(
            f"{path}: a safetensors file without usseg metadata; it was not written by usseg train. {remedy}".rstrip()
        )
    try:
        metadata = json.loads(header[METADATA_KEY])
    except json.JSONDecodeError as exc:
        raise CorruptFileError(
            f"{path}: the usseg metadata in the header is not valid JSON ({exc}). {remedy}".rstrip()
        ) from None
    if verify:
        verify_tensors(path, tensors, header, remedy)
    return tensors, metadata


def set_aside(path: str | Path) -> Path:
    """Rename a damaged file to <name>.corrupt (numbered if taken) so it is kept for a look but never used."""
    path = Path(path)
    target = path.with_name(path.name + ".corrupt")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt{n}")
    os.replace(path, target)
    return target


def _json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, tuple):
        return list(obj)
    if torch.is_tensor(obj) and obj.numel() == 1:
        return obj.item()
    raise TypeError(f"cannot store {type(obj).__name__} in checkpoint metadata")


# ----------------------------------------------------------------------------- hashing


def config_hash(settings: dict) -> str:
    """Stable hash of JSON-able settings (key order does not matter)."""
    text = json.dumps(settings, sort_keys=True, default=_json_default, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- state flattening


def flatten_optimizer(optimizer: torch.optim.Optimizer, prefix: str = "optimizer.") -> tuple[dict, dict]:
    """Split an optimizer state_dict into tensors and JSON (param_groups, non-tensor per-param state)."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for pid, state in sd["state"].items():
        for key, value in state.items():
            name = f"{pid}.{key}"
            if torch.is_tensor(value):
                tensors[f"{prefix}state.{name}"] = value
            else:
                scalars[name] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict, meta: dict, prefix: str = "optimizer.") -> None:
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        if name.startswith(prefix + "state."):
            pid, key = name[len(prefix + "state."):].split(".", 1)
            state.setdefault(int(pid), {})[key] = value
    for name, value in meta["scalars"].items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def rng_state() -> tuple[dict, dict]:
    """torch/numpy/python global RNG state as (tensors, JSON)."""
    np_state = np.random.get_state()
    tensors = {
        "rng.torch": torch.get_rng_state(),
        "rng.numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
    }
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    py = random.getstate()
    meta = {
        "numpy": [np_state[0], int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": [py[0], list(py[1]), py[2]],
    }
    return tensors, meta


def restore_rng(tensors: dict, meta: dict) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    name, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((name, tensors["rng.numpy_keys"].numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = meta["python"]
    random.setstate((version, tuple(internal), gauss))
    if torch.cuda.is_available():
        cuda = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda.")]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


def split_prefix(tensors: dict, prefix: str) -> dict:
    """Tensors whose names start with `prefix`, with the prefix removed."""
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
