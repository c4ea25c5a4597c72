"""Pre-trained reference models shipped with the package (see ``scripts/build_reference.py``).

Each folder is a model saved by :meth:`sctranslator.SCTRANSLATOR.save`; open one by name with
:meth:`sctranslator.SCTRANSLATOR.load_pretrained`.
"""
