"""keeneye: self-hosted, offline face and person video analytics with a Rekognition-compatible API."""

__version__ = "0.1.0"
