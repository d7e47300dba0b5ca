"""``mindspore-lite``: MindIR through the ``mindspore_lite`` API, as on an Ascend host."""
