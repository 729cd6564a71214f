"""Read MindSpore `.ckpt` checkpoints into torch tensors, without MindSpore or protobuf (docs/checkpoints.md).

A `.ckpt` file is protobuf (`mindspore/ccsrc/utils/checkpoint.proto`):

    message Checkpoint {
        message Value { required string tag = 1; oneof value { TensorProto tensor = 2; MapTensorProto maptensor = 3; } }
        repeated Value value = 1;
    }
    message TensorProto { repeated int64 dims = 1; required string tensor_type = 2; required bytes tensor_content = 3; }

MindSpore writes one `Checkpoint` message per parameter, and a large parameter as several messages with
the same tag whose contents concatenate, so the file is their concatenation (which protobuf reads as one
message); `save_checkpoint(..., crc_check=True)` appends b'crc_num' and a 10-byte big-endian CRC32 of
everything before it. Encrypted checkpoints are not readable without their key and are refused.
"""
import binascii
import math
from pathlib import Path
from typing import Dict, List, Tuple, Union

import torch

__all__ = ['MindSporeCheckpointError', 'is_mindspore_checkpoint', 'load_mindspore_checkpoint']

_DTYPES = {
    'Float16': torch.float16, 'Float32': torch.float32, 'Float64': torch.float64, 'BFloat16': torch.bfloat16,
    'Int8': torch.int8, 'Int16': torch.int16, 'Int32': torch.int32, 'Int64': torch.int64,
    'UInt8': torch.uint8, 'UInt16': torch.uint16, 'UInt32': torch.uint32, 'UInt64': torch.uint64,
    'Bool': torch.bool,
}
_CRC_MARK = b'crc_num'
_VARINT, _FIXED64, _BYTES, _FIXED32 = 0, 1, 2, 5


class MindSporeCheckpointError(ValueError):
    """A file that is not a readable MindSpore checkpoint; the message names the file and the problem."""


class _Truncated(Exception):
    pass


def _varint(buf: memoryview, pos: int) -> Tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise _Truncated(pos)
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError(f'malformed varint at byte {pos}')


def _fields(buf: memoryview, base: int = 0):
    """Yield (field number, wire type, value, offset) of a protobuf message; bytes fields as memoryviews."""
    pos = 0
    while pos < len(buf):
        start = pos
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == _VARINT:
            value, pos = _varint(buf, pos)
        elif wire == _BYTES:
            size, pos = _varint(buf, pos)
            if pos + size > len(buf):
                raise _Truncated(base + pos + size)
            value, pos = buf[pos:pos + size], pos + size
        elif wire in (_FIXED64, _FIXED32):
            size = 8 if wire == _FIXED64 else 4
            if pos + size > len(buf):
                raise _Truncated(base + pos + size)
            value, pos = int.from_bytes(buf[pos:pos + size], 'little'), pos + size
        else:
            raise ValueError(f'unsupported protobuf wire type {wire} at byte {base + start}')
        yield field, wire, value, base + start


def _tensor_proto(buf: memoryview, offset: int) -> Tuple[List[int], str, memoryview]:
    dims, dtype, content = [], None, None
    for field, wire, value, _ in _fields(buf, offset):
        if field == 1 and wire == _VARINT:
            dims.append(value)
        elif field == 1 and wire == _BYTES:  # packed dims
            dims.extend(_packed_varints(value))
        elif field == 2 and wire == _BYTES:
            dtype = bytes(value).decode('utf-8')
        elif field == 3 and wire == _BYTES:
            content = value
    if dtype is None or content is None:
        raise ValueError(f'tensor at byte {offset} lacks its type or content')
    return dims, dtype, content


def _packed_varints(buf: memoryview) -> List[int]:
    values, pos = [], 0
    while pos < len(buf):
        value, pos = _varint(buf, pos)
        values.append(value)
    return values


