"""RetinaFace-MobileNet0.25 from biubug6/Face-Detector-1MB-with-landmark (MIT) in plain torch.

``mobilenet0.25_Final.pth`` (1.7 MB, 433k parameters) comes from Face-Detector-1MB-with-
landmark, the same author's edge variant of biubug6/Pytorch_Retinaface. The module tree and
key names are identical to Pytorch_Retinaface's RetinaFace-mnet, but the variant differs in
two ways that matter at inference (checked against its ``models/net.py``,
``data/config.py`` and the ncnn ``FaceDetector.cpp``):

* every activation is a plain ReLU (Pytorch_Retinaface: LeakyReLU(0.1) in the backbone,
  FPN and SSH);
* smaller anchors: min_sizes [[10, 20], [32, 64], [128, 256]] (Pytorch_Retinaface:
  [[16, 32], [64, 128], [256, 512]]). With the larger ones every box comes out ~1.6x too
  big (measured: 240 px boxes for 154 px faces).

Module names match the checkpoint exactly (``body.stage1..3``, ``fpn``, ``ssh1..3``,
``ClassHead`` / ``BboxHead`` / ``LandmarkHead`` with 2 anchors per cell), so
``load_state_dict(strict=True)`` proves the tensors fit. No torchvision: the backbone's
``IntermediateLayerGetter`` is just the three stages called in turn.

Pre/post-processing as in the original ``detect.py``: BGR float minus the mean (104, 117,
123), no scaling to [0, 1]; priors on strides 8/16/32; boxes and landmarks decoded with
variances (0.1, 0.2); confidence filter, top 5000 before NMS (IoU 0.4), 750 after. The
network is fully convolutional and runs at the image's own size, downsized first so the
long side is at most ``max_side``; results are mapped back to the input image.

Landmark order. RetinaFace is trained on the InsightFace authors' WIDER FACE landmark
annotations: left eye, right eye, nose, left mouth corner, right mouth corner *as seen in
the image* — already InsightFace's order, so nothing is reordered;
``tests/vision/test_retinaface_and_bnkps.py`` checks the order on real faces.

The checkpoint is read with ``torch.load(weights_only=True)`` (tensors only, no pickled
code). A truncated or foreign file raises :class:`~aas_core.vision.errors.ModelFileCorrupt`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from aas_core.vision._backend_utils import check_bgr_image, check_threshold, shrink_to
from aas_core.vision.errors import ModelFileCorrupt, require_file
from aas_core.vision.nms import nms
from aas_core.vision.types import Detections

#: cfg_mnet of Face-Detector-1MB-with-landmark (only the fields inference needs).
MIN_SIZES: tuple[tuple[int, int], ...] = ((10, 20), (32, 64), (128, 256))
STEPS: tuple[int, ...] = (8, 16, 32)
VARIANCE: tuple[float, float] = (0.1, 0.2)
MEAN_BGR: tuple[float, float, float] = (104.0, 117.0, 123.0)
PRE_NMS_TOP_K = 5000
KEEP_TOP_K = 750


def _build_network() -> Any:
    """RetinaFace-mnet as ``torch.nn.Module`` (imports torch lazily)."""
    import torch
    from torch import nn
    from torch.nn import functional as F  # noqa: N812

    # Every activation is a plain ReLU in this variant (Pytorch_Retinaface uses LeakyReLU(0.1)).
    def conv_bn(inp: int, oup: int, stride: int = 1) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(inp, oup, 3, stride, 1, bias=False), nn.BatchNorm2d(oup), nn.ReLU(inplace=True))

    def conv_bn_no_relu(inp: int, oup: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(inp, oup, 3, 1, 1, bias=False), nn.BatchNorm2d(oup))

    def conv_bn1x1(inp: int, oup: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(inp, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup), nn.ReLU(inplace=True))

    def conv_dw(inp: int, oup: int, stride: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(inp, inp, 3, stride, 1, groups=inp, bias=False),
            nn.BatchNorm2d(inp),
            nn.ReLU(inplace=True),
            nn.Conv2d(inp, oup, 1, 1, 0, bias=False),
            nn.BatchNorm2d(oup),
            nn.ReLU(inplace=True),
        )

    class MobileNetV1(nn.Module):
        """MobileNetV1 x0.25 without its classifier (the checkpoint has none)."""

        def __init__(self) -> None:
            super().__init__()
            self.stage1 = nn.Sequential(
                conv_bn(3, 8, 2), conv_dw(8, 16, 1), conv_dw(16, 32, 2),
                conv_dw(32, 32, 1), conv_dw(32, 64, 2), conv_dw(64, 64, 1),
            )
            self.stage2 = nn.Sequential(conv_dw(64, 128, 2), *[conv_dw(128, 128, 1) for _ in range(5)])
            self.stage3 = nn.Sequential(conv_dw(128, 256, 2), conv_dw(256, 256, 1))

        def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
            c1 = self.stage1(x)
            c2 = self.stage2(c1)
            return [c1, c2, self.stage3(c2)]

    class FPN(nn.Module):
        def __init__(self, in_channels: tuple[int, int, int], out_channels: int) -> None:
            super().__init__()
            self.output1 = conv_bn1x1(in_channels[0], out_channels)
            self.output2 = conv_bn1x1(in_channels[1], out_channels)
            self.output3 = conv_bn1x1(in_channels[2], out_channels)
            self.merge1 = conv_bn(out_channels, out_channels)
            self.merge2 = conv_bn(out_channels, out_channels)

        def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
            o1, o2, o3 = self.output1(feats[0]), self.output2(feats[1]), self.output3(feats[2])
            o2 = self.merge2(o2 + F.interpolate(o3, size=o2.shape[2:], mode="nearest"))
            o1 = self.merge1(o1 + F.interpolate(o2, size=o1.shape[2:], mode="nearest"))
            return [o1, o2, o3]

    class SSH(nn.Module):
        def __init__(self, in_channel: int, out_channel: int) -> None:
            super().__init__()
            self.conv3X3 = conv_bn_no_relu(in_channel, out_channel // 2)
            self.conv5X5_1 = conv_bn(in_channel, out_channel // 4)
            self.conv5X5_2 = conv_bn_no_relu(out_channel // 4, out_channel // 4)
            self.conv7X7_2 = conv_bn(out_channel // 4, out_channel // 4)
            self.conv7x7_3 = conv_bn_no_relu(out_channel // 4, out_channel // 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            c5_1 = self.conv5X5_1(x)
            out = torch.cat([self.conv3X3(x), self.conv5X5_2(c5_1), self.conv7x7_3(self.conv7X7_2(c5_1))], dim=1)
            return F.relu(out)

    class Head(nn.Module):
        """ClassHead / BboxHead / LandmarkHead: one 1x1 conv, ``per_anchor`` values per anchor."""

        def __init__(self, in_channels: int, num_anchors: int, per_anchor: int) -> None:
            super().__init__()
            self.per_anchor = per_anchor
            self.conv1x1 = nn.Conv2d(in_channels, num_anchors * per_anchor, kernel_size=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = self.conv1x1(x).permute(0, 2, 3, 1).contiguous()
            return out.view(out.shape[0], -1, self.per_anchor)

    class RetinaFace(nn.Module):
        def __init__(self, in_channel: int = 32, out_channel: int = 64, num_anchors: int = 2) -> None:
            super().__init__()
            self.body = MobileNetV1()
            self.fpn = FPN((in_channel * 2, in_channel * 4, in_channel * 8), out_channel)
            self.ssh1 = SSH(out_channel, out_channel)
            self.ssh2 = SSH(out_channel, out_channel)
            self.ssh3 = SSH(out_channel, out_channel)
            self.ClassHead = nn.ModuleList([Head(out_channel, num_anchors, 2) for _ in range(3)])
            self.BboxHead = nn.ModuleList([Head(out_channel, num_anchors, 4) for _ in range(3)])
            self.LandmarkHead = nn.ModuleList([Head(out_channel, num_anchors, 10) for _ in range(3)])

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            fpn = self.fpn(self.body(x))
            feats = [self.ssh1(fpn[0]), self.ssh2(fpn[1]), self.ssh3(fpn[2])]
            loc = torch.cat([h(f) for h, f in zip(self.BboxHead, feats)], dim=1)
            conf = torch.cat([h(f) for h, f in zip(self.ClassHead, feats)], dim=1)
            ldm = torch.cat([h(f) for h, f in zip(self.LandmarkHead, feats)], dim=1)
            return loc, F.softmax(conf, dim=-1), ldm

    return RetinaFace()


def prior_boxes(height: int, width: int) -> np.ndarray:
    """Anchors (cx, cy, w, h), normalised to the image, in the network's output order.

    Same order as the original ``PriorBox``: per stride, row-major over the feature map
    (``ceil(size / step)`` cells), then the two min_sizes of that stride.
    """
    out = []
    for step, sizes in zip(STEPS, MIN_SIZES):
        fh, fw = math.ceil(height / step), math.ceil(width / step)
        cy, cx = np.meshgrid((np.arange(fh) + 0.5) * step / height, (np.arange(fw) + 0.5) * step / width, indexing="ij")
        per_size = [
            np.stack([cx, cy, np.full_like(cx, s / width), np.full_like(cy, s / height)], axis=-1) for s in sizes
        ]
        out.append(np.stack(per_size, axis=2).reshape(-1, 4))  # (fh, fw, n_sizes, 4)
    return np.concatenate(out).astype(np.float32)


def decode_boxes(loc: np.ndarray, priors: np.ndarray) -> np.ndarray:
    """Regression offsets -> xyxy normalised to the image (original ``box_utils.decode``)."""
    centers = priors[:, :2] + loc[:, :2] * VARIANCE[0] * priors[:, 2:]
    sizes = priors[:, 2:] * np.exp(loc[:, 2:] * VARIANCE[1])
    return np.concatenate([centers - sizes / 2, centers + sizes / 2], axis=1)


def decode_landmarks(pre: np.ndarray, priors: np.ndarray) -> np.ndarray:
    """Landmark offsets (N, 10) -> points (N, 5, 2) normalised to the image."""
    return priors[:, None, :2] + pre.reshape(-1, 5, 2) * VARIANCE[0] * priors[:, None, 2:]


def _load_state_dict(path: Path) -> dict[str, Any]:
    import torch

    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, bad pickle, disallowed global under weights_only
        raise ModelFileCorrupt(path, f"torch.load cannot read it: {type(exc).__name__}: {exc}") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelFileCorrupt(path, "not a RetinaFace state dict (expected a mapping of tensors)")
    return {k.removeprefix("module."): v for k, v in state.items()}


class RetinaFaceTorchDetector:
    """Faces with 5-point landmarks from RetinaFace-MobileNet0.25 on CPU torch.

    ``max_side`` downsizes larger images (long side) before detection and maps results
    back; ``None`` runs at full resolution. 640 is what upstream evaluated (long side 320 or
    640) and what this checkpoint, trained on 300 px crops with anchors up to 256 px, suits
    best: at 1280 a 2000x1428 stage photo gave five false ~500 px "faces" (scores up to
    0.88) and the two-person photo one 22 px false face; at 640 neither did. The price is
    small faces: in a 1920x1080 frame downsized 3x, faces under ~30 px are lost (use the
    tiled or person-crop flows, or raise ``max_side``). ``threads`` sets
    ``torch.set_num_threads`` (process-wide in torch); ``None`` leaves torch's default.
    """

    name = "retinaface:mobilenet0.25"

    def __init__(
        self,
        model_path: str | Path,
        *,
        max_side: int | None = 640,
        nms_threshold: float = 0.4,
        threads: int | None = None,
    ) -> None:
        import torch

        self.model_path = require_file(model_path)
        if max_side is not None and max_side < 32:
            raise ValueError(f"max_side must be >= 32 or None, got {max_side}")
        self.max_side = max_side
        self.nms_threshold = check_threshold(nms_threshold, "nms_threshold")
        if threads is not None:
            if threads < 1:
                raise ValueError(f"threads must be >= 1 or None, got {threads}")
            torch.set_num_threads(int(threads))
        self.threads = threads
        state = _load_state_dict(self.model_path)
        net = _build_network()
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as exc:  # missing/unexpected keys or shape mismatches
            raise ModelFileCorrupt(self.model_path, f"not a RetinaFace-MobileNet0.25 checkpoint: {exc}") from exc
        self._net = net.eval()
        self._priors: dict[tuple[int, int], np.ndarray] = {}
        self.has_landmarks = True

    def _priors_for(self, height: int, width: int) -> np.ndarray:
        key = (height, width)
        if key not in self._priors:
            if len(self._priors) > 16:  # a camera has one size; do not grow without bound
                self._priors.clear()
            self._priors[key] = prior_boxes(height, width)
        return self._priors[key]

    def detect(self, image_bgr: np.ndarray, conf_threshold: float = 0.5) -> Detections:
        """Faces above ``conf_threshold`` (xyxy in image pixels) with InsightFace-order landmarks."""
        import torch

        image = check_bgr_image(image_bgr)
        conf = check_threshold(conf_threshold)
        image, scale = shrink_to(image, self.max_side)
        ih, iw = image.shape[:2]
        x = image.astype(np.float32) - np.array(MEAN_BGR, np.float32)
        tensor = torch.from_numpy(x.transpose(2, 0, 1).copy()).unsqueeze(0)
        with torch.inference_mode():
            loc, scores, ldm = self._net(tensor)
        loc, scores, ldm = loc[0].numpy(), scores[0, :, 1].numpy(), ldm[0].numpy()
        all_priors = self._priors_for(ih, iw)
        if len(all_priors) != len(scores):  # the prior layout must mirror the heads' output exactly
            raise RuntimeError(f"RetinaFace gave {len(scores)} anchors for {iw}x{ih}, priors {len(all_priors)}")
        idx = np.flatnonzero(scores > conf)
        if idx.size == 0:
            return Detections.empty(with_landmarks=True)
        idx = idx[np.argsort(-scores[idx], kind="stable")[:PRE_NMS_TOP_K]]
        priors = all_priors[idx]
        size = np.array([iw, ih], np.float32)
        boxes = decode_boxes(loc[idx], priors) * np.tile(size, 2) / scale
        points = decode_landmarks(ldm[idx], priors) * size / scale
        keep = nms(boxes, scores[idx], iou_threshold=self.nms_threshold)[:KEEP_TOP_K]
        return Detections(xyxy=boxes[keep], confidence=scores[idx][keep], landmarks=points[keep])
