"""edge_rec_export bundle: ONNX export, parity, quantization, ORT format, bundle writing and packaging."""
