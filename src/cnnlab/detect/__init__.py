"""cnnlab.detect"""
