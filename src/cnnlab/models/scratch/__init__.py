"""cnnlab.models.scratch"""
