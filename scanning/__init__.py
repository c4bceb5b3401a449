"""acr-scan: vulnerability assessment for container registries."""

__version__ = "0.1.0"
USER_AGENT = f"acr-scan/{__version__}"
