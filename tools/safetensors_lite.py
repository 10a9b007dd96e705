"""Minimal safetensors writer and reader (json + struct only).

The golden files must not depend on the `safetensors` package (it is not a
Debian package), and writing the format by hand also documents it:

    u64 little-endian N | N bytes of JSON header, space-padded to a multiple of 8 |
    raw little-endian tensor data

The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin,
end]} with offsets relative to the first data byte, plus "__metadata__".
Tensors are laid out in sorted name order so the output is byte-stable.
"""

import json
import struct

import torch

_DTYPE_NAMES = {torch.float32: "F32", torch.bfloat16: "BF16", torch.int64: "I64"}
_NAME_DTYPES = {name: dtype for dtype, name in _DTYPE_NAMES.items()}
# Raw bytes go through an integer view: numpy has no bfloat16.
_BIT_VIEWS = {torch.float32: torch.int32, torch.bfloat16: torch.int16, torch.int64: torch.int64}


def _tensor_bytes(tensor):
    bits = tensor.detach().contiguous().view(_BIT_VIEWS[tensor.dtype]).numpy()
    return bits.astype(bits.dtype.newbyteorder("<"), copy=False).tobytes()


def encode(tensors, metadata=None):
    """Returns the bytes of a safetensors file holding `tensors` (name -> tensor)."""
    header = {"__metadata__": dict(metadata or {"format": "pt"})}
    chunks = []
    offset = 0
    for name in sorted(tensors):
        tensor = tensors[name]
        if tensor.dtype not in _DTYPE_NAMES:
            raise ValueError(f"{name}: unsupported dtype {tensor.dtype}")
        data = _tensor_bytes(tensor)
        header[name] = {
            "dtype": _DTYPE_NAMES[tensor.dtype],
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def write(path, tensors, metadata=None):
    with open(path, "wb") as f:
        f.write(encode(tensors, metadata))


def read(path):
    """Returns (tensors, metadata); strict enough to catch a writer bug."""
    with open(path, "rb") as f:
        blob = f.read()
    (header_len,) = struct.unpack_from("<Q", blob, 0)
    if header_len % 8 or 8 + header_len > len(blob):
        raise ValueError(f"{path}: bad header length {header_len}")
    header = json.loads(blob[8 : 8 + header_len].decode("utf-8"))
    metadata = header.pop("__metadata__", {})
    data = blob[8 + header_len :]
    tensors = {}
    expected_begin = 0
    for name, info in sorted(header.items(), key=lambda item: item[1]["data_offsets"][0]):
        begin, end = info["data_offsets"]
        if begin != expected_begin:
            raise ValueError(f"{path}: {name} leaves a gap or overlaps at {begin}")
        dtype = _NAME_DTYPES[info["dtype"]]
        shape = info["shape"]
        raw = bytearray(data[begin:end])
        flat = torch.frombuffer(raw, dtype=_BIT_VIEWS[dtype]) if raw else torch.empty(0, dtype=_BIT_VIEWS[dtype])
        tensor = flat.view(dtype).reshape(shape)
        if tensor.numel() * tensor.element_size() != end - begin:
            raise ValueError(f"{path}: {name} has {end - begin} bytes for shape {shape}")
        tensors[name] = tensor
        expected_begin = end
    if expected_begin != len(data):
        raise ValueError(f"{path}: {len(data) - expected_begin} trailing bytes")
    return tensors, metadata
