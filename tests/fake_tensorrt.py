"""A strict fake of the ``tensorrt`` Python module for driving the builder and runner without a GPU.

Method names and parameter names follow ``tensorrt-stubs`` 10.13 (``tests/test_tensorrt_api.py`` checks
that they do); arguments are type-checked as pybind11 would (an int stream handle, an int address, a
``Dims``-like shape). Behaviour follows the real library where colorize-rt depends on it:

* ``OnnxParser.parse`` imports graph inputs that also have an initializer as weights, not as network
  inputs (onnx-tensorrt's ``ModelImporter``), so a temperature initializer freezes T;
* ``IBuilderConfig.set_timing_cache`` returns False for a cache from another GPU/version, after which
  ``get_timing_cache()`` returns None;
* ``build_serialized_network`` returns None when a dynamic input has no shape in some profile;
* ``ICudaEngine.create_execution_context`` can return None (device memory short);
* ``IExecutionContext``: switching profile forgets the input shapes; ``set_input_shape`` returns False
  outside the active profile; ``execute_async_v3`` returns False unless every dynamic input has a shape
  and every I/O tensor an address.

Two kernels: ``onnxruntime`` runs the parsed ONNX on the bytes at the bound (fake, host-backed) device
addresses; ``copy`` is a pure-CUDA stand-in (device-to-device ``cudaMemcpyAsync`` on the given stream:
``ab[n, 0] = ab[n, 1] = L[n]``, then ``ab[n, 1, 0, 0] = temperature``) that runs on a real GPU too.
``STATE`` sets the behaviour and records the calls.
"""

from __future__ import annotations

import base64
import ctypes
import enum
import json
from dataclasses import dataclass, field

import numpy as np

__version__ = "10.13.0.35"


@dataclass
class State:
    version: str = "10.13.0.35"
    timing_cache_key: bytes = b"fake-gpu-sm86"
    parse_fails: bool = False
    build_fails: bool = False
    context_none: bool = False
    execute_fails: bool = False
    kernel: str = "onnxruntime"  # or "copy"
    cudart: object = None  # the cuda runtime module the copy kernel uses
    calls: list = field(default_factory=list)
    last_context: object = None


STATE = State()


def reset(**kw) -> State:
    global STATE, __version__
    STATE = State(**kw)
    __version__ = STATE.version
    return STATE


def _expect(value, types, what: str):
    if not isinstance(value, types) or (types is int and isinstance(value, bool)):
        raise TypeError(f"incompatible function arguments: {what} must be {types}, got {type(value).__name__}")


def _shape(value, what: str) -> tuple[int, ...]:
    _expect(value, tuple | list, what)
    for v in value:
        _expect(v, int | np.integer, what)
    return tuple(int(v) for v in value)


# -- enums -----------------------------------------------------------------------------------------------
class DataType(enum.IntEnum):
    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BOOL = 4
    INT64 = 8


_NP = {DataType.FLOAT: np.float32, DataType.HALF: np.float16, DataType.INT8: np.int8, DataType.INT32: np.int32}
_NP.update({DataType.BOOL: np.bool_, DataType.INT64: np.int64})


def nptype(trt_type):
    return _NP[DataType(trt_type)]


class TensorIOMode(enum.IntEnum):
    NONE = 0
    INPUT = 1
    OUTPUT = 2


class MemoryPoolType(enum.IntEnum):
    WORKSPACE = 0


class BuilderFlag(enum.IntEnum):
    VERSION_COMPATIBLE = 13
    EXCLUDE_LEAN_RUNTIME = 14


class NetworkDefinitionCreationFlag(enum.IntEnum):
    EXPLICIT_BATCH = 0
    STRONGLY_TYPED = 1


class HardwareCompatibilityLevel(enum.IntEnum):
    NONE = 0
    AMPERE_PLUS = 1
    SAME_COMPUTE_CAPABILITY = 2


class ILogger:
    class Severity(enum.IntEnum):
        INTERNAL_ERROR = 0
        ERROR = 1
        WARNING = 2
        INFO = 3
        VERBOSE = 4


class Logger(ILogger):
    INTERNAL_ERROR = ILogger.Severity.INTERNAL_ERROR
    ERROR = ILogger.Severity.ERROR
    WARNING = ILogger.Severity.WARNING
    INFO = ILogger.Severity.INFO
    VERBOSE = ILogger.Severity.VERBOSE

    def __init__(self, min_severity=ILogger.Severity.WARNING):
        _expect(min_severity, ILogger.Severity, "min_severity")
        self.min_severity = min_severity


