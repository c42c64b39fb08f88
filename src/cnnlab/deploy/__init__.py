"""Deploy trained classifiers: export (ONNX fp32/INT8/FP16, TorchScript), ONNX runtimes, benchmarks.

- ``export.py``     ``cnnlab.export``: export + check against PyTorch (``ExportResult``)
- ``quantize.py``   ONNX Runtime dynamic/static INT8 (``CalibrationDataReader``) and FP16 conversion
- ``runtime.py``    ``load_onnx_classifier`` -> ``OnnxClassifier`` (used by ``cnnlab.load/evaluate/predict``)
- ``providers.py``  execution providers (CPU, CUDA, TensorRT, ...) and session options
- ``metadata.py``   the preprocessing/class-name JSON stored in exported models; ImageNet defaults
- ``preprocess.py`` images -> model input as the metadata describes
- ``calibration.py`` calibration/check images from a run's dataset
- ``source.py``     run folder / checkpoint / registry name / nn.Module -> model + preprocessing
- ``benchmark.py``  ``cnnlab.benchmark``: latency percentiles and throughput per runtime x batch x threads
- ``timing.py``, ``device.py`` the timing loop; machine and version description for report headers
"""
