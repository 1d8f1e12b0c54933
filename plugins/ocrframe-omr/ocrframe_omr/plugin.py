"""Entry point module of the OMR plugin.

The music datasets (PrIMuS reader, engraved synthetic snippets) register here as they land; until
then the plugin provides no component, and `ocrframe list` shows none from it.
"""