class IHostMemory:
    def __init__(self, data: bytes):
        self._data = bytes(data)

    def __bytes__(self) -> bytes:
        return self._data

    @property
    def nbytes(self) -> int:
        return len(self._data)


# -- builder ---------------------------------------------------------------------------------------------
class ITimingCache:
    def __init__(self, data: bytes):
        self._data = data

    def serialize(self) -> IHostMemory:
        return IHostMemory(self._data)


class IOptimizationProfile:
    def __init__(self):
        self.shapes: dict[str, tuple] = {}

    def set_shape(self, input, min, opt, max):  # noqa: A002 - the stub's names
        _expect(input, str, "input")
        self.shapes[input] = (_shape(min, "min"), _shape(opt, "opt"), _shape(max, "max"))
        STATE.calls.append(("set_shape", input))

    def valid(self) -> bool:
        return all(
            len(lo) == len(op) == len(hi) and all(a <= b <= c for a, b, c in zip(lo, op, hi, strict=True))
            for lo, op, hi in self.shapes.values()
        )


class INetworkDefinition:
    def __init__(self, flags: int):
        self.flags = flags
        self.inputs: list[dict] = []
        self.outputs: list[dict] = []
        self.onnx = b""


class ParserError:
    def __init__(self, desc: str):
        self._desc = desc

    def desc(self) -> str:
        return self._desc

    def __str__(self) -> str:
        return f"In node -1: {self._desc}"


def _io(value_info, dims_known=True) -> dict:
    tt = value_info.type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim]
    dtype = {1: DataType.FLOAT, 10: DataType.HALF, 6: DataType.INT32, 7: DataType.INT64}.get(tt.elem_type, DataType.FLOAT)
    return {"name": value_info.name, "shape": dims, "dtype": int(dtype)}


class OnnxParser:
    def __init__(self, network, logger):
        _expect(network, INetworkDefinition, "network")
        _expect(logger, ILogger, "logger")
        self.network = network
        self._errors: list[ParserError] = []

    def parse(self, model, path=None) -> bool:
        import onnx

        _expect(model, bytes | bytearray | memoryview, "model")
        STATE.calls.append(("parse",))
        if STATE.parse_fails:
            self._errors.append(ParserError("Unsupported ONNX data type: UINT8 (2)"))
            return False
        m = onnx.load_from_string(bytes(model))
        inits = {i.name for i in m.graph.initializer}
        # ModelImporter: an input that also has an initializer is imported as a weight
        self.network.inputs = [_io(i) for i in m.graph.input if i.name not in inits]
        self.network.outputs = [_io(o) for o in m.graph.output]
        self.network.onnx = bytes(model)
        return True

    @property
    def num_errors(self) -> int:
        return len(self._errors)

    def get_error(self, index: int):
        _expect(index, int, "index")
        return self._errors[index]


class IBuilderConfig:
    def __init__(self):
        self.pool_limits: dict = {}
        self.profiles: list[IOptimizationProfile] = []
        self.flags: set = set()
        self._cache: ITimingCache | None = None
        self._hw = HardwareCompatibilityLevel.NONE

    def set_memory_pool_limit(self, pool, pool_size):
        _expect(pool, MemoryPoolType, "pool")
        _expect(pool_size, int, "pool_size")
        self.pool_limits[pool] = pool_size

    def add_optimization_profile(self, profile) -> int:
        _expect(profile, IOptimizationProfile, "profile")
        if not profile.valid():
            return -1
        self.profiles.append(profile)
        return len(self.profiles) - 1

    def create_timing_cache(self, serialized_timing_cache) -> ITimingCache:
        _expect(serialized_timing_cache, bytes | bytearray | memoryview, "serialized_timing_cache")
        return ITimingCache(bytes(serialized_timing_cache))

    def set_timing_cache(self, cache, ignore_mismatch) -> bool:
        _expect(cache, ITimingCache, "cache")
        _expect(ignore_mismatch, bool, "ignore_mismatch")
        STATE.calls.append(("set_timing_cache", bool(cache._data)))
        if cache._data and not cache._data.startswith(STATE.timing_cache_key) and not ignore_mismatch:
            self._cache = None  # rejected: the config has no cache any more
            return False
        self._cache = cache
        return True

    def get_timing_cache(self):
        return self._cache

    def set_flag(self, flag):
        _expect(flag, BuilderFlag, "flag")
        self.flags.add(flag)

    @property
    def hardware_compatibility_level(self):
        return self._hw

    @hardware_compatibility_level.setter
    def hardware_compatibility_level(self, level):
        _expect(level, HardwareCompatibilityLevel, "hardware_compatibility_level")
        self._hw = level


