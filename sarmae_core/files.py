"""Writing files so that a reader never sees half of one (torch-free)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | os.PathLike, fsync: bool = False, mode: int = 0o644) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one step.

    The temporary file sits in the same folder (``os.replace`` is atomic only within one file
    system) and is removed if the block fails or is interrupted, so ``path`` is either the old
    file, the complete new one, or absent; never a partial write.

    Args:
        path: final file.
        fsync: flush the new file to disk before it takes the final name (checkpoints that a
            resumed run must be able to trust after a power cut).
        mode: permissions of the final file (``mkstemp`` creates private files).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def model_file_kind(path: str | os.PathLike) -> str:
    """What a model file is, from its first bytes (and suffix), without loading it.

    Returns one of ``safetensors``, ``onnx``, ``torch`` (a ``torch.save`` zip or pickle),
    ``empty`` or ``unknown``: enough to tell a user who gave one kind where another was needed
    what they gave, rather than "corrupt".
    """
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    size = path.stat().st_size
    if not head:
        return "empty"
    if len(head) > 8:
        header_len = int.from_bytes(head[:8], "little")
        if 0 < header_len < size and head[8:9] == b"{":
            return "safetensors"
    if head[:4] == b"PK\x03\x04" or (head[0] == 0x80 and 2 <= head[1] <= 5):
        return "torch"
    # an ONNX ModelProto starts with its ir_version (field 1, varint) and names its opsets
    if path.suffix.lower() == ".onnx" or (head[0] == 0x08 and b"onnx" in head):
        return "onnx"
    return "unknown"
