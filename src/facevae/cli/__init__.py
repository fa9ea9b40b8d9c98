"""The `facevae` command: the entry point (main.py) and one module per subcommand."""
