"""Face embedders: faces of one image -> L2-normalised vectors, tagged with a model name.

* :class:`ArcFaceOnnxEmbedder` (``"arcface:<file stem>"``): any 112x112 ArcFace-style ONNX
  model (insightface ``w600k_r50``, ``mobilefacenet``), aligned from 5 landmarks.
* :class:`DlibResnetEmbedder` (``"dlib:resnet_v1"``): dlib's ResNet, offline fallback.

Each has a ``default_threshold`` (open-set cosine, calibrated at FAR ~1e-3 on faces_dev by
``benchmarks/calibrate_embedders.py``) used when the ``recognition_threshold`` setting is None.
Embeddings of different models are never comparable, hence the name on every vector.
"""

from aas_core.vision.embed._common import far_threshold, l2_normalize
from aas_core.vision.embed.arcface_onnx import ArcFaceOnnxEmbedder
from aas_core.vision.embed.dlib_resnet import DlibResnetEmbedder

__all__ = ["ArcFaceOnnxEmbedder", "DlibResnetEmbedder", "far_threshold", "l2_normalize"]
