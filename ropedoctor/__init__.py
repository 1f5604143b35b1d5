"""ropedoctor: a doctor and converter for RoPE (rotary position embedding) settings."""

__version__ = "0.1.0"
