"""``mindspore``: MindIR files run by MindSpore's own runtime on the CPU."""
