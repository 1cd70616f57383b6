"""``oneoff``: the command-line client of Oneoff's public /v1 API (README: "Command-line client").

It imports nothing of the server (no Django): only Click and the standard library, so it starts
fast and runs from any folder against any Oneoff, and its Render-shaped calls against Render.
"""
