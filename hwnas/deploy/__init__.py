"""Deployment: fine-tuning the chosen subnet, app-ready TFLite / ONNX files with metadata,
full-integer int8, bundles with a model card, and verification on a device."""
