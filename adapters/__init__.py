"""Integrations of tod_cleanse with other systems (cleanlab, Parquet).

Installed as ``tod_cleanse.adapters``; the core package never imports it.
"""
