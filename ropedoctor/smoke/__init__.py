"""`ropedoctor smoke`: run the model with its planned RoPE at the target length and show it still works."""
