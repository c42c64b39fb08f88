"""cnnlab.experiments"""
