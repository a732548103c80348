"""Local runtime and the omni command-line tool."""
