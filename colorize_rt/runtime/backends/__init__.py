"""Backends: everything that runs a network (torch-free).

* ``registry``: backend names (``auto | cpu | cuda | tensorrt | ort-trt``) -> an activated, self-checked runner.
* ``runners``: the runner lifecycle (``activate`` / ``infer`` / ``deactivate``) and ONNX Runtime's runner.
* ``session`` / ``ort_cache``: the one place ONNX Runtime sessions are made, and their saved optimised graphs.
* ``selfcheck``: the known-answer check every runner passes on activation, per (model, backend, CPU).
* ``tensorrt_runner`` / ``engine_description``: native TensorRT engines and where they may run.
* ``shipped_models``: model names -> files, and what a model file says about itself.

Backends never import the image pipeline (``runtime.pipeline``); ``runtime.api`` joins the two.
"""
