"""One module per CLI subcommand (see neurovox.cli)."""
