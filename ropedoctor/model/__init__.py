"""Format-free domain: the method table, family records, RoPE maths and planning."""
