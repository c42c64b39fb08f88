"""cnnlab.deploy"""
