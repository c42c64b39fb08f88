"""cnnlab.inspect"""
