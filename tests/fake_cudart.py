"""A strict fake of cuda-python's runtime module (``cuda.bindings.runtime``) with host memory as "device" memory.

Same call shapes as the real module (every call returns ``(cudaError_t, *values)``; streams are
``cudaStream_t`` objects that convert with ``int()``), plus checks the real driver would make: copies
must go the way their ``cudaMemcpyKind`` says and stay inside an allocation, streams must exist, frees
must match allocations. ``STATE`` controls failures (no driver, out of memory) and records every call.
"""

from __future__ import annotations

import ctypes
import enum
from dataclasses import dataclass, field

import numpy as np


class cudaError_t(enum.IntEnum):  # noqa: N801 - the real names
    cudaSuccess = 0
    cudaErrorInvalidValue = 1
    cudaErrorMemoryAllocation = 2
    cudaErrorInvalidDevicePointer = 17
    cudaErrorInvalidMemcpyDirection = 21
    cudaErrorInsufficientDriver = 35
    cudaErrorNoDevice = 100
    cudaErrorInvalidResourceHandle = 400


class cudaMemcpyKind(enum.IntEnum):  # noqa: N801
    cudaMemcpyHostToHost = 0
    cudaMemcpyHostToDevice = 1
    cudaMemcpyDeviceToHost = 2
    cudaMemcpyDeviceToDevice = 3
    cudaMemcpyDefault = 4


cudaStreamDefault = 0  # noqa: N816
cudaStreamNonBlocking = 1  # noqa: N816

_MESSAGES = {
    cudaError_t.cudaSuccess: b"no error",
    cudaError_t.cudaErrorInsufficientDriver: b"CUDA driver version is insufficient for CUDA runtime version",
    cudaError_t.cudaErrorMemoryAllocation: b"out of memory",
    cudaError_t.cudaErrorInvalidValue: b"invalid argument",
}


class cudaStream_t:  # noqa: N801
    def __init__(self, handle: int = 0):
        self._handle = int(handle)

    def __int__(self) -> int:
        return self._handle

    def getPtr(self) -> int:  # noqa: N802 - the real name
        return self._handle


@dataclass
class Props:
    name: bytes = b"NVIDIA GeForce RTX 3060" + b"\x00" * 8
    major: int = 8
    minor: int = 6
    totalGlobalMem: int = 12 << 30  # noqa: N815


@dataclass
class State:
    no_driver: bool = False
    fail_malloc: bool = False
    props: Props = field(default_factory=Props)
    allocations: dict = field(default_factory=dict)  # ptr -> numpy buffer
    streams: dict = field(default_factory=dict)  # handle -> flags
    calls: list = field(default_factory=list)
    next_stream: int = 0x5000

    def device_range(self, ptr: int, count: int) -> bool:
        return any(p <= ptr and ptr + count <= p + buf.nbytes for p, buf in self.allocations.items())


STATE = State()


def reset(**kw) -> State:
    global STATE
    STATE = State(**kw)
    return STATE


def _ok(*values):
    return (cudaError_t.cudaSuccess, *values)


def cudaGetErrorString(error):  # noqa: N802
    return _ok(_MESSAGES.get(cudaError_t(int(error)), b"unknown error"))


def cudaSetDevice(device):  # noqa: N802
    STATE.calls.append(("cudaSetDevice", device))
    if STATE.no_driver:
        return (cudaError_t.cudaErrorInsufficientDriver,)
    return _ok()


def cudaGetDeviceProperties(device):  # noqa: N802
    STATE.calls.append(("cudaGetDeviceProperties", device))
    if STATE.no_driver:
        return (cudaError_t.cudaErrorInsufficientDriver, None)
    if int(device) != 0:
        return (cudaError_t.cudaErrorInvalidValue, None)
    return _ok(STATE.props)


def cudaMalloc(size):  # noqa: N802
    if not isinstance(size, int) or size <= 0:
        raise TypeError(f"cudaMalloc(size: int > 0), got {size!r}")
    STATE.calls.append(("cudaMalloc", size))
    if STATE.fail_malloc:
        return (cudaError_t.cudaErrorMemoryAllocation, 0)
    buf = np.zeros(size, np.uint8)
    ptr = buf.ctypes.data
    STATE.allocations[ptr] = buf
    return _ok(ptr)


def cudaFree(ptr):  # noqa: N802
    STATE.calls.append(("cudaFree", ptr))
    if ptr not in STATE.allocations:
        return (cudaError_t.cudaErrorInvalidDevicePointer,)
    del STATE.allocations[ptr]
    return _ok()


def _stream_ok(stream) -> bool:
    if not isinstance(stream, cudaStream_t | int):
        raise TypeError(f"stream must be a cudaStream_t or int, got {type(stream).__name__}")
    return int(stream) == 0 or int(stream) in STATE.streams


def cudaMemcpyAsync(dst, src, count, kind, stream):  # noqa: N802
    for v in (dst, src, count):
        if not isinstance(v, int):
            raise TypeError(f"cudaMemcpyAsync takes int pointers and count, got {type(v).__name__}")
    STATE.calls.append(("cudaMemcpyAsync", int(kind), count))
    if not _stream_ok(stream):
        return (cudaError_t.cudaErrorInvalidResourceHandle,)
    want = {
        cudaMemcpyKind.cudaMemcpyHostToDevice: (True, False),
        cudaMemcpyKind.cudaMemcpyDeviceToHost: (False, True),
        cudaMemcpyKind.cudaMemcpyDeviceToDevice: (True, True),
    }.get(cudaMemcpyKind(int(kind)))
    if want is None or (STATE.device_range(dst, count), STATE.device_range(src, count)) != want:
        return (cudaError_t.cudaErrorInvalidMemcpyDirection,)
    ctypes.memmove(dst, src, count)
    return _ok()


def cudaStreamCreateWithFlags(flags):  # noqa: N802
    STATE.next_stream += 1
    STATE.streams[STATE.next_stream] = flags
    STATE.calls.append(("cudaStreamCreateWithFlags", flags))
    return _ok(cudaStream_t(STATE.next_stream))


def cudaStreamCreate():  # noqa: N802
    return cudaStreamCreateWithFlags(cudaStreamDefault)


def cudaStreamSynchronize(stream):  # noqa: N802
    STATE.calls.append(("cudaStreamSynchronize", int(stream)))
    return _ok() if _stream_ok(stream) else (cudaError_t.cudaErrorInvalidResourceHandle,)


def cudaStreamDestroy(stream):  # noqa: N802
    STATE.calls.append(("cudaStreamDestroy", int(stream)))
    if STATE.streams.pop(int(stream), None) is None:
        return (cudaError_t.cudaErrorInvalidResourceHandle,)
    return _ok()


def read(ptr: int, nbytes: int) -> bytes:
    """Test helper: the bytes at a fake device pointer."""
    if not STATE.device_range(ptr, nbytes):
        raise ValueError("not a device range")
    return ctypes.string_at(ptr, nbytes)