def _read_values(data: memoryview) -> List[Tuple[str, List[int], str, memoryview]]:
    values = []
    for field, wire, value, offset in _fields(data):
        if field != 1 or wire != _BYTES:
            raise ValueError(f'unexpected field {field} (wire type {wire}) at byte {offset}: not a Checkpoint message')
        tag, tensor = None, None
        for vfield, vwire, vvalue, voffset in _fields(value, offset):
            if vfield == 1 and vwire == _BYTES:
                tag = bytes(vvalue).decode('utf-8')
            elif vfield == 2 and vwire == _BYTES:
                tensor = _tensor_proto(vvalue, voffset)
            elif vfield == 3:
                raise ValueError(f'map tensor {tag!r} at byte {offset}: map parameters are not supported')
        if tag is None or tensor is None:
            raise ValueError(f'entry at byte {offset} lacks its name or tensor')
        values.append((tag, *tensor))
    return values


def _strip_crc(data: bytes) -> bytes:
    """The checkpoint without its CRC trailer, checked; files saved without one are returned as they are."""
    if len(data) >= 17 and data[-17:-10] == _CRC_MARK:
        body = data[:-17]
        if binascii.crc32(body) != int.from_bytes(data[-10:], 'big'):
            raise ValueError('CRC32 check failed: the file is damaged')
        return body
    return data


def load_mindspore_checkpoint(path: Union[str, Path]) -> Dict[str, Union[torch.Tensor, str]]:
    """Parameters of a MindSpore `.ckpt` file by name, in file order; string entries stay strings.

    Raises MindSporeCheckpointError naming the file when it is truncated, corrupt, encrypted or holds
    a tensor whose bytes do not match its shape and type.
    """
    path = Path(path)
    try:
        body = _strip_crc(path.read_bytes())
        if not body:
            raise ValueError('the file is empty')
        entries = _read_values(memoryview(body))
    except _Truncated as e:
        raise MindSporeCheckpointError(
            f'{path}: truncated MindSpore checkpoint (a field runs past the end, at byte {e.args[0]} of '
            f'{path.stat().st_size})') from None
    except (ValueError, UnicodeDecodeError) as e:
        raise MindSporeCheckpointError(
            f'{path}: not a readable MindSpore checkpoint ({e}); encrypted checkpoints need MindSpore and '
            f'their key') from None

    chunks: Dict[str, Tuple[List[int], str, List[memoryview]]] = {}
    for tag, dims, dtype, content in entries:
        if tag in chunks:
            if (dims, dtype) != chunks[tag][:2]:
                raise MindSporeCheckpointError(f'{path}: slices of {tag!r} disagree on shape or type')
            chunks[tag][2].append(content)
        else:
            chunks[tag] = (dims, dtype, [content])

    out: Dict[str, Union[torch.Tensor, str]] = {}
    for tag, (dims, dtype, parts) in chunks.items():
        data = b''.join(parts)
        if dtype == 'str':
            out[tag] = data.decode('utf-8', errors='replace')
            continue
        if dtype not in _DTYPES:
            raise MindSporeCheckpointError(f'{path}: {tag!r} has unsupported tensor type {dtype!r}')
        torch_dtype = _DTYPES[dtype]
        numel, itemsize = math.prod(dims), torch_dtype.itemsize
        if len(data) != numel * itemsize:
            raise MindSporeCheckpointError(
                f'{path}: {tag!r} holds {len(data)} bytes, but shape {tuple(dims)} of {dtype} needs '
                f'{numel * itemsize} (truncated or corrupt)')
        out[tag] = torch.frombuffer(bytearray(data), dtype=torch_dtype).reshape(dims) if numel else \
            torch.empty(dims, dtype=torch_dtype)
    return out


def is_mindspore_checkpoint(path: Union[str, Path]) -> bool:
    """Whether the file starts like a MindSpore checkpoint: a Checkpoint.Value whose first field is its name."""
    with open(path, 'rb') as f:
        head = f.read(64)
    if len(head) < 4 or head[0] != 0x0A:  # field 1 (value), length-delimited
        return False
    try:
        _, pos = _varint(memoryview(head), 1)
        return head[pos] == 0x0A  # Value.tag, length-delimited
    except (_Truncated, IndexError, ValueError):
        return False
