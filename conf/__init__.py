"""srdistill's Hydra configs. An install ships this folder as the package ``srdistill.conf``
(pyproject.toml maps it here), where the installed commands read it through Hydra's
``pkg://srdistill.conf``, which needs this file to recognise the package."""
