"""One module per ``deleverage`` subcommand; each exposes ``register(subparsers)``.

Handlers import their heavy dependencies lazily so ``deleverage --help`` stays fast.
"""
