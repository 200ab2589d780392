"""Fallback ``torchvision::nms`` for installs whose torchvision C++ ops cannot load.

Why this exists: Ultralytics' predictor does ``import torchvision`` during warm-up and then
prefers ``torchvision.ops.nms``. Here torchvision 0.28 is a build whose ``_C.so`` links
against CUDA libraries (``libc10_cuda.so``) while torch 2.13 is a CPU-only build, so the
extension fails to load, no ``torchvision::nms`` operator gets registered, and even
``import torchvision`` dies (``_meta_registrations`` decorates that operator at import
time: "operator torchvision::nms does not exist").

What it does, only in that case: registers the schema ``torchvision::nms`` (and
``torchvision::qnms``, which ``import torchvision`` also expects to exist) through
``torch.library`` with a CPU kernel (the project's one NMS, :mod:`aas_core.vision.nms`), and
lets ``torchvision.ops.nms`` through torchvision's "are the C++ ops loaded?" guard. Every other torchvision op keeps its original
guard: it uses torchvision's own pure-python fallback where one exists (roi_align) or raises
as before (deform_conv2d, ...).

On a normal install (the real extension loads and its ``nms`` runs on CPU) nothing is
touched: :func:`ensure_torchvision_nms` returns ``False`` after one probe.
"""

from __future__ import annotations

import glob
import importlib.util
import logging
import os
import sys
import threading

import torch

from aas_core.vision.nms import nms

log = logging.getLogger(__name__)

_lock = threading.Lock()
_shim_lib: torch.library.Library | None = None  # kept alive: dropping it unregisters the ops

_NMS_SCHEMA = "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"
_QNMS_SCHEMA = "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"


def nms_cpu(dets: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """``torchvision::nms`` kernel: torchvision's tensor contract around our one NMS.

    The algorithm is :func:`aas_core.vision.nms.nms` (numpy, torchvision's semantics: kept
    indices by decreasing score, ties by index, suppressed when IoU > ``iou_threshold``); only
    the tensor checks and conversions are here. Returns int64 indices; boxes are xyxy.
    """
    if dets.dim() != 2 or dets.size(1) != 4:
        raise ValueError(f"boxes should have shape (N, 4), got {tuple(dets.shape)}")
    if scores.dim() != 1 or scores.size(0) != dets.size(0):
        raise ValueError(f"scores should have shape ({dets.size(0)},), got {tuple(scores.shape)}")
    if dets.numel() == 0:
        return torch.empty(0, dtype=torch.int64, device=dets.device)
    # torchvision accepts any threshold; above 1 nothing is suppressed, exactly as at 1.
    keep = nms(dets.detach().float().cpu().numpy(), scores.detach().float().cpu().numpy(),
               min(float(iou_threshold), 1.0))
    return torch.from_numpy(keep).to(dets.device)


def _op_exists(name: str) -> bool:
    try:
        getattr(torch.ops.torchvision, name)
    except (AttributeError, RuntimeError):
        return False
    return True


def _try_load_torchvision_extension() -> None:
    """Load torchvision's ``_C`` library the way ``torchvision.extension`` does, quietly.

    Done without importing torchvision, because on the broken install that import raises.
    On a working install this only registers the real ops a little earlier than
    ``import torchvision`` would (loading the same library twice is a no-op).
    """
    if "torchvision" in sys.modules:
        return  # torchvision already ran its own loader
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return
    for folder in spec.submodule_search_locations:
        for lib in sorted(glob.glob(os.path.join(folder, "_C.*so")) + glob.glob(os.path.join(folder, "_C.pyd"))):
            try:
                torch.ops.load_library(lib)
                return
            except (OSError, RuntimeError, ImportError) as exc:
                log.debug("torchvision extension %s does not load: %s", lib, exc)


def native_nms_works() -> bool:
    """True when a real (non-shim) ``torchvision::nms`` is registered and runs on CPU."""
    if _shim_lib is not None:
        return False
    if not _op_exists("nms"):
        _try_load_torchvision_extension()
    if not _op_exists("nms"):
        return False
    try:
        out = torch.ops.torchvision.nms(torch.tensor([[0.0, 0.0, 1.0, 1.0]]), torch.tensor([1.0]), 0.5)
    except (RuntimeError, NotImplementedError):
        return False
    return out.tolist() == [0]


def _install_shim() -> None:
    global _shim_lib
    lib = torch.library.Library("torchvision", "FRAGMENT")  # noqa: TOR901 - registering a missing op is the point
    if not _op_exists("nms"):
        lib.define(_NMS_SCHEMA)
    if not _op_exists("qnms"):
        lib.define(_QNMS_SCHEMA)  # schema only: `import torchvision` registers a fake kernel for it
    lib.impl("nms", nms_cpu, "CPU")
    _shim_lib = lib
    log.warning(
        "torchvision C++ ops are unusable with this torch build; using a numpy CPU torchvision::nms instead"
    )


def _open_torchvision_guard() -> None:
    """Let ``torchvision.ops.nms`` past ``_assert_has_ops`` (it checks that ``_C`` loaded).

    Only the name bound inside ``torchvision.ops.boxes`` is replaced; the other op modules
    keep the original guard and so still fail loudly when called.
    """
    # Earlier failed `import torchvision` attempts leave half-initialised submodules behind;
    # drop them so the import below starts clean now that the operator exists.
    if "torchvision" not in sys.modules:
        for mod in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[mod]
    import torchvision.ops.boxes as tv_boxes

    def _assert_nms_registered() -> None:
        if not _op_exists("nms"):
            raise RuntimeError("torchvision::nms is not registered")

    tv_boxes._assert_has_ops = _assert_nms_registered  # type: ignore[attr-defined]


def ensure_torchvision_nms() -> bool:
    """Make ``torchvision.ops.nms`` usable on CPU. Returns True if the fallback is in use.

    Idempotent and thread-safe; call it before anything imports torchvision (the
    Ultralytics backend does so in its constructor).
    """
    with _lock:
        if _shim_lib is not None:
            return True
        if native_nms_works():
            return False
        _install_shim()
        _open_torchvision_guard()
        return True


def shim_active() -> bool:
    """Whether this process is using the fallback kernel (for diagnostics and tests)."""
    return _shim_lib is not None
