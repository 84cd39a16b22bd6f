"""Sweep definitions shipped with coordrl (``python -m coordrl.sweep --config ...``)."""
