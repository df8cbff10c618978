"""SpikeDHS architecture search on eventstereo's ops, cells, neurons and genotype format (issue 9).

``nas.space`` (mixed ops, searchable cells, the layer trellis), ``nas.search`` (bi-level search),
``nas.decode`` (architecture parameters -> genotype), ``nas.classify`` (SpikeDHS-CLA data, retrain,
eval), ``nas.temporal`` (DGS, TPS, HNS) and the ``nas`` command (``nas.cli``). Everything ``nas``
finds is written in eventstereo's formats and runs in eventstereo unchanged; eventstereo never imports
nas, and nas never imports the desktop app (import-linter contracts in pyproject.toml).
"""
