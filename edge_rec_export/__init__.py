"""Training side of edge-rec: torch models, data, training, ONNX export, quantization, bundle writing.

Everything here may import torch; nothing in `edge_rec/` may import from here.
"""
