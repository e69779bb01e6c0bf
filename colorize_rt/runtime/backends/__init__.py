"""Backends: everything that runs a network (torch-free).

* ``registry``: backend names (``auto | cpu | cuda | tensorrt | ort-trt | openvino | opencv``) -> an activated,
  self-checked runner.
* ``auto_choice``: ``auto`` on the CPU: the candidates timed once per (models, CPU, versions), the table saved.
* ``auto_background`` / ``cpu_load``: that measurement in a detached low-priority process after the first job,
  and the load check that has a measurement taken on a busy machine taken again.
* ``runners``: the runner lifecycle (``activate`` / ``infer`` / ``deactivate``) and ONNX Runtime's runner.
* ``openvino_runner`` / ``opencv_runner``: OpenVINO and OpenCV dnn on the same ONNX files.
* ``session`` / ``ort_cache``: the one place ONNX Runtime sessions are made, and their saved optimised graphs.
* ``selfcheck``: the known-answer check every runner passes on activation, per (model, backend, CPU).
* ``tensorrt_runner`` / ``engine_description``: native TensorRT engines and where they may run.
* ``shipped_models``: model names -> files, and what a model file says about itself.

Backends never import the image pipeline (``runtime.pipeline``); ``runtime.api`` joins the two.
"""
