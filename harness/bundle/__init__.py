"""Bundle: the run bundle's format (``files``) and the facts of the machine it records
(``environment``); every stage reads and writes runs through it.
"""
