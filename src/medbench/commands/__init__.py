"""The CLI's commands, one module per group; each registers itself on :data:`medbench.commands.app.app`.

Modules here stay thin: parse, call the library, print. Framework imports happen inside the library calls.
"""