class Builder:
    def __init__(self, logger):
        _expect(logger, ILogger, "logger")

    def create_network(self, flags=0):
        _expect(flags, int, "flags")
        return INetworkDefinition(flags)

    def create_builder_config(self):
        return IBuilderConfig()

    def create_optimization_profile(self):
        return IOptimizationProfile()

    def build_serialized_network(self, network, config):
        _expect(network, INetworkDefinition, "network")
        _expect(config, IBuilderConfig, "config")
        STATE.calls.append(("build",))
        dynamic = [t["name"] for t in network.inputs if -1 in t["shape"]]
        if STATE.build_fails or not network.inputs or (dynamic and not config.profiles):
            return None
        if any(name not in p.shapes for p in config.profiles for name in dynamic):
            return None  # "Network has dynamic or shape inputs, but no optimization profile has been defined"
        if config._cache is not None:
            config._cache = ITimingCache(STATE.timing_cache_key + b":tactics")
        plan = {
            "fake_plan": 1,
            "version": STATE.version,
            "version_compatible": BuilderFlag.VERSION_COMPATIBLE in config.flags,
            "inputs": network.inputs,
            "outputs": network.outputs,
            "profiles": [{k: [list(s) for s in v] for k, v in p.shapes.items()} for p in config.profiles],
            "onnx": base64.b64encode(network.onnx).decode(),
        }
        return IHostMemory(json.dumps(plan).encode())


# -- runtime ---------------------------------------------------------------------------------------------
class Runtime:
    def __init__(self, logger):
        _expect(logger, ILogger, "logger")
        self._host_code = False

    @property
    def engine_host_code_allowed(self) -> bool:
        return self._host_code

    @engine_host_code_allowed.setter
    def engine_host_code_allowed(self, value):
        _expect(value, bool, "engine_host_code_allowed")
        self._host_code = value

    def deserialize_cuda_engine(self, serialized_engine):
        _expect(serialized_engine, bytes | bytearray | memoryview, "serialized_engine")
        try:
            plan = json.loads(bytes(serialized_engine))
            assert plan["fake_plan"] == 1
        except Exception:  # noqa: BLE001 - TensorRT logs "magic tag does not match" and returns None
            return None
        if plan["version_compatible"] and not self._host_code:
            return None  # the lean runtime inside a version-compatible plan is host code
        if not plan["version_compatible"] and plan["version"] != STATE.version:
            return None
        return ICudaEngine(plan)


class ICudaEngine:
    def __init__(self, plan: dict):
        self.plan = plan
        self._io = [*plan["inputs"], *plan["outputs"]]
        self._inputs = {t["name"] for t in plan["inputs"]}
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.log_severity_level = 3
        self.session = ort.InferenceSession(base64.b64decode(plan["onnx"]), so, providers=["CPUExecutionProvider"])

    @property
    def num_io_tensors(self) -> int:
        return len(self._io)

    @property
    def num_optimization_profiles(self) -> int:
        return len(self.plan["profiles"])

    def _tensor(self, name: str) -> dict:
        _expect(name, str, "name")
        for t in self._io:
            if t["name"] == name:
                return t
        raise KeyError(name)

    def get_tensor_name(self, index):
        _expect(index, int, "index")
        return self._io[index]["name"]

    def get_tensor_mode(self, name):
        return TensorIOMode.INPUT if self._tensor(name)["name"] in self._inputs else TensorIOMode.OUTPUT

    def get_tensor_dtype(self, name):
        return DataType(self._tensor(name)["dtype"])

    def get_tensor_shape(self, name):
        return tuple(self._tensor(name)["shape"])

    def get_tensor_profile_shape(self, name, profile_index):
        _expect(profile_index, int, "profile_index")
        return [tuple(s) for s in self.plan["profiles"][profile_index][name]]

    def create_execution_context(self, strategy=None):
        STATE.calls.append(("create_execution_context",))
        if STATE.context_none:
            return None
        STATE.last_context = IExecutionContext(self)
        return STATE.last_context


