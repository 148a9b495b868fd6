"""Pretrained gaatool checkpoints (installed as gaatool.pretrained); see the model cards beside them."""
