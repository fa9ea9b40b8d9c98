"""One module per `facevae` subcommand; each exposes `register(subparsers)`."""
