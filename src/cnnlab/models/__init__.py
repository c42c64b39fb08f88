"""cnnlab.models"""
