"""The `expscore` command: Typer apps that parse options, call one function and print."""
