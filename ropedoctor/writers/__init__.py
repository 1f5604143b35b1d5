"""Writers: planned RoPE settings back into config.json files and GGUF metadata."""
