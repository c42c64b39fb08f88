"""cnnlab.engine: the one training engine (epoch loop, resume, EMA, AMP, callbacks, checkpoints).

Tasks (classification, detection, ...) plug into it; see ``cnnlab.engine.task``.
"""
