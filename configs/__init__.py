"""Hyperparameters (``<algo>.yaml``) and sweep definitions (``sweeps/*.yaml``), shipped as
package data of ``coordrl.configs``."""
