"""Model and checkpoint files are verified on every load: stored digest, finite values."""

from __future__ import annotations

import pytest
import torch

from usseg import checkpoint
from usseg.checkpoint import CorruptFileError


def _save(path, **tensors):
    checkpoint.save_tensors(path, tensors or {"w": torch.arange(6.0).reshape(2, 3)}, {"kind": "test"})
    return path


def test_an_intact_file_loads(tmp_path):
    tensors, meta = checkpoint.load_tensors(_save(tmp_path / "m.safetensors"))
    assert meta == {"kind": "test"} and tensors["w"].shape == (2, 3)


def test_a_changed_byte_is_detected(tmp_path):
    path = _save(tmp_path / "m.safetensors")
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(CorruptFileError, match="m.safetensors: its tensors do not match the digest"):
        checkpoint.load_tensors(path)
    checkpoint.load_tensors(path, verify=False)  # still readable for a look


def test_a_truncated_file_is_detected(tmp_path):
    path = _save(tmp_path / "m.safetensors")
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(CorruptFileError, match="m.safetensors"):
        checkpoint.load_tensors(path)


def test_non_finite_values_are_rejected(tmp_path):
    path = _save(tmp_path / "m.safetensors", w=torch.tensor([1.0, float("nan")]))
    with pytest.raises(CorruptFileError, match="'w' holds NaN or infinite values"):
        checkpoint.load_tensors(path)


def test_a_file_without_a_digest_cannot_be_verified(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "old.safetensors"
    save_file({"w": torch.zeros(2)}, str(path), metadata={checkpoint.METADATA_KEY: "{}"})
    with pytest.raises(CorruptFileError, match="no stored digest"):
        checkpoint.load_tensors(path)


def test_the_digest_covers_dtype_and_shape():
    a = checkpoint.tensor_digest({"w": torch.zeros(4, dtype=torch.float32)})
    assert a != checkpoint.tensor_digest({"w": torch.zeros(2, 2, dtype=torch.float32)})
    assert a != checkpoint.tensor_digest({"w": torch.zeros(8, dtype=torch.float16)})
    assert checkpoint.tensor_digest({"b": torch.tensor([True, False])})


def test_set_aside_keeps_earlier_copies(tmp_path):
    for expected in ("m.safetensors.corrupt", "m.safetensors.corrupt2"):
        path = _save(tmp_path / "m.safetensors")
        assert checkpoint.set_aside(path).name == expected
        assert not path.exists()


def test_the_same_model_gives_the_same_bytes_every_time(tmp_path):
    # safetensors orders header metadata by a per-map random hash; usseg sorts it,
    # so results can be compared (and DVC-cached) by file hash.
    written = {_save(tmp_path / f"m{i}.safetensors").read_bytes() for i in range(20)}
    assert len(written) == 1
    tensors, meta = checkpoint.load_tensors(tmp_path / "m0.safetensors")
    assert meta == {"kind": "test"} and tensors["w"].shape == (2, 3)
