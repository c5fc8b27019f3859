"""imagegw: an OpenAI-compatible image-generation gateway for AWS Lambda and local development."""

__version__ = "0.1.0"
