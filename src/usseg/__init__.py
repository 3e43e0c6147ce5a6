"""usseg: diagnose an abdominal-ultrasound segmentation dataset before tuning a model."""

__version__ = "0.1.0"
