"""E-mail channel (Amazon SES receiving)."""
