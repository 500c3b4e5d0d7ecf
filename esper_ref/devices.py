"""Device names checked before a run starts, with the reason a device is unusable."""

from __future__ import annotations

import torch


def check_device(name: str) -> torch.device:
    """``name`` as a ``torch.device`` that can run here, or ``ValueError`` saying why not."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"device {name!r}: not a torch device; use cpu, cuda or cuda:N") from None
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        if torch.version.cuda is None:
            raise ValueError(
                f"device {name!r}: this torch ({torch.__version__}) is built without CUDA; "
                "install a CUDA build of torch or use --device cpu"
            )
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {name!r}: torch has CUDA {torch.version.cuda} but finds no usable "
                "GPU (no device, or the driver is missing or too old)"
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ValueError(f"device {name!r}: only {count} CUDA device(s) here")
        return device
    if device.type == "mps" and torch.backends.mps.is_available():
        return device
    raise ValueError(f"device {name!r}: {device.type} is not available here; use cpu or cuda")
