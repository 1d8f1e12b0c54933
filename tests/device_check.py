"""Device logic tested without a GPU: a stand-in accelerator that refuses ops mixing devices.

Inside ``DeviceCheck()``, ``tensor.to("meta")`` (or a factory given ``device="meta"``) makes a
:class:`Remote` tensor: it reports ``device == meta`` like a tensor on another device, but holds
real CPU data, so the code under test computes real values (losses, decoded text, ``.item()``).
Every op is checked as a GPU would: an op taking a Remote tensor and a CPU tensor that is not a
0-dim scalar raises ``DeviceMixError`` naming the op -- where PyTorch on CUDA raises "Expected all
tensors to be on the same device". Copies between devices (``.to``, ``.cpu()``, ``copy_``) are
allowed and counted: ``transfers_to_host`` is what would be a device-to-host copy, each one a
synchronisation of the host with the GPU.
"""
from __future__ import annotations

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map

FAKE = torch.device("meta")
aten = torch.ops.aten
COPIES = {aten._to_copy.default, aten.copy_.default}
TO_HOST = {aten._local_scalar_dense.default, aten.is_nonzero.default}
# Ops that take their sizes as a CPU tensor whatever the device of the data (PyTorch's packed
# sequences: the lengths / batch sizes stay on the host by contract).
HOST_SIZES = {aten._pack_padded_sequence.default, aten._pad_packed_sequence.default, aten.lstm.data}


class DeviceMixError(RuntimeError):
    pass


class Remote(torch.Tensor):
    """A CPU tensor that says it lives on the stand-in device."""

    @staticmethod
    def __new__(cls, inner: torch.Tensor):
        wrapper = torch.Tensor._make_wrapper_subclass(
            cls, inner.size(), strides=inner.stride(), storage_offset=inner.storage_offset(), dtype=inner.dtype,
            layout=inner.layout, device=FAKE, requires_grad=inner.requires_grad)
        wrapper.inner = inner
        return wrapper

    def __repr__(self):
        return f"Remote({self.inner!r})"

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        raise RuntimeError(f"{func} on a Remote tensor outside DeviceCheck()")


def _is_fake(device) -> bool:
    return device is not None and torch.device(device) == FAKE


class _BelowTheDispatcher(TorchFunctionMode):
    """Two copies happen below the dispatcher, where the check cannot see them: ``torch.tensor(data,
    device=...)`` (made on the CPU here, then moved by ``.to``, which the check sees) and
    ``tensor.tolist()`` (a copy to the host, counted)."""

    def __init__(self, check: "DeviceCheck"):
        super().__init__()
        self.check = check

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func is torch.as_tensor and isinstance(args[0], Remote) and kwargs.get("device") in (None, FAKE):
            # already a tensor on the device: as_tensor returns it (under inference mode the generic
            # path would alias the wrapper, not its data)
            dtype = kwargs.get("dtype")
            return args[0] if dtype in (None, args[0].dtype) else args[0].to(dtype)
        if func in (torch.tensor, torch.as_tensor) and _is_fake(kwargs.get("device")):
            kwargs["device"] = torch.device("cpu")
            return func(*args, **kwargs).to(FAKE)
        if func is torch.Tensor.tolist and isinstance(args[0], Remote):
            self.check.transfers_to_host += 1
            return args[0].inner.tolist()
        return func(*args, **kwargs)


class DeviceCheck(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.transfers_to_host = 0
        self.ops: list[str] = []
        self._from_data = _BelowTheDispatcher(self)

    def __enter__(self):
        self._from_data.__enter__()
        return super().__enter__()

    def __exit__(self, *exc):
        try:
            return super().__exit__(*exc)
        finally:
            self._from_data.__exit__(*exc)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        remote, local = [], []

        def visit(x):
            if isinstance(x, Remote):
                remote.append(x)
            elif isinstance(x, torch.Tensor) and x.dim() > 0:
                local.append(x)

        tree_map(visit, (args, kwargs))
        self.ops.append(str(func))
        if remote and local and func not in COPIES | HOST_SIZES:
            raise DeviceMixError(f"{func} mixes devices: {FAKE} and {local[0].device} (a CPU tensor of shape "
                                 f"{tuple(local[0].shape)})")
        target = kwargs.get("device")
        to_fake = _is_fake(target)
        if to_fake:
            kwargs["device"] = torch.device("cpu")
        if remote and (func in TO_HOST or (func is aten._to_copy.default and target is not None and not to_fake)
                       or (func is aten.copy_.default and not isinstance(args[0], Remote))):
            self.transfers_to_host += 1
        unwrapped_args, unwrapped_kwargs = tree_map(_unwrap, (args, kwargs))
        out = func(*unwrapped_args, **unwrapped_kwargs)
        if func is aten._to_copy.default and target is not None and not to_fake:
            return out  # copied to the host: a plain tensor
        if func is aten.copy_.default:
            return args[0]  # in place: the destination keeps its device
        if func in HOST_SIZES and func is not aten.lstm.data:
            return (_wrap(out[0]), *out[1:])  # the data on the device, its sizes on the host
        if remote or to_fake:
            return tree_map(_wrap, out)
        return out


def _unwrap(x):
    return x.inner if isinstance(x, Remote) else x


def _wrap(x):
    return Remote(x) if isinstance(x, torch.Tensor) and not isinstance(x, Remote) else x


def to_fake(tree):
    """Tensors of a nested batch (dicts, lists) moved to the stand-in device; call inside DeviceCheck()."""
    return tree_map(lambda x: x.to(FAKE) if isinstance(x, torch.Tensor) else x, tree)