class IExecutionContext:
    def __init__(self, engine: ICudaEngine):
        self.engine = engine
        self.active_optimization_profile = 0
        self.shapes: dict[str, tuple] = {}
        self.addresses: dict[str, int] = {}
        self.events: list[tuple] = []

    def set_optimization_profile_async(self, profile_index, stream_handle) -> bool:
        _expect(profile_index, int, "profile_index")
        _expect(stream_handle, int, "stream_handle")
        self.events.append(("switch", profile_index))
        if not 0 <= profile_index < self.engine.num_optimization_profiles:
            return False
        self.active_optimization_profile = profile_index
        self.shapes.clear()  # input shapes must be set again for the new profile
        return True

    def set_input_shape(self, name, shape) -> bool:
        _expect(name, str, "name")
        shape = _shape(shape, "shape")
        self.events.append(("shape", name, shape))
        ranges = self.engine.plan["profiles"][self.active_optimization_profile].get(name)
        if ranges is None:
            return shape == self.engine.get_tensor_shape(name)
        lo, _, hi = ranges
        if len(shape) != len(lo) or not all(a <= s <= b for a, s, b in zip(lo, shape, hi, strict=True)):
            return False
        self.shapes[name] = shape
        return True

    def get_tensor_shape(self, name):
        declared = self.engine.get_tensor_shape(name)
        if name in self.engine._inputs:
            return self.shapes.get(name, declared)
        L = self.shapes.get("L")
        if L is None:
            return declared
        scale = 4 if name == "logits" else 1  # the 313-bin logits are at the network's stride 4 (ab at the input's size)
        return tuple(L[0] if d == -1 and k == 0 else (L[k] // scale if d == -1 else d) for k, d in enumerate(declared))

    def set_tensor_address(self, name, memory) -> bool:
        _expect(name, str, "name")
        _expect(memory, int, "memory")
        self.events.append(("address", name))
        try:
            self.engine._tensor(name)
        except KeyError:
            return False
        self.addresses[name] = memory
        return True

    def _ready(self) -> bool:
        dynamic = [t["name"] for t in self.engine.plan["inputs"] if -1 in t["shape"]]
        names = [t["name"] for t in self.engine._io]
        return all(n in self.shapes for n in dynamic) and all(n in self.addresses for n in names)

    def execute_async_v3(self, stream_handle) -> bool:
        _expect(stream_handle, int, "stream_handle")
        self.events.append(("execute", stream_handle))
        if STATE.execute_fails or not self._ready():
            return False
        (_copy_kernel if STATE.kernel == "copy" else _ort_kernel)(self, stream_handle)
        return True


def _host_array(ptr: int, shape: tuple, dtype) -> np.ndarray:
    n = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    buf = (ctypes.c_char * max(n, 1)).from_address(ptr)
    return np.frombuffer(buf, dtype=dtype, count=int(np.prod(shape, dtype=np.int64))).reshape(shape)


def _ort_kernel(ctx: IExecutionContext, stream_handle: int) -> None:
    feed = {}
    for t in ctx.engine.plan["inputs"]:
        shape = ctx.get_tensor_shape(t["name"])
        feed[t["name"]] = _host_array(ctx.addresses[t["name"]], shape, nptype(t["dtype"])).copy()
    outs = ctx.engine.session.run(None, feed)
    for t, value in zip(ctx.engine.plan["outputs"], outs, strict=True):
        value = np.ascontiguousarray(value, dtype=nptype(t["dtype"]))
        ctypes.memmove(ctx.addresses[t["name"]], value.ctypes.data, value.nbytes)


def _copy_kernel(ctx: IExecutionContext, stream_handle: int) -> None:
    """Pure-CUDA stand-in: device-to-device copies on the caller's stream (works with real cuda-python)."""
    cudart = STATE.cudart
    d2d = cudart.cudaMemcpyKind.cudaMemcpyDeviceToDevice
    n, _, h, w = ctx.get_tensor_shape("L")
    plane = h * w * 4
    L, ab = ctx.addresses["L"], ctx.addresses["ab"]
    t = ctx.addresses.get("temperature")
    per_sample = t is not None and -1 in ctx.engine.get_tensor_shape("temperature")
    stream = stream_handle
    for i in range(n):
        for c in range(2):
            err = cudart.cudaMemcpyAsync(ab + (2 * i + c) * plane, L + i * plane, plane, d2d, stream)[0]
            assert int(err) == 0, err
        if t is not None:
            src = t + (4 * i if per_sample else 0)
            err = cudart.cudaMemcpyAsync(ab + (2 * i + 1) * plane, src, 4, d2d, stream)[0]
            assert int(err) == 0, err


def copy_kernel_reference(L: np.ndarray, temperature) -> np.ndarray:
    """What the ``copy`` kernel computes, in numpy."""
    L = np.asarray(L, np.float32)
    ab = np.repeat(L, 2, axis=1)
    t = np.broadcast_to(np.asarray(temperature, np.float32).reshape(-1), (L.shape[0],))
    ab[:, 1, 0, 0] = t
    return ab
