"""Training tasks: each plugs its data, model, loss, metrics and plots into ``cnnlab.engine``."""
