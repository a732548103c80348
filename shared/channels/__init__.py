"""Provider-specific parsing and signatures of the channels (pure, no AWS)."""
