"""Integrations of tod_cleanse with other systems, one subpackage each.

* :mod:`tod_cleanse.adapters.cleanlab`: one-run ``pred_probs``, the Datalab issue
  type ``"tod_influence"`` and the comparison with cleanlab's label-issue finders;
* :mod:`tod_cleanse.adapters.parquet`: the Parquet batch cleaner;
* :mod:`tod_cleanse.adapters.ray`: Ray Data scoring and Ray Train training.

Installed as ``tod_cleanse.adapters`` (never as a top-level ``adapters``); the core
package never imports it. Importing this package imports none of its subpackages.
"""
